"""Benchmark of edge attribution and circuit evaluation (not a test: timings are noisy).

Prints, measured side by side in one run, for each relation on the embedded
model and 32 of its prompt pairs:

- the floor: full-prompt passes of the model with no hooks of ours (one
  corrupted forward + one clean forward and backward for EAP, + 5 for
  EAP-IG(5)), and one full forward;
- EAP, EAP-IG(5) and one circuit evaluation, each with the shared-prefix
  cache and without it (full prompts), as ratios to the floor (evaluation:
  to one full forward);
- the share of positions the cache serves, and the peak memory of EAP-IG(5)
  above the loaded model with and without the cache (each in its own process);
- the EAP-IG library's times on the same 32 pairs of country_capital_city,
  recorded once on a quiet two-thread machine (not measured here: that
  library is not a dependency).

Then, on a GPT-2-small-shaped random model: TransformerLens 4's own
per-example edge attribution against ours, on the same prompts.

Usage: python tests/benchmarks/bench_attribution.py [--relation R ...] [--pairs N] [--repeats K] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from circuits.attribution import Harness, attribute_edges
from circuits.attribution.prefix import prefix_share
from circuits.evaluate import Evaluator
from circuits.graph import ScoredGraph
from circuits.models import load_model
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, make_pairs

RELATIONS = ("country_capital_city", "product_company", "country_continent")
# the EAP-IG library on the same 32 pairs of country_capital_city (13 positions), 2 threads, in seconds
EAP_IG_LIBRARY = {"eap": 45.6, "eap_ig5": 151.4, "evaluation": 10.4}


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
    out: dict[str, float] = {
        "pairs": len(batch),
        "positions": int(batch.clean.shape[1]),
        "prefix_share": prefix_share(batch),
    }
    with torch.no_grad():
        out["forward_s"] = best_of(lambda: model.bridge(batch.clean), repeats)
    out["floor_eap_s"] = best_of(floor_passes(model, batch, 1), repeats)
    out["floor_eap_ig5_s"] = best_of(floor_passes(model, batch, 5), repeats)
    scores = (attribute_edges(harness, batch, ig_steps=1) / len(batch)).numpy()
    circuit = ScoredGraph(harness.shape, scores).top_mask(int(0.02 * scores.size))
    for mode, shared in (("full", False), ("prefix", True)):
        out[f"eap_{mode}_s"] = best_of(
            lambda s=shared: attribute_edges(harness, batch, shared_prefix=s), repeats
        )
        out[f"eap_ig5_{mode}_s"] = best_of(
            lambda s=shared: attribute_edges(harness, batch, ig_steps=5, shared_prefix=s), repeats
        )
        evaluator = Evaluator(harness, batch, shared_prefix=shared)
        out[f"evaluation_{mode}_s"] = best_of(lambda e=evaluator: e.run_mask(circuit), repeats)
        out[f"eap_{mode}_ratio"] = out[f"eap_{mode}_s"] / out["floor_eap_s"]
        out[f"eap_ig5_{mode}_ratio"] = out[f"eap_ig5_{mode}_s"] / out["floor_eap_ig5_s"]
        out[f"evaluation_{mode}_ratio"] = out[f"evaluation_{mode}_s"] / out["forward_s"]
    return out


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def memory_figure(relation: str, n_pairs: int, shared: bool) -> float:
    """Peak resident memory (MB) of one EAP-IG(5) pass above the loaded, warmed-up model (Linux only).

    The kernel's high-water mark is reset after loading (``/proc/self/clear_refs``),
    since loading the embedded model peaks higher than any pass.
    """
    model = load_model("smollm2-135m")
    batch = pairs_for(model, relation, n_pairs)
    harness = Harness(model)
    with torch.no_grad():
        model.bridge(batch.clean[:1])
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")
    before = _status_mb("VmRSS")
    attribute_edges(harness, batch, ig_steps=5, shared_prefix=shared)
    return _status_mb("VmHWM") - before


def memory_in_child(relation: str, n_pairs: int, shared: bool, threads: int | None) -> float:
    """:func:`memory_figure` in a fresh process, so each mode's peak is its own."""
    argv = [sys.executable, __file__, "--memory-of", relation, "--pairs", str(n_pairs)]
    argv += ["--shared"] if shared else []
    argv += ["--threads", str(threads)] if threads else []
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


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

            attribution_patch(
                model.bridge,
                batch.corrupt[i : i + 1, : last + 1],
                batch.clean[i : i + 1, : last + 1],
                metric,
                EdgeAttributionConfig(granularity="edge"),
            )

    ours_s = best_of(ours, 1)
    start = time.perf_counter()
    theirs()
    theirs_s = time.perf_counter() - start
    return {
        "tl_pairs": len(batch),
        "tl_edge_attribution_s": theirs_s,
        "ours_same_model_s": ours_s,
        "speedup_vs_tl": theirs_s / ours_s,
    }


