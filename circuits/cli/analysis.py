"""The analysis commands, one per entry of :data:`circuits.registry.ANALYSES`, and what they share.

Each registered analysis gets a command (``knockout``, ``dla``, ``mlp``, ...)
whose options are built from its settings dataclass: a field's ``metadata``
gives its help and, where it has them, its bounds (``min``, ``range``),
``choices``, ``metavar`` and option name (``flag``); a ``bool`` is a switch
and a tuple of layers a repeatable ``--layer``. The command parses the
relation options, calls :func:`circuits.jobs.analyses.run_analysis` (which
loads the relation, keeps the facts the model knows and runs the analysis) and
prints the record through its type (``summary_lines()``) or, with ``--json``,
its ``to_dict()``.

A renamed command (``extraction``, now ``attribute-extraction``, so that it is
not mistaken for circuit extraction, ``circuits extract``) keeps working for
one version and says so on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.cli import options
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.jobs.mechanisms import PromptChoice
    from circuits.records.base import AnalysisSettings
    from circuits.registry import Analysis

__all__ = [
    "finish",
    "output_options",
    "parse_layers",
    "prompt_choice",
    "register",
    "settings_of",
]


def prompt_choice(args: argparse.Namespace) -> PromptChoice:
    """The :class:`~circuits.jobs.mechanisms.PromptChoice` of the relation options."""
    from circuits.jobs.mechanisms import PromptChoice

    return PromptChoice(
        template=args.template,
        seed=args.seed,
        max_pairs=args.max_pairs,
        max_rank=args.max_rank,
        min_prob=args.min_prob,
        templates=args.templates,
        shots=args.shots,
    )


def finish(args: argparse.Namespace, record: Any, text: list[str], files: list[Path]) -> int:
    """Print the record as JSON (``--json``) or the table lines and the files written; exit status 0."""
    if args.json:
        data = record.to_dict() if hasattr(record, "to_dict") else record
        print(json.dumps(data, indent=2, allow_nan=False))
        return 0
    if files:
        text.append("wrote " + ", ".join(str(f) for f in files))
    print("\n".join(text))
    return 0


def output_options(p: argparse.ArgumentParser) -> None:
    """``--out`` and ``--store``, on every analysis command (``--boot`` is in :func:`options.analysis`)."""
    p.add_argument(
        "--out", type=options.out_dir, default=None, help="write <analysis>.json and <analysis>.svg here"
    )
    p.add_argument(
        "--store",
        type=options.out_dir,
        default=None,
        metavar="ROOT",
        help="also store them in the gallery ROOT (e.g. graphs): ROOT/<model>/<relation>/mechanisms/",
    )


def parse_layers(values: list[str] | None) -> tuple[int, ...] | None:
    """``--layer 3 --layer 5,7`` -> ``(3, 5, 7)``; ``None`` (all layers) when the option is absent.

    >>> parse_layers(["3", "5, 7"]), parse_layers(None)
    ((3, 5, 7), None)
    >>> parse_layers(["x"])
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: --layer takes layer numbers (e.g. 3 or 20,25,29), not 'x'
    """
    if values is None:
        return None
    layers: list[int] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            try:
                layers.append(int(item))
            except ValueError:
                raise InputError(f"--layer takes layer numbers (e.g. 3 or 20,25,29), not {item!r}") from None
    return tuple(layers)


# ------------------------------------------------------------ options from a settings dataclass


def _is_layers(kind: Any) -> bool:
    """Whether a settings field holds a tuple of layer numbers (``tuple[int, ...]``, optional)."""
    options_of = typing.get_args(kind) if typing.get_origin(kind) is not tuple else (kind,)
    return any(typing.get_origin(k) is tuple for k in options_of)


def _base(kind: Any) -> Any:
    """``int`` of ``int | None``; the type itself otherwise."""
    args = [k for k in typing.get_args(kind) if k is not type(None)]
    return args[0] if typing.get_origin(kind) is not None and len(args) == 1 else kind


def settings_options(p: argparse.ArgumentParser, settings: type[AnalysisSettings]) -> None:
    """One option per field of ``settings`` (those marked ``"cli": False`` come from shared options)."""
    hints = typing.get_type_hints(settings)
    for f in dataclasses.fields(settings):
        meta = f.metadata
        if meta.get("cli", True) is False:
            continue
        kind = hints[f.name]
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        kw: dict[str, Any] = {"dest": f.name, "default": f.default, "help": meta.get("help", "")}
        if "metavar" in meta:
            kw["metavar"] = meta["metavar"]
        if kind is bool:
            p.add_argument(flag, action="store_true", **kw)
            continue
        if _is_layers(kind):
            p.add_argument(flag, action="append", **{**kw, "default": None})
            continue
        if "choices" in meta:
            kw["choices"] = meta["choices"]
        if "range" in meta:
            kw["type"] = options.in_range(*meta["range"])
        elif "min" in meta:
            kw["type"] = options.at_least(meta["min"])
        elif _base(kind) in (int, float):
            kw["type"] = _base(kind)
        p.add_argument(flag, **kw)


def settings_of(entry: Analysis, args: argparse.Namespace) -> AnalysisSettings:
    """The analysis's settings from the parsed options (``--boot`` for its resamples)."""
    hints = typing.get_type_hints(entry.settings)
    values: dict[str, Any] = {"n_boot": args.boot}
    for f in dataclasses.fields(entry.settings):
        if f.metadata.get("cli", True) is False:
            continue
        value = getattr(args, f.name)
        values[f.name] = parse_layers(value) if _is_layers(hints[f.name]) else value
    return entry.settings(**values)


