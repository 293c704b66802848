"""Predict low-rank channels between heads from weight SVD, and check them against patching.

Run: ``python examples/channels_demo.py [--model smollm2-135m] [--relation country_capital_city]``.
Writes ``channels.dot`` (predicted channels, dashed) and ``overlay.dot`` (the
patching circuit with the channels drawn over it), and their SVGs when
Graphviz is installed, to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from circuits import Circuit, ScoreSettings, load_model, render
from circuits.channels import (
    analyze,
    causal_check,
    find_channels,
    format_causal,
    format_validation,
    validate_relations,
)
from circuits.draw import channels_dot
from circuits.relations.pairs import batch_pairs

log = logging.getLogger("channels_demo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--relation", default="country_capital_city")
    parser.add_argument("--max-pairs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("channels_demo_out"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model = load_model(args.model)
    analysis = analyze(model)  # every sender against every later q/k/v receiver
    channels = find_channels(analysis, top=10, share=0.9)
    for c in channels:
        log.info(
            "%-8s -> %-10s %s-composition  z=%5.1f (whole z=%5.1f)  rank %d",
            c.sender,
            c.receiver,
            c.kind,
            c.z,
            c.whole_z,
            c.rank,
        )

    settings = ScoreSettings(max_pairs=args.max_pairs)
    [(row, graph, pairs)] = validate_relations(model, analysis, [args.relation], settings=settings)
    log.info("\n%s", format_validation([row]))

    batch = batch_pairs(pairs.pairs, pad=model.pad_id)
    checks = [
        causal_check(model, analysis, c, batch, scope=s) for c in channels[:3] for s in ("sender", "edge")
    ]
    log.info("\n%s", format_causal(checks))

    circuit = Circuit.from_mask(graph, graph.top_mask(60))
    written = render(channels_dot(channels, analysis.shape), args.out / "channels").written
    written += render(channels_dot(channels, analysis.shape, circuit=circuit), args.out / "overlay").written
    log.info("wrote %s", ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
