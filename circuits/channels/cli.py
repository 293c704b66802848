"""The ``circuits channels`` subcommand.

``circuits channels --model M [--top K] [--json]`` lists the strongest
predicted channels; ``--validate RELATION`` (repeatable) also scores each
relation by patching and reports how well the channels rank its important
edges, and ``--causal N`` runs the subspace-removal check on the ``N``
strongest channels for each validated relation.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from circuits.vocab import InputError

__all__ = ["add_parser", "cmd_channels"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``channels`` subcommand on an argparse subparsers object."""
    from circuits.models import DEFAULT_MODEL

    about = "low-rank channels between heads from weight SVD, checked against patching"
    p = subparsers.add_parser("channels", help=about, description=about)
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--top", type=int, default=20, help="channels listed (default 20)")
    p.add_argument("--share", type=float, default=0.9,
                   help="share of a composition the listed components must carry (default 0.9)")  # fmt: skip
    p.add_argument("--by", default="component", choices=["component", "whole"],
                   help="rank channels by best-component or whole-matrix z-score")  # fmt: skip
    p.add_argument("--no-mlp", action="store_true", help="score attention heads only as writers")
    p.add_argument("--validate", action="append", default=[], metavar="RELATION",
                   help="bundled relation name or LRE JSON path to validate against (repeatable)")  # fmt: skip
    p.add_argument("--max-pairs", type=int, default=None, help="prompt pairs per relation for patching")
    p.add_argument("--top-fraction", type=float, default=0.01,
                   help="share of writer->q/k/v edges counted as important (default 0.01)")  # fmt: skip
    p.add_argument("--causal", type=int, default=0, metavar="N",
                   help="with --validate: subspace-removal check of the N strongest channels")  # fmt: skip
    p.add_argument("--random", type=int, default=4, metavar="N",
                   help="random subspaces per causal check (default 4)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_channels)
    return p


def _check(args: argparse.Namespace) -> None:
    if args.top < 1:
        raise InputError(f"--top must be at least 1, not {args.top}")
    if not 0.0 < args.share <= 1.0:
        raise InputError(f"--share must lie in (0, 1], not {args.share}")
    if args.max_pairs is not None and args.max_pairs < 2:
        raise InputError(f"--max-pairs must be at least 2, not {args.max_pairs}")
    if not 0.0 < args.top_fraction < 1.0:
        raise InputError(f"--top-fraction must lie in (0, 1), not {args.top_fraction}")
    if args.causal < 0:
        raise InputError(f"--causal must be 0 or more, not {args.causal}")
    if args.random < 1:
        raise InputError(f"--random must be at least 1, not {args.random}")
    if args.causal and not args.validate:
        raise InputError("--causal needs at least one --validate RELATION (its prompts are used)")


def _channel_table(channels: list[Any]) -> str:
    lines = [f"{'writer':<9}{'reader':<12}{'type':>5}{'z comp':>8}{'CS comp':>9}{'z whole':>9}"
             f"{'CS whole':>10}{'rank':>6}{'share':>7}  components"]  # fmt: skip
    for c in channels:
        comps = ",".join(str(i) for i in c.components[:8]) + ("..." if len(c.components) > 8 else "")
        lines.append(f"{c.writer:<9}{c.reader:<12}{c.kind:>5}{c.z:>8.1f}{c.score:>9.3f}{c.whole_z:>9.1f}"
                     f"{c.whole:>10.3f}{c.rank:>6}{c.share:>7.2f}  {comps}")  # fmt: skip
    return "\n".join(lines)


def cmd_channels(args: argparse.Namespace) -> int:
    """Run the channel analysis (and validations) and print a table or one JSON object."""
    from circuits.channels import analyze, causal_check, find_channels, validate_relations
    from circuits.channels.validate import format_causal, format_validation
    from circuits.data import batch_pairs
    from circuits.models import load_model
    from circuits.pipeline import ScoreSettings

    _check(args)
    started = time.perf_counter()
    model = load_model(args.model, device=args.device)
    analysis = analyze(model, mlp=not args.no_mlp, seed=args.seed)
    channels = find_channels(analysis, top=args.top, share=args.share, by=args.by)
    result: dict[str, Any] = {
        "model": model.name, "analysis_seconds": round(analysis.seconds, 3),
        "writers": len(analysis.writers.names), "readers": len(analysis.readers.names),
        "settings": analysis.settings, "share": args.share, "by": args.by,
        "null": {"whole": {f"{w}-{r}": v for (w, r), v in analysis.null.whole.items()},
                 "component": analysis.null.component},
        "channels": [c.as_dict() for c in channels], "validation": [], "causal": [],
    }  # fmt: skip
    text = [f"{model.name}: {len(analysis.writers.names)} writers x {len(analysis.readers.names)} "
            f"q/k/v readers analysed in {analysis.seconds:.1f} s",
            f"top {len(channels)} channels by {args.by} z-score (rank = components carrying "
            f"{args.share:g} of the composition):", _channel_table(channels)]  # fmt: skip
    if args.validate:
        settings = ScoreSettings(max_pairs=args.max_pairs, seed=args.seed)
        validated = validate_relations(model, analysis, args.validate, settings=settings,
                                       top_fraction=args.top_fraction, progress=not args.quiet)  # fmt: skip
        rows = [row for row, _, _ in validated]
        result["validation"] = [row.as_dict() for row in rows]
        text += ["", "validation against patching:", format_validation(rows)]
        if args.causal:
            strongest = find_channels(analysis, top=args.causal, share=args.share, by=args.by)
            pad = int(model.tokenizer.pad_token_id or 0)
            for row, _, pairs in validated:
                batch = batch_pairs(pairs.pairs, pad=pad)
                checks = [causal_check(model, analysis, c, batch, seed=args.seed, scope=scope,
                                       n_random=args.random)
                          for c in strongest for scope in ("writer", "edge")]  # fmt: skip
                result["causal"].append({"relation": row.relation, "checks": [c.as_dict() for c in checks]})
                text += ["", f"causal check on {row.relation} ({len(batch)} pairs; change of the mean logit "
                         "difference when the channel's subspace is removed from the writer's output, for "
                         "every reader (writer) or the channel's reader only (edge); random: "
                         f"{args.random} random subspaces of the same rank):",
                         format_causal(checks)]  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(result, indent=2) if args.json else "\n".join(text))
    return 0
