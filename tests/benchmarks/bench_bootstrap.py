"""Benchmark of the bootstrap intervals of circuit evaluation (not a test: timings are noisy).

Prints, measured side by side in one run on the embedded model and the
held-out pairs of one relation: ``evaluate_graph`` without intervals
(``n_boot=0``) and with them (``n_boot=200``), best of ``--repeats``
interleaved runs each, and their ratio (target: the intervals add at most
20%); and the interval computation alone (:func:`bootstrap_evaluation` on the
kept runs, no forwards), which is what the difference should be.

Usage: python tests/benchmarks/bench_bootstrap.py [--relation R] [--max-pairs N] [--boot B]
       [--repeats K] [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from circuits.attribution import Harness
from circuits.attribution.score import score_pairs
from circuits.attribution.settings import ScoreSettings
from circuits.evaluate import FRACTIONS, Evaluator, bootstrap_evaluation, evaluate_graph
from circuits.models import load_model
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--max-pairs", type=int, default=40)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    pairs = make_pairs(model, load_relation(args.relation), max_pairs=args.max_pairs)
    graph = score_pairs(model, pairs, ScoreSettings(score_method="eap"), progress=False)
    evaluator = Evaluator(Harness(model), batch_pairs(pairs.heldout, pad=model.pad_id))

    def plain() -> object:
        return evaluate_graph(evaluator, graph, n_boot=0)

    def boot() -> object:
        return evaluate_graph(evaluator, graph, n_boot=args.boot)

    boot()  # warm-up
    plain_times, boot_times = [], []
    for _ in range(args.repeats):  # interleaved, so drifting load hits both alike
        plain_times.append(timed(plain))
        boot_times.append(timed(boot))

    # the interval computation alone, on runs like evaluate_graph's
    rng = np.random.default_rng(0)
    real = np.nonzero(graph.mask.ravel())[0]
    runs: tuple[list, list, list] = ([], [], [])
    for fraction in FRACTIONS:
        n = max(1, round(fraction * graph.n_edges))
        chosen = np.zeros(graph.mask.size, dtype=bool)
        chosen[rng.choice(real, size=n, replace=False)] = True
        masks = (
            graph.top_mask(n, by="signed"),
            graph.top_mask(n, by="abs"),
            chosen.reshape(graph.mask.shape),
        )
        for kept, mask in zip(runs, masks, strict=True):
            kept.append(evaluator.run_mask(mask))
    alone = min(
        timed(lambda: bootstrap_evaluation(evaluator, FRACTIONS, *runs, n_boot=args.boot, seed=0))
        for _ in range(20)
    )
    result = boot()
    figures = {
        "model": model.name,
        "relation": args.relation,
        "pairs": len(evaluator.batch),
        "edges": graph.n_edges,
        "circuit_runs": 3 * len(FRACTIONS),
        "n_boot": args.boot,
        "threads": torch.get_num_threads(),
        "evaluate_n_boot_0_s": min(plain_times),
        f"evaluate_n_boot_{args.boot}_s": min(boot_times),
        "ratio": min(boot_times) / min(plain_times),
        "intervals_alone_s": alone,
        "intervals_alone_share": alone / min(plain_times),
        "cpr": result.intervals.cpr.as_dict(),
        "cmd": result.intervals.cmd.as_dict(),
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    f = figures
    print(
        f"{f['model']}, {f['pairs']} held-out pairs of {args.relation}, {f['edges']} edges, "
        f"{f['circuit_runs']} circuit runs per evaluation, {f['threads']} threads, "
        f"best of {args.repeats}"
    )
    print(f"  evaluate_graph n_boot=0        {f['evaluate_n_boot_0_s']:8.3f} s")
    print(
        f"  evaluate_graph n_boot={args.boot:<8}{f[f'evaluate_n_boot_{args.boot}_s']:8.3f} s   "
        f"{f['ratio']:.3f}x (target <= 1.20)"
    )
    print(
        f"  the intervals alone            {1000 * alone:8.2f} ms  "
        f"{100 * f['intervals_alone_share']:.2f}% of an evaluation"
    )
    print(f"  CPR {result.intervals.cpr.format(3)}   CMD {result.intervals.cmd.format(3)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
