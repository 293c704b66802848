"""Benchmark of edge attribution and circuit evaluation (not a test: timings are noisy).

Prints, measured side by side in one run:

- on the embedded model and 32 prompt pairs of one relation: the floor (one
  corrupted forward + one clean forward and backward), EAP and its ratio to
  the floor, EAP-IG(5) and its ratio to its floor (one corrupted forward + 5
  forward-and-backward passes), one circuit evaluation and its ratio to one
  forward, and the peak resident memory;
- on a GPT-2-small-shaped random model: TransformerLens 4's own per-example
  edge attribution against ours, on the same prompts.

Usage: python tests/benchmarks/bench_attribution.py [--relation R] [--pairs N] [--repeats K] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from circuits.attribution import Harness, attribute_edges
from circuits.evaluate import Evaluator
from circuits.graph import ScoredGraph
from circuits.models import load_model
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of ``repeats`` runs after one warm-up (the least disturbed by other load)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def pairs_for(model, relation: str, n: int, *, everything_known: bool = False):
    rel = load_relation(relation)
    kwargs = {"max_rank": 10**9} if everything_known else {}
    pairs = make_pairs(model, rel, heldout_fraction=0.0, **kwargs).pairs
    rows = [pairs[i % len(pairs)] for i in range(n)]
    return batch_pairs(rows, pad=model.pad_id)


def floor_passes(model, batch, steps: int) -> Callable[[], None]:
    """One corrupted forward and ``steps`` clean forward+backward passes, no hooks of ours."""
    bridge = model.bridge
    rows = torch.arange(len(batch))

    def run() -> None:
        with torch.no_grad():
            bridge(batch.corrupt)
        for p in bridge.parameters():
            p.requires_grad_(False)
        for _ in range(steps):

            def make_leaf(x, hook):
                return x.detach().requires_grad_(True)

            with bridge.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", make_leaf)]):
                logits = bridge(batch.clean)
                value = (
                    logits[rows, batch.last, batch.answer] - logits[rows, batch.last, batch.corrupt_answer]
                ).mean()
                value.backward()

    return run


def embedded_figures(relation: str, n_pairs: int, repeats: int) -> dict[str, float]:
    model = load_model("smollm2-135m")
    batch = pairs_for(model, relation, n_pairs)
    harness = Harness(model)
    out: dict[str, float] = {"pairs": len(batch), "positions": int(batch.clean.shape[1])}
    with torch.no_grad():
        out["forward_s"] = best_of(lambda: model.bridge(batch.clean), repeats)
    out["floor_eap_s"] = best_of(floor_passes(model, batch, 1), repeats)
    out["eap_s"] = best_of(lambda: attribute_edges(harness, batch, ig_steps=1), repeats)
    out["floor_eap_ig5_s"] = best_of(floor_passes(model, batch, 5), repeats)
    out["eap_ig5_s"] = best_of(lambda: attribute_edges(harness, batch, ig_steps=5), repeats)
    scores = (attribute_edges(harness, batch, ig_steps=1) / len(batch)).numpy()
    graph = ScoredGraph(harness.shape, scores)
    evaluator = Evaluator(harness, batch)
    circuit = graph.top_mask(int(0.02 * graph.n_edges))
    out["evaluation_s"] = best_of(lambda: evaluator.run_mask(circuit), repeats)
    out["eap_ratio"] = out["eap_s"] / out["floor_eap_s"]
    out["eap_ig5_ratio"] = out["eap_ig5_s"] / out["floor_eap_ig5_s"]
    out["evaluation_ratio"] = out["evaluation_s"] / out["forward_s"]
    return out


def transformer_lens_figures(relation: str, n_pairs: int) -> dict[str, float]:
    from transformer_lens.tools.analysis.attribution_patching import (
        EdgeAttributionConfig,
        attribution_patch,
    )

    model = load_model("gpt2-small-random")
    batch = pairs_for(model, relation, n_pairs, everything_known=True)
    harness = Harness(model)

    def ours() -> np.ndarray:
        return (attribute_edges(harness, batch) / len(batch)).numpy()

    def theirs() -> None:
        for i in range(len(batch)):
            last = int(batch.last[i])
            a, c = int(batch.answer[i]), int(batch.corrupt_answer[i])

            def metric(logits, last=last, a=a, c=c):
                return logits[0, last, a] - logits[0, last, c]

            attribution_patch(model.bridge, batch.corrupt[i : i + 1, : last + 1],
                              batch.clean[i : i + 1, : last + 1], metric,
                              EdgeAttributionConfig(granularity="edge"))  # fmt: skip

    ours_s = best_of(ours, 1)
    start = time.perf_counter()
    theirs()
    theirs_s = time.perf_counter() - start
    return {"tl_pairs": len(batch), "tl_edge_attribution_s": theirs_s, "ours_same_model_s": ours_s,
            "speedup_vs_tl": theirs_s / ours_s}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--tl-pairs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    figures = embedded_figures(args.relation, args.pairs, args.repeats)
    figures.update(transformer_lens_figures(args.relation, args.tl_pairs))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
        return 0
    f = figures
    print(f"embedded model smollm2-135m, {f['pairs']} pairs of {args.relation}, {f['positions']} positions")
    print(f"  one forward            {f['forward_s']:8.3f} s")
    print(f"  floor (EAP)            {f['floor_eap_s']:8.3f} s   corrupt fwd + clean fwd/bwd")
    print(f"  EAP                    {f['eap_s']:8.3f} s   {f['eap_ratio']:.2f}x floor (target <= 1.5)")
    print(f"  floor (EAP-IG 5)       {f['floor_eap_ig5_s']:8.3f} s   corrupt fwd + 5 fwd/bwd")
    print(
        f"  EAP-IG(5)              {f['eap_ig5_s']:8.3f} s   {f['eap_ig5_ratio']:.2f}x floor (target <= 1.5)"
    )
    print(
        f"  circuit evaluation     {f['evaluation_s']:8.3f} s   {f['evaluation_ratio']:.2f}x forward (target <= 2)"
    )
    print(f"GPT-2-small-shaped random model, {f['tl_pairs']} pairs")
    print(f"  TransformerLens 4 edge attribution {f['tl_edge_attribution_s']:8.3f} s")
    print(
        f"  ours (EAP)                         {f['ours_same_model_s']:8.3f} s   {f['speedup_vs_tl']:.1f}x faster (target >= 20)"
    )
    print(f"peak resident memory {f['peak_rss_mb']:.0f} MB, {f['threads']} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
