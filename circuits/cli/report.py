"""``circuits report DIR [--out OUT]``: a static HTML report of the results stored under ``DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuits.cli import options

__all__ = ["cmd_report", "register"]


def cmd_report(args: argparse.Namespace) -> int:
    from circuits.report import build_report

    index = build_report(args.dir, out=args.out)
    print(index)
    print(index.resolve().as_uri())
    return 0


def register(add: Any) -> None:
    """Add ``report`` through ``add(name, help, *parents)``."""
    p = add("report", "write a static HTML report (overview, relations, reuse, channels) of stored results")
    p.add_argument("dir", type=Path, help="a results folder in the gallery layout (such as graphs)")
    p.add_argument(
        "--out", type=options.out_dir, default=None, help="the report's folder (default: DIR/report)"
    )
    p.set_defaults(func=cmd_report)
