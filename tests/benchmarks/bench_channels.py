"""Time the full channel analysis (every head and MLP pair) on the embedded SmolLM2.

Run: ``python tests/benchmarks/bench_channels.py [--threads 2] [--no-mlp]``.
Not a test: it prints wall-clock times of loading, analysis and channel extraction.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from circuits.channels import analyze, find_channels
from circuits.models import load_model

log = logging.getLogger("bench_channels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-mlp", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_model(args.model)
    loaded = time.perf_counter()
    analysis = analyze(model, mlp=not args.no_mlp)
    analysed = time.perf_counter()
    channels = find_channels(analysis, top=20)
    done = time.perf_counter()
    pairs = int((~torch.isnan(torch.from_numpy(analysis.whole))).sum())
    log.info("model %s, %d threads: load %.1f s", args.model, args.threads, loaded - started)
    log.info(
        "analysis: %d senders x %d receivers, %d scored pairs x %d components: %.1f s",
        len(analysis.senders.names),
        len(analysis.receivers.names),
        pairs,
        analysis.component.shape[-1],
        analysed - loaded,
    )
    log.info(
        "top-20 channels: %.2f s; strongest %s -> %s (z %.1f)",
        done - analysed,
        channels[0].sender,
        channels[0].receiver,
        channels[0].z,
    )


if __name__ == "__main__":
    main()
