"""Quality of the attribution methods on the embedded model, one row per relation.

For each relation: known facts, clean and corrupted logit difference on the
held-out pairs, faithfulness F at 1%, 2% and 5% of the edges (chosen by
|score|) for EAP and EAP-IG, CPR and CMD of EAP-IG, and the Spearman rank
correlation between EAP-IG and exact patching on the 200 top edges.

Usage: python tests/benchmarks/quality_table.py [RELATION ...] [--max-pairs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from circuits.attribution import Harness, exact_edges
from circuits.evaluate import Evaluator, evaluate_graph
from circuits.models import load_model
from circuits.pipeline import ScoreSettings, score_pairs
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs

DEFAULT = ["country_capital_city", "capital_city_country", "city_in_country", "country_continent",
           "country_language", "country_nationality", "city_in_us_state", "noun_plural"]  # fmt: skip


def row(model, name: str, max_pairs: int, top: int) -> dict[str, float | str]:
    started = time.perf_counter()
    pairs = make_pairs(model, load_relation(name), max_pairs=max_pairs)
    pad = model.pad_id
    harness = Harness(model)
    evaluator = Evaluator(harness, batch_pairs(pairs.heldout, pad=pad))
    out: dict[str, float | str] = {"relation": name, "known": pairs.n_known, "facts": pairs.n_facts,
                                   "scoring": len(pairs.scoring), "heldout": len(pairs.heldout),
                                   "clean": evaluator.full.metric, "corrupt": evaluator.empty.metric}  # fmt: skip
    graphs = {}
    for method in ("eap", "eap-ig"):
        graph = score_pairs(model, pairs, ScoreSettings(score_method=method), progress=False)
        graphs[method] = graph
        for pct in (1, 2, 5):
            n = round(pct / 100 * graph.n_edges)
            out[f"{method}_F{pct}"] = evaluator.run_mask(graph.top_mask(n, by="abs")).faithfulness
    curve = evaluate_graph(evaluator, graphs["eap-ig"])
    out["cpr"], out["cmd"], out["random_cpr"] = curve.cpr, curve.cmd, curve.random_cpr
    ig = graphs["eap-ig"]
    edges = [divmod(int(i), ig.shape.n_receivers) for i in ig.ranked(by="abs")[:top]]
    exact = exact_edges(harness, batch_pairs(pairs.scoring, pad=pad), edges)
    approx = np.array([ig.scores[s, r] for s, r in edges])
    out["spearman_exact"] = float(spearmanr(approx, exact).statistic)
    out["seconds"] = time.perf_counter() - started
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relations", nargs="*", default=DEFAULT)
    parser.add_argument("--max-pairs", type=int, default=40)
    parser.add_argument("--top", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("smollm2-135m")
    rows = []
    for name in args.relations:
        rows.append(row(model, name, args.max_pairs, args.top))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    head = (
        "| relation | known/facts | clean LD | corrupt LD | EAP F1% | F2% | F5% | EAP-IG F1% | F2% | F5% "
        "| CPR | CMD | random CPR | ρ(IG, exact) top-200 |"
    )
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for r in rows:
        print(f"| {r['relation']} | {r['known']}/{r['facts']} | {r['clean']:.2f} | {r['corrupt']:.2f} "
              f"| {r['eap_F1']:.2f} | {r['eap_F2']:.2f} | {r['eap_F5']:.2f} | {r['eap-ig_F1']:.2f} "
              f"| {r['eap-ig_F2']:.2f} | {r['eap-ig_F5']:.2f} | {r['cpr']:.3f} | {r['cmd']:.3f} "
              f"| {r['random_cpr']:.3f} | {r['spearman_exact']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
