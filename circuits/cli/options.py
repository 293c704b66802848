"""Options shared by the ``circuits`` subcommands, each defined once, as argparse parent parsers.

``--threads`` and ``--verbose`` are accepted before or after the subcommand
(their defaults are suppressed, so a subcommand never overwrites a value
given before it).
"""

from __future__ import annotations

import argparse
import functools

from circuits.models.catalog import DEFAULT_MODEL

__all__ = ["analysis", "boot", "common", "json_output", "model", "pairs", "quiet", "relation", "seed"]


@functools.cache
def common() -> argparse.ArgumentParser:
    """``--threads`` and ``-v/--verbose``, on the top-level command and every subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details"
    )
    p.add_argument("--threads", type=int, default=argparse.SUPPRESS,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")  # fmt: skip
    return p


@functools.cache
def model(default: str | None = DEFAULT_MODEL) -> argparse.ArgumentParser:
    """``--model`` and ``--device`` (one parser per default: parents share their actions)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--model", default=default, help=f"model name (default {default})")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    return p


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
    """``--max-pairs``, ``--max-rank`` and ``--min-prob``: which prompt pairs are used."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--max-pairs", type=int, default=None, help="use at most this many prompt pairs")
    p.add_argument("--max-rank", type=int, default=1,
                   help="a fact is known when its answer ranks at most this (default 1: top-1)")  # fmt: skip
    p.add_argument("--min-prob", type=float, default=0.0,
                   help="... and has at least this probability (default 0)")  # fmt: skip
    return p


@functools.cache
def relation() -> argparse.ArgumentParser:
    """The ``RELATION`` argument and ``--template``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("relation", help="bundled relation name, LRE-schema JSON file or subject,object CSV")
    p.add_argument("--template", help="a template with one '{}' (default: the relation's first; "
                   "required for a CSV relation)")  # fmt: skip
    return p


@functools.cache
def boot() -> argparse.ArgumentParser:
    """``--boot B``: bootstrap resamples over prompt pairs for every 95% interval (0: no intervals)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--boot", type=int, default=200, metavar="B",
                   help="bootstrap resamples over prompt pairs for the 95%% intervals (default 200)")  # fmt: skip
    return p


def analysis() -> tuple[argparse.ArgumentParser, ...]:
    """The parents of every command that analyses one relation's prompts: relation, model, pairs, seed, output."""
    return (relation(), model(), pairs(), seed(), boot(), json_output(), quiet())
