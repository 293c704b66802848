"""Options shared by the ``circuits`` subcommands, each defined once, as argparse parent parsers.

``--threads`` and ``--verbose`` are accepted before or after the subcommand
(their defaults are suppressed, so a subcommand never overwrites a value
given before it). A renamed option keeps its old spelling for one version
(:func:`old_spelling`): it still works, hidden from ``--help``, and says on
stderr what to write instead.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.io import writable_dir, writable_file
from circuits.models.catalog import DEFAULT_MODEL
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.jobs.executor import Executor
    from circuits.models import LoadedModel

__all__ = [
    "analysis",
    "at_least",
    "boot",
    "common",
    "in_range",
    "json_output",
    "model",
    "old_spelling",
    "out_dir",
    "out_file",
    "pairs",
    "quiet",
    "relation",
    "seed",
]


class OldSpelling(argparse.Action):
    """An option's old spelling: stores into the new option's ``dest``, with a one-line note on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: {option_string} is now {self.new}; the old spelling goes away in the next "
            "version",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def old_spelling(p: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden spelling of the option ``new`` (same ``dest``, type and choices).

    >>> p = argparse.ArgumentParser(prog="circuits reuse")
    >>> _ = p.add_argument("--similarity", default="edge_jaccard")
    >>> old_spelling(p, "--metric", "--similarity")
    >>> p.parse_args(["--metric", "head_share"]).similarity
    'head_share'
    """
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(
        old,
        dest=dest,
        action=OldSpelling,
        new=new,
        help=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        **kwargs,
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum`` (``--max-pairs -3`` is refused).

    >>> at_least(1)("3")
    3
    >>> at_least(1)("-3")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number >= 1, not '-3'
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, not {text!r}")
        return value

    return parse


def out_dir(text: str) -> Path:
    """An argparse ``type``: a directory that is, or can be made, writable (checked before any work)."""
    try:
        return writable_dir(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def out_file(text: str) -> Path:
    """An argparse ``type``: a file path whose folder is, or can be made, writable (checked before work)."""
    try:
        return writable_file(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def in_range(low: float, high: float, *, open_low: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``[low, high]`` (``(low, high]`` with ``open_low``).

    >>> in_range(0, 1)("0.8")
    0.8
    >>> in_range(0, 1, open_low=True)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a number in (0, 1], not '0'
    >>> in_range(0, 1)("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a number in [0, 1], not 'nan'
    """
    span = f"{'(' if open_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (low < value if open_low else low <= value) and value <= high):
            raise argparse.ArgumentTypeError(f"must be a number in {span}, not {text!r}")
        return value

    return parse


@functools.cache
def common() -> argparse.ArgumentParser:
    """``--threads`` and ``-v/--verbose``, on the top-level command and every subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details"
    )
    p.add_argument(
        "--threads",
        type=at_least(1),
        default=argparse.SUPPRESS,
        help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)",
    )
    return p


@functools.cache
def model(default: str | None = DEFAULT_MODEL) -> argparse.ArgumentParser:
    """``--model`` and ``--device`` (one parser per default: parents share their actions)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", default=default, help=f"model name (default {default})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--device-map",
        choices=["auto"],
        default=None,
        help="spread a model too large for one device over every GPU, then the host",
    )
    return p


