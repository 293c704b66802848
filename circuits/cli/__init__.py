"""The ``circuits`` command: one parser tree, shared options defined once, one module per group.

- :mod:`~circuits.cli.job`: ``run`` (the main job);
- :mod:`~circuits.cli.relations`: ``models``, ``relations``, ``prompts``;
- :mod:`~circuits.cli.scoring`: ``score``, ``evaluate``;
- :mod:`~circuits.cli.graphs`: ``extract``, ``render``, ``compare``, ``reuse``;
- :mod:`~circuits.cli.channels`: ``channels``;
- :mod:`~circuits.cli.analysis`: one command per registered mechanism analysis
  (:data:`circuits.registry.ANALYSES`): ``knockout``, ``enrichment``,
  ``attribute-extraction`` (formerly ``extraction``), ``dla``, ``motif``,
  ``mlp``, ``suppression``;
- :mod:`~circuits.cli.interventions`: ``intervene``, ``reuse-test``;
- :mod:`~circuits.cli.interchange`: ``import``, ``export`` (EAP-IG / MIB graph files);
- :mod:`~circuits.cli.report`: ``report`` (a static HTML report of stored results).

Command modules parse, call a job of :mod:`circuits.jobs` and print;
they import torch only inside the command that runs a model, so
``circuits --help`` and ``circuits models`` stay fast. Errors the user can fix
are printed as one line naming what was wrong and what would be valid, with
exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from circuits.cli import (
    analysis,
    channels,
    graphs,
    interchange,
    interventions,
    job,
    options,
    relations,
    report,
    scoring,
)
from circuits.vocab import CircuitsError, InputError

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what was wrong, and where to look), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole parser tree of the ``circuits`` command."""
    parser = _Parser(
        prog="circuits",
        parents=[options.common()],
        description="Circuit-discovery graph engine for transformer language models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_text, description=help_text, parents=[options.common(), *parents]
        )

    for group in (
        job,
        relations,
        scoring,
        graphs,
        channels,
        analysis,
        interventions,
        interchange,
        report,
    ):
        group.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``circuits`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        threads = getattr(args, "threads", None)
        if threads is not None:
            if threads < 1:
                raise InputError(f"--threads must be a positive number of threads, not {threads}")
            import torch

            torch.set_num_threads(threads)
        return int(args.func(args))
    except CircuitsError as error:
        print(f"circuits {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every file was written atomically; `circuits run` keeps its finished stages
        print(
            f"circuits {args.command}: interrupted; nothing half-written was left"
            + ("; run it again to continue where it stopped" if args.command == "run" else ""),
            file=sys.stderr,
        )
        return 130
