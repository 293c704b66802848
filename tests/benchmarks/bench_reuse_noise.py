"""Benchmark: what intervals, split-half ceilings and permutation nulls add to
``circuits reuse`` (not a test).

Runs the reuse sweep over relations whose scored graphs are already in the
gallery (copied into a temporary store, so nothing is re-scored and the
committed gallery is not touched), side by side in one run: without the
noise references (``noise=None``) and with the defaults (200 resamples, 50
splits, 100 shuffles), interleaved, best of ``--repeats``. Both include the
held-out faithfulness and cross-task evaluation. Prints both times and their
ratio (target: at most 1.20).

Usage: python tests/benchmarks/bench_reuse_noise.py [RELATION ...] [--gallery graphs] [--repeats K]
       [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from circuits.attribution.settings import ScoreSettings
from circuits.compare.ceilings import NoiseSettings
from circuits.jobs import run_reuse
from circuits.models import load_model

DEFAULT = ["country_capital_city", "capital_city_country", "country_language", "city_in_country"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relations", nargs="*", default=DEFAULT)
    parser.add_argument("--gallery", type=Path, default=Path("graphs"))
    parser.add_argument("--max-pairs", type=int, default=24, help="as the gallery was scored (default 24)")
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model()
    settings = ScoreSettings(max_pairs=args.max_pairs)
    with tempfile.TemporaryDirectory() as tmp:
        for relation in args.relations:
            source = args.gallery / model.name / relation / "scored"
            if not (source / "graph.json").is_file():
                print(f"{source}: no stored graph; run `make gallery` first", file=sys.stderr)
                return 2
            shutil.copytree(source, Path(tmp) / model.name / relation / "scored")

        def sweep(noise: NoiseSettings | None) -> float:
            start = time.perf_counter()
            report = run_reuse(
                args.relations,
                model=model,
                settings=settings,
                size=args.size,
                store=tmp,
                formats=("dot",),
                noise=noise,
                progress=False,
            )
            assert all(row.source == "stored" for row in report.circuits), "a graph was re-scored"
            return time.perf_counter() - start

        sweep(None)  # warm-up
        plain, noisy = [], []
        for _ in range(args.repeats):
            plain.append(sweep(None))
            noisy.append(sweep(NoiseSettings()))
    figures = {
        "relations": len(args.relations),
        "plain_s": min(plain),
        "noise_s": min(noisy),
        "ratio": min(noisy) / min(plain),
        "threads": args.threads,
    }
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))
        return 0
    print(
        f"smollm2 reuse sweep over {len(args.relations)} stored relations (size {args.size}, "
        f"{args.threads} threads, best of {args.repeats})"
    )
    print(f"  without noise references   {figures['plain_s']:8.2f} s")
    print(
        f"  with them (200/50/100)     {figures['noise_s']:8.2f} s   {figures['ratio']:.2f}x (target <= 1.20)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
