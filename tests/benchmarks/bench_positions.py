"""Benchmark of position-aware scoring and evaluation (not a test: timings are noisy).

Prints, measured side by side in one run on the embedded model and one
relation, best of ``--repeats`` interleaved runs each:

- EAP-IG scoring of the scoring pairs summed over positions and split by
  position role (target: roles cost at most 1.2x);
- one circuit forward (:meth:`Evaluator.run_mask`) of a summed circuit of
  ``n`` edges and of a position-aware circuit of ``n`` (edge, role) units, on
  the held-out pairs, at each size of ``--sizes`` (target: at most 1.5x).

Usage: python tests/benchmarks/bench_positions.py [--relation R] [--max-pairs N] [--ig-steps M]
       [--sizes 300,1500,6000] [--repeats K] [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from circuits.attribution import Harness
from circuits.attribution.score import score_pairs
from circuits.attribution.settings import ScoreSettings
from circuits.evaluate import Evaluator
from circuits.models import load_model
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs


def best_of(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """The fastest of ``repeats`` interleaved runs of each function."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--max-pairs", type=int, default=24)
    parser.add_argument("--ig-steps", type=int, default=5)
    parser.add_argument("--sizes", default="300,1500,6000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    pairs = make_pairs(model, load_relation(args.relation), max_pairs=args.max_pairs)
    settings = {p: ScoreSettings(ig_steps=args.ig_steps, positions=p) for p in ("summed", "roles")}
    graphs = {}

    def scorer(positions: str) -> object:
        def run() -> None:
            graphs[positions] = score_pairs(model, pairs, settings[positions], progress=False)

        return run

    scoring = best_of({p: scorer(p) for p in settings}, args.repeats)
    evaluator = Evaluator(Harness(model), batch_pairs(pairs.heldout, pad=model.pad_id))
    graph = graphs["roles"]
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        masks = {
            "summed": graph.top_mask(n, by="signed"),
            "roles": graph.top_mask(n, by="signed", positions="roles"),
        }
        times = best_of({p: (lambda m=m: evaluator.run_mask(m)) for p, m in masks.items()}, args.repeats)
        rows.append({"n": n, **times, "ratio": times["roles"] / times["summed"]})
    result = {
        "model": model.name,
        "relation": args.relation,
        "n_scoring_pairs": len(pairs.scoring),
        "n_heldout_pairs": len(pairs.heldout),
        "ig_steps": args.ig_steps,
        "threads": args.threads,
        "scoring_summed_s": scoring["summed"],
        "scoring_roles_s": scoring["roles"],
        "scoring_ratio": scoring["roles"] / scoring["summed"],
        "evaluation": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{model.name} / {args.relation}: {len(pairs.scoring)} scoring pairs, {len(pairs.heldout)} held out, "
        f"EAP-IG {args.ig_steps} steps, {args.threads} threads, best of {args.repeats}"
    )
    print(
        f"scoring   summed {scoring['summed']:.2f} s   roles {scoring['roles']:.2f} s   "
        f"ratio {result['scoring_ratio']:.2f}x (target <= 1.2x)"
    )
    for row in rows:
        print(
            f"evaluate  {row['n']:>6} edges {row['summed']:.3f} s   "
            f"{row['n']:>6} units {row['roles']:.3f} s   ratio {row['ratio']:.2f}x (target <= 1.5x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
