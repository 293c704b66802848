"""What every analysis command shares: the prompt choice, the job call, the output options, the printing.

An analysis command (``knockout``, ``dla``, ``mlp``, ...) parses the common
relation options, calls :func:`run_job` (which loads the model and runs a job
of :mod:`circuits.jobs` on the relation's known-fact prompts), and prints
through :func:`finish`: a table, or with ``--json`` the record itself.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.cli import options

__all__ = ["finish", "heading", "output_options", "prompt_choice", "run_job"]


def prompt_choice(args: argparse.Namespace) -> Any:
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


def run_job(
    args: argparse.Namespace, module: str, job: str, **job_options: Any
) -> tuple[Any, dict[str, Any], list[Path]]:
    """Load the model and run ``circuits.jobs.<module>.<job>`` with the shared options."""
    import importlib

    model = options.load(args)
    run = getattr(importlib.import_module(f"circuits.jobs.{module}"), job)
    return run(
        model,
        args.relation,
        prompt_choice(args),
        n_boot=args.boot,
        out=args.out,
        store=args.store,
        progress=not args.quiet,
        **job_options,
    )


def finish(args: argparse.Namespace, record: dict[str, Any], text: list[str], files: list[Path]) -> int:
    """Print the record as JSON (``--json``) or the table lines and the files written; exit status 0."""
    if args.json:
        print(json.dumps(record, indent=2, allow_nan=False))
        return 0
    if files:
        text.append("wrote " + ", ".join(str(f) for f in files))
    print("\n".join(text))
    return 0


def heading(record: dict[str, Any]) -> str:
    """The first line of every analysis table: model, relation, prompts, and the prompt formats they use."""
    p = record["prompts"]
    formats = (p.get("prompt") or {}).get("formats") or [{"template": p["template"], "shots": 0}]
    shown = " + ".join(f"{f['shots']}-shot {f['template']!r}" for f in formats)
    return (
        f"{record['model']} / {record['relation']}: {record['n_prompts']} known-fact prompts "
        f"({p['n_known']} of {p['n_facts']} facts known), {shown}"
    )


def output_options(p: argparse.ArgumentParser) -> None:
    """``--out`` and ``--store``, on every analysis command (``--boot`` comes with :func:`options.analysis`)."""
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