# ------------------------------------------------------------ the commands


def cmd_analysis(args: argparse.Namespace) -> int:
    """Run the registered analysis the command names and print its record."""
    from circuits.jobs.analyses import run_analysis
    from circuits.registry import ANALYSES

    entry = ANALYSES[args.analysis]
    if args.command in entry.old_commands:
        print(
            f"circuits {args.command}: deprecated: the command is now `circuits {entry.command_name}` "
            f"('{args.command}' goes away in the next version)",
            file=sys.stderr,
        )
    settings = settings_of(entry, args)  # a wrong option fails before the model loads
    model = options.load(args)
    relation = args.relations if entry.scope == "relations" else args.relation
    record, files = run_analysis(
        entry.name,
        model,
        relation,
        prompt_choice(args),
        settings,
        out=args.out,
        store=args.store,
        progress=not args.quiet,
    )
    top = args.top if entry.top is not None else None
    return finish(args, record, record.summary_lines(top), files)


def _relations_parents() -> tuple[argparse.ArgumentParser, ...]:
    """The parents of an analysis across relations: like :func:`options.analysis`, several relations."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "relations",
        nargs="+",
        metavar="RELATION",
        help="bundled relation names, LRE-schema JSON files or subject,object CSVs",
    )
    p.add_argument(
        "--template", help="a template with one '{}' for every relation (default: each one's first)"
    )
    return (
        p,
        options.model(),
        options.pairs(),
        options.seed(),
        options.boot(),
        options.json_output(),
        options.quiet(),
    )


def _add(add: Any, entry: Analysis, command: str, help_text: str) -> None:
    parents = _relations_parents() if entry.scope == "relations" else options.analysis()
    p = add(command, help_text, *parents)
    settings_options(p, entry.settings)
    if entry.top is not None:
        p.add_argument("--top", type=options.at_least(1), default=entry.top[0], help=entry.top[1])
    output_options(p)
    p.set_defaults(func=cmd_analysis, analysis=entry.name)


def register(add: Any) -> None:
    """Add a command per registered analysis (and its former names) through ``add(name, help, *parents)``."""
    from circuits.registry import ANALYSES

    for entry in ANALYSES.values():
        _add(add, entry, entry.command_name, entry.help)
        for old in entry.old_commands:
            _add(
                add, entry, old, f"deprecated name of `{entry.command_name}` (goes away in the next version)"
            )
