"""Benchmark: memory and time of scoring and evaluation as the number of prompt pairs grows (not a test).

For each pair count (default 32 and 256), in a fresh child process: load the
embedded model, make the prompt pairs of one relation (repeated to the
count), then

- score them (EAP-IG, 5 steps: the default), streaming over mini-batches;
- evaluate the top-n circuits of the faithfulness curve (10 sizes) on the
  same pairs.

and print each step's peak resident memory (the whole process, model
included, and above the loaded model), its seconds per pair, the batch size
chosen, and what the formulas of ``circuits.sizing`` predict for it. The
ratios of 256 to 32 pairs come last (targets: peak at most 1.2x, time per
pair flat), with the floating-point rate that ``circuits sizing`` takes.

Usage: python tests/benchmarks/bench_memory.py [--pairs 32 256] [--relation R] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import subprocess
import sys
import time


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> float:
    """Return freed heap to the system and restart the peak count; the resident memory now."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")
    return _status_mb("VmRSS")


def child(n_pairs: int, relation: str) -> dict[str, float]:
    import numpy as np
    import torch

    from circuits.attribution import Harness
    from circuits.attribution.memory import model_dims
    from circuits.attribution.prefix import pair_prefix_lengths
    from circuits.attribution.score import score_pairs
    from circuits.attribution.settings import ScoreSettings
    from circuits.evaluate import FRACTIONS, Evaluator
    from circuits.models import load_model
    from circuits.relations import load_relation
    from circuits.relations.pairs import batch_pairs, make_pairs
    from circuits.sizing import attribution_bytes, evaluation_bytes, scoring_flops

    model = load_model("smollm2-135m")
    made = make_pairs(model, load_relation(relation), heldout_fraction=0.0)
    rows = [made.pairs[i % len(made.pairs)] for i in range(n_pairs)]
    pairs = dataclasses.replace(made, pairs=rows, scoring=rows, heldout=[])
    with torch.no_grad():
        model.bridge(torch.tensor([rows[0].clean_tokens]))
    model_mb = _reset_peak()
    settings = ScoreSettings()
    start = time.perf_counter()
    graph = score_pairs(model, pairs, settings, progress=False)
    score_s = time.perf_counter() - start
    score_peak = _status_mb("VmHWM")
    batch_size = int(graph.metadata["batch_size"])

    _reset_peak()
    batch = batch_pairs(rows, pad=model.pad_id)
    start = time.perf_counter()
    evaluator = Evaluator(Harness(model), batch)
    total = int(graph.mask.sum())
    for fraction in FRACTIONS:
        evaluator.run_mask(graph.top_mask(max(1, round(fraction * total)), by="signed"))
    eval_s = time.perf_counter() - start
    eval_peak = _status_mb("VmHWM")

    dims = model_dims(model)
    positions = int(batch.clean.shape[1]) - int(pair_prefix_lengths(batch).min())
    mean_positions = float((batch.last + 1 - pair_prefix_lengths(batch)).float().mean())
    flops = scoring_flops(dims, round(mean_positions), settings.steps) * n_pairs
    return {
        "pairs": n_pairs,
        "positions": int(batch.clean.shape[1]),
        "suffix_positions": positions,
        "batch_size": batch_size,
        "model_mb": model_mb,
        "score_peak_mb": score_peak,
        "score_above_mb": score_peak - model_mb,
        "score_s_per_pair": score_s / n_pairs,
        "eval_peak_mb": eval_peak,
        "eval_above_mb": eval_peak - model_mb,
        "eval_s_per_pair": eval_s / n_pairs,
        "evaluator_cached_mb": evaluator.cached_bytes / 2**20,
        "predicted_score_above_mb": attribution_bytes(dims, positions) * batch_size / 2**20,
        "predicted_eval_above_mb": min(
            evaluation_bytes(dims, positions) * n_pairs,
            evaluation_bytes(dims, positions) * 16 + evaluator.cached_bytes,
        )
        / 2**20,
        "gflops_per_second": flops / score_s / 1e9,
        "checksum": float(np.abs(graph.scores).sum()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.relation)))
        return 0
    results = []
    for n in args.pairs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--relation", args.relation],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{args.relation} on smollm2-135m, EAP-IG(5) then a 10-point faithfulness curve; one process each")
    print(
        f"{'pairs':>6} {'batch':>5} {'model MB':>9} {'score peak':>11} {'above':>7} {'predicted':>9} "
        f"{'s/pair':>7} {'eval peak':>10} {'above':>7} {'predicted':>9} {'s/pair':>7} {'GFLOP/s':>8}"
    )
    for r in results:
        print(
            f"{r['pairs']:>6} {r['batch_size']:>5} {r['model_mb']:>9.0f} {r['score_peak_mb']:>11.0f} "
            f"{r['score_above_mb']:>7.0f} {r['predicted_score_above_mb']:>9.0f} "
            f"{r['score_s_per_pair']:>7.3f} {r['eval_peak_mb']:>10.0f} {r['eval_above_mb']:>7.0f} "
            f"{r['predicted_eval_above_mb']:>9.0f} {r['eval_s_per_pair']:>7.3f} "
            f"{r['gflops_per_second']:>8.1f}"
        )
    if len(results) >= 2:
        a, b = results[0], results[-1]
        print(
            f"{b['pairs']} vs {a['pairs']} pairs: score peak {b['score_peak_mb'] / a['score_peak_mb']:.2f}x, "
            f"eval peak {b['eval_peak_mb'] / a['eval_peak_mb']:.2f}x (target <= 1.2x); time per pair "
            f"{b['score_s_per_pair'] / a['score_s_per_pair']:.2f}x (scoring), "
            f"{b['eval_s_per_pair'] / a['eval_s_per_pair']:.2f}x (evaluation) (target ~1x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
