"""``circuits channels``: low-rank channels between heads from weight SVD, checked against patching.

``circuits channels --model M [--top K] [--json]`` lists the strongest
predicted channels; ``--validate RELATION`` (repeatable) also scores each
relation by patching and reports how well the channels rank its important
edges, and ``--causal N`` runs the subspace-removal check on the ``N``
strongest channels for each validated relation.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from circuits.cli import options

if TYPE_CHECKING:
    from circuits.channels import Channel

__all__ = ["register"]


def _channel_table(channels: list[Channel]) -> str:
    lines = [
        f"{'sender':<9}{'receiver':<12}{'type':>5}{'z comp':>8}{'CS comp':>9}{'z whole':>9}"
        f"{'CS whole':>10}{'rank':>6}{'share':>7}  components"
    ]
    for c in channels:
        comps = ",".join(str(i) for i in c.components[:8]) + ("..." if len(c.components) > 8 else "")
        lines.append(
            f"{c.sender:<9}{c.receiver:<12}{c.kind:>5}{c.z:>8.1f}{c.score:>9.3f}{c.whole_z:>9.1f}"
            f"{c.whole:>10.3f}{c.rank:>6}{c.share:>7.2f}  {comps}"
        )
    return "\n".join(lines)


def cmd_channels(args: argparse.Namespace) -> int:
    from circuits.channels.validate import format_causal, format_validation
    from circuits.jobs import run_channels

    model = options.load(args)
    report = run_channels(
        model,
        top=args.top,
        share=args.share,
        by=args.by,
        mlp=not args.no_mlp,
        validate=args.validate,
        max_pairs=args.max_pairs,
        top_fraction=args.top_fraction,
        causal=args.causal,
        n_random=args.random,
        seed=args.seed,
        progress=not args.quiet,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    text = [
        f"{model.name}: {report.n_senders} senders x {report.n_receivers} "
        f"q/k/v receivers analysed in {report.analysis_seconds:.1f} s",
        f"top {len(report.channels)} channels by {args.by} z-score (rank = components carrying "
        f"{args.share:g} of the composition):",
        _channel_table(report.channels),
    ]
    if report.validation:
        text += ["", "validation against patching:", format_validation(report.validation)]
    for relation, checks in report.causal.items():
        text += [
            "",
            f"causal check on {relation} ({report.n_pairs[relation]} pairs; change of the mean logit "
            "difference when the channel's subspace is removed from the sender's output, for "
            "every receiver (sender) or the channel's receiver only (edge); random: "
            f"{args.random} random subspaces of the same rank):",
            format_causal(checks),
        ]
    print("\n".join(text))
    return 0


def register(add: Any) -> None:
    """Add ``channels`` through ``add(name, help, *parents)``."""
    p = add(
        "channels",
        "low-rank channels between heads from weight SVD, checked against patching",
        options.model(),
        options.seed(),
        options.quiet(),
        options.json_output(),
    )
    p.add_argument("--top", type=options.at_least(1), default=20, help="channels listed (default 20)")
    p.add_argument(
        "--share",
        type=options.in_range(0, 1, open_low=True),
        default=0.9,
        help="share of a composition the listed components must carry (default 0.9)",
    )
    p.add_argument(
        "--by",
        default="component",
        choices=["component", "whole"],
        help="rank channels by best-component or whole-matrix z-score",
    )
    p.add_argument("--no-mlp", action="store_true", help="score attention heads only as senders")
    p.add_argument(
        "--validate",
        action="append",
        default=[],
        metavar="RELATION",
        help="bundled relation name or LRE JSON path to validate against (repeatable)",
    )
    p.add_argument(
        "--max-pairs", type=options.at_least(2), default=None, help="prompt pairs per relation for patching"
    )
    p.add_argument(
        "--top-fraction",
        type=options.in_range(0, 1, open_low=True),
        default=0.01,
        help="share of sender->q/k/v edges counted as important (default 0.01)",
    )
    p.add_argument(
        "--causal",
        type=options.at_least(0),
        default=0,
        metavar="N",
        help="with --validate: subspace-removal check of the N strongest channels",
    )
    p.add_argument(
        "--random",
        type=options.at_least(0),
        default=4,
        metavar="N",
        help="random subspaces per causal check (default 4)",
    )
    p.set_defaults(func=cmd_channels)