@functools.cache
def executor() -> argparse.ArgumentParser:
    """``--executor``, ``--address`` and ``--task-cpus``: where a sweep's per-relation tasks run."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--executor",
        choices=("serial", "ray"),
        default="serial",
        help="serial: one relation after another here (default); ray: one Ray task per relation",
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --executor ray: an existing cluster ('auto' or HOST:PORT; default: a local "
        "Ray instance on every core of this machine)",
    )
    p.add_argument(
        "--task-cpus",
        type=at_least(1),
        default=1,
        help="with --executor ray: CPUs (torch threads) per task (default 1)",
    )
    return p


def load(args: argparse.Namespace) -> LoadedModel:
    """The model the ``model()`` options name, on ``--device`` or spread by ``--device-map``."""
    from circuits.models import load_model

    return load_model(args.model, device=args.device, device_map=args.device_map)


def add_batch_size(p: argparse.ArgumentParser) -> None:
    """``--batch-size``: pairs per pass (memory, not results)."""
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        default=None,
        help="pairs per pass (default: as many as fit half the free memory, at most 16)",
    )


def executor_of(args: argparse.Namespace) -> Executor:
    """The :class:`~circuits.jobs.executor.Executor` the ``executor()`` options ask for."""
    from circuits.jobs.executor import Executor

    gpus = 1.0 if args.executor == "ray" and str(getattr(args, "device", "cpu")).startswith("cuda") else 0.0
    return Executor(args.executor, address=args.address, task_cpus=args.task_cpus, task_gpus=gpus)


@functools.cache
def seed() -> argparse.ArgumentParser:
    """``--seed``: seeds pairing, splits, random baselines and null distributions."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return p


@functools.cache
def json_output() -> argparse.ArgumentParser:
    """``--json``: one JSON object on stdout instead of tables."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    return p


@functools.cache
def quiet() -> argparse.ArgumentParser:
    """``--quiet``: no progress bars."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


@functools.cache
def pairs() -> argparse.ArgumentParser:
    """``--max-pairs``, ``--max-rank``, ``--min-prob``, ``--templates``, ``--shots``: which pairs are used."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--max-pairs",
        type=at_least(2),
        default=None,
        help="use at most this many prompt pairs (at least 2: one scored, one held out)",
    )
    p.add_argument(
        "--max-rank",
        type=at_least(1),
        default=1,
        help="a fact is known when its answer ranks at most this (default 1: top-1)",
    )
    p.add_argument(
        "--min-prob",
        type=in_range(0, 1),
        default=0.0,
        help="... and has at least this probability (default 0)",
    )
    prompt_options(p)
    return p


def templates(text: str) -> str | int:
    """A ``--templates`` value: best, first, all or a template index."""
    from circuits.relations.prompts import parse_templates

    try:
        return parse_templates(text)
    except InputError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def prompt_options(p: argparse.ArgumentParser) -> None:
    """Add ``--templates`` and ``--shots`` to ``p``."""
    p.add_argument(
        "--templates",
        type=templates,
        default="best",
        metavar="best|first|all|INDEX",
        help="which of the relation's templates make the prompts: best (the default) keeps the one "
        "under which the model knows the most facts and every other that knows at least half as many; "
        "first, all (each fact once per template), or the one at INDEX (from 0); "
        "`circuits relations FILE --model M` compares them",
    )
    p.add_argument(
        "--shots",
        type=at_least(0),
        default=None,
        metavar="N",
        help="demonstrations drawn from the relation's other facts before every prompt (default: 1 "
        "for a template with no demonstration of its own, 0 for one with)",
    )


@functools.cache
def relation() -> argparse.ArgumentParser:
    """The ``RELATION`` argument and ``--template``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("relation", help="bundled relation name, LRE-schema JSON file or subject,object CSV")
    p.add_argument(
        "--template",
        help="a template with one '{}' (default: the relation's first; required for a CSV relation)",
    )
    return p


@functools.cache
def boot() -> argparse.ArgumentParser:
    """``--boot B``: bootstrap resamples over prompt pairs for every 95% interval (0: no intervals)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--boot",
        type=at_least(0),
        default=200,
        metavar="B",
        help="bootstrap resamples over prompt pairs for the 95%% intervals (default 200)",
    )
    return p


def analysis() -> tuple[argparse.ArgumentParser, ...]:
    """The parents of every command analysing one relation's prompts: relation, model, pairs, seed, output."""
    return (relation(), model(), pairs(), seed(), boot(), json_output(), quiet())