def print_relation(relation: str, f: dict[str, float]) -> None:
    print(
        f"{relation}: {f['pairs']} pairs, {f['positions']} positions, "
        f"the cache serves {100 * f['prefix_share']:.0f}% of them"
    )
    print(f"  one forward            {f['forward_s']:8.3f} s")
    print(f"  floor (EAP)            {f['floor_eap_s']:8.3f} s   corrupt fwd + clean fwd/bwd, full prompts")
    print(f"  floor (EAP-IG 5)       {f['floor_eap_ig5_s']:8.3f} s   corrupt fwd + 5 fwd/bwd, full prompts")
    rows = (
        ("EAP", "eap", "floor", 0.6),
        ("EAP-IG(5)", "eap_ig5", "floor", 0.6),
        ("circuit evaluation", "evaluation", "forward", 0.6),
    )
    for label, key, against, target in rows:
        full, cached = f[f"{key}_full_s"], f[f"{key}_prefix_s"]
        print(
            f"  {label:<20} {full:8.3f} s full ({f[f'{key}_full_ratio']:.2f}x {against}), "
            f"{cached:6.3f} s with the prefix cache ({f[f'{key}_prefix_ratio']:.2f}x {against}, "
            f"target <= {target}), {full / cached:.1f}x faster"
        )
    if "memory_full_mb" in f:
        print(
            f"  peak memory EAP-IG(5)  {f['memory_full_mb']:8.0f} MB full, "
            f"{f['memory_prefix_mb']:.0f} MB with "
            f"the cache ({f['memory_prefix_mb'] / max(f['memory_full_mb'], 1e-9):.2f}x)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relation", nargs="+", default=list(RELATIONS))
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--tl-pairs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-mode memory processes")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.memory_of:
        print(memory_figure(args.memory_of, args.pairs, args.shared))
        return 0
    figures: dict[str, dict[str, float]] = {}
    for relation in args.relation:
        figures[relation] = embedded_figures(relation, args.pairs, args.repeats)
        if not args.no_memory:
            for mode, shared in (("full", False), ("prefix", True)):
                figures[relation][f"memory_{mode}_mb"] = memory_in_child(
                    relation, args.pairs, shared, args.threads
                )
    other = transformer_lens_figures(args.relation[0], args.tl_pairs)
    other["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    other["threads"] = torch.get_num_threads()
    if args.json:
        rounded = {r: {k: round(v, 4) for k, v in f.items()} for r, f in figures.items()}
        print(json.dumps({**rounded, "other": {k: round(v, 4) for k, v in other.items()}}))
        return 0
    print(f"embedded model smollm2-135m, {other['threads']} threads")
    for relation, f in figures.items():
        print_relation(relation, f)
    lib = EAP_IG_LIBRARY
    if "country_capital_city" in figures:
        f = figures["country_capital_city"]
        print(
            f"EAP-IG library, recorded on the same 32 pairs of country_capital_city: EAP {lib['eap']} s "
            f"({lib['eap'] / f['eap_prefix_s']:.0f}x ours), EAP-IG(5) {lib['eap_ig5']} s "
            f"({lib['eap_ig5'] / f['eap_ig5_prefix_s']:.0f}x), one evaluation {lib['evaluation']} s "
            f"({lib['evaluation'] / f['evaluation_prefix_s']:.0f}x)"
        )
    o = other
    print(f"GPT-2-small-shaped random model, {o['tl_pairs']} pairs")
    print(f"  TransformerLens 4 edge attribution {o['tl_edge_attribution_s']:8.3f} s")
    print(
        f"  ours (EAP)                         {o['ours_same_model_s']:8.3f} s   "
        f"{o['speedup_vs_tl']:.1f}x faster (target >= 20)"
    )
    print(f"peak resident memory {o['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
