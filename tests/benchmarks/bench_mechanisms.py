"""Benchmark of the mechanism analyses (not a test: timings are noisy).

Prints, measured side by side in one run on the embedded model and one
relation's known-fact prompts (24 by default):

- one forward of the batch (the unit every other time is divided by);
- attention knockout of every window for three source sets (subject,
  relation, last), its number of batched forwards and its time as a ratio to
  one forward (target: at most 3 x n_windows, one forward per window and
  source set); the same with the lower blocks run as TransformerLens runs
  them (``start_at_layer`` alone), to show what skipping them saves;
- subject enrichment (5 conditions) and attribute extraction, as ratios;
- per-source DLA with head classes (one forward plus small products), the MLP
  decomposition of all layers, and an intervention (mean ablation of three
  heads: a reference forward, a clean one and an edited one), as ratios.

Usage: python tests/benchmarks/bench_mechanisms.py [--relation R] [--prompts N] [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from unittest import mock

import torch
from bench_attribution import best_of  # a sibling script: this folder is on sys.path when run

from circuits.attribution.harness import Harness
from circuits.jobs.mechanisms import PromptChoice, choice_pairs, known_prompts
from circuits.mechanisms import (
    attribute_words,
    enrichment,
    extraction,
    intervene,
    knockout,
    mlp_decomposition,
    parse_edits,
    source_attribution,
)
from circuits.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("smollm2-135m")
    prompts, _ = known_prompts(model, args.relation, PromptChoice(max_pairs=args.prompts))
    with torch.no_grad():
        forward = best_of(lambda: model.bridge(prompts.tokens), args.repeats)

    start = time.perf_counter()
    result = knockout(model, prompts, progress=False)
    knock = time.perf_counter() - start
    n_windows = len(result.curves[0].starts)
    with mock.patch.object(Harness, "_block_list", lambda self: None):  # every lower block runs
        start = time.perf_counter()
        knockout(model, prompts, progress=False)
        knock_all_blocks = time.perf_counter() - start
    start = time.perf_counter()
    enrichment(model, prompts, attribute_words(), progress=False)
    enrich = time.perf_counter() - start
    start = time.perf_counter()
    extraction(model, prompts, progress=False)
    extract = time.perf_counter() - start
    timed = {}
    start = time.perf_counter()
    source_attribution(model, prompts)
    timed["dla"] = time.perf_counter() - start
    start = time.perf_counter()
    mlp_decomposition(model, prompts, progress=False)
    timed["mlp"] = time.perf_counter() - start
    pairs = choice_pairs(model, args.relation, PromptChoice(max_pairs=args.prompts), heldout_fraction=0.5)
    edits = parse_edits(model, ablate=["a23.h4", "a23.h5", "a23.h1"])
    start = time.perf_counter()
    intervene(model, pairs, edits, split="all", progress=False)
    timed["intervene"] = time.perf_counter() - start

    report = {
        "model": model.name,
        "relation": args.relation,
        "prompts": len(prompts),
        "threads": torch.get_num_threads(),
        "forward_s": round(forward, 4),
        "knockout": {
            "seconds": round(knock, 2),
            "ratio_to_forward": round(knock / forward, 1),
            "n_windows": n_windows,
            "window": result.window,
            "source_sets": 3,
            "batched_forwards": result.n_forwards,
            "target_ratio": 3 * n_windows,
            "meets_target": knock / forward <= 3 * n_windows,
            "without_block_skipping_ratio": round(knock_all_blocks / forward, 1),
        },
        "enrichment": {"seconds": round(enrich, 2), "ratio_to_forward": round(enrich / forward, 1)},
        "extraction": {"seconds": round(extract, 2), "ratio_to_forward": round(extract / forward, 1)},
        **{
            name: {"seconds": round(t, 2), "ratio_to_forward": round(t / forward, 1)}
            for name, t in timed.items()
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    k = report["knockout"]
    print(f"{model.name}, {args.relation}, {len(prompts)} prompts, {report['threads']} threads")
    print(f"one forward of the batch          {forward:8.3f} s   (1x)")
    print(
        f"knockout, {n_windows} windows x 3 sets    {knock:8.2f} s   {k['ratio_to_forward']:6.1f}x forward "
        f"(target <= {k['target_ratio']}x: {'met' if k['meets_target'] else 'MISSED'}; "
        f"{k['batched_forwards']} batched forwards incl. the clean one)"
    )
    print(
        f"  ... running every lower block   {knock_all_blocks:8.2f} s   "
        f"{k['without_block_skipping_ratio']:6.1f}x"
    )
    print(
        f"enrichment, 5 conditions          {enrich:8.2f} s   "
        f"{report['enrichment']['ratio_to_forward']:6.1f}x"
    )
    print(
        f"extraction, all heads             {extract:8.2f} s   "
        f"{report['extraction']['ratio_to_forward']:6.1f}x"
    )
    labels = {
        "dla": "per-source DLA + classes",
        "mlp": "MLP decomposition, all layers",
        "intervene": "intervene (3 heads, mean)",
    }
    for name, label in labels.items():
        print(f"{label:34}{timed[name]:8.2f} s   {report[name]['ratio_to_forward']:6.1f}x")


if __name__ == "__main__":
    main()
