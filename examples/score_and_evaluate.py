"""Score one relation's computation graph with EAP-IG and evaluate it on held-out pairs.

Run: python examples/score_and_evaluate.py [RELATION] [--model M]
"""

from __future__ import annotations

import argparse

from circuits import ScoreSettings, evaluate_graph, heldout_evaluator, load_model, score_relation

parser = argparse.ArgumentParser()
parser.add_argument("relation", nargs="?", default="country_capital_city")
parser.add_argument("--model", default="smollm2-135m")
parser.add_argument("--max-pairs", type=int, default=24)
args = parser.parse_args()

model = load_model(args.model)
settings = ScoreSettings(score_method="eap-ig", max_pairs=args.max_pairs)
graph, pairs = score_relation(model, args.relation, settings)
result = evaluate_graph(heldout_evaluator(model, graph, pairs), graph)

print(f"{args.relation}: {len(pairs.scoring)} scoring pairs, {len(pairs.heldout)} held out")
for fraction, f in zip(result.fractions, result.absolute, strict=True):
    print(f"  {100 * fraction:5.1f}% of {graph.n_edges} edges -> faithfulness {f:.3f}")
print(f"CPR {result.cpr:.3f}  CMD {result.cmd:.3f}")
top = sorted(graph.node_scores().items(), key=lambda kv: kv[1])[:5]
print("nodes the answer relies on most:", ", ".join(f"{n} ({s:.2f})" for n, s in top))
