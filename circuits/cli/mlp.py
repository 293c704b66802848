"""``circuits mlp``: which upstream components each MLP amplifies, erases or turns into the answer.

The command takes a relation (bundled name, LRE file or CSV with
``--template``), keeps the facts the model knows, splits the MLPs of the
chosen layers (``--layer``, default all) at the last position or the last
subject token into one part per upstream component
(:mod:`circuits.mechanisms.mlp_parts`), and prints per MLP the parts
with the largest push toward the answer and the largest gain, then the
subject-moving heads and what the later MLPs do with them. ``--out DIR``
writes ``mlp.json`` and ``mlp.svg``.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.cli import options
from circuits.cli.analysis import finish, heading, output_options, run_job
from circuits.vocab import InputError

__all__ = ["parse_layers", "register"]


def parse_layers(values: list[str] | None) -> list[int] | None:
    """``--layer 3 --layer 5,7`` -> ``[3, 5, 7]``; ``None`` (all layers) when the option is absent.

    >>> parse_layers(["3", "5, 7"]), parse_layers(None)
    ([3, 5, 7], None)
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
    return layers


def _signed(value: float) -> str:
    return "—" if value != value else f"{value:+.2f}"  # NaN: an undefined gain


def cmd_mlp(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise InputError(f"--top must be a positive number of components, not {args.top}")
    result, record, files = run_job(
        args, "mlp", "run_mlp", layers=parse_layers(args.layer), position=args.position
    )
    where = "the last subject token" if result.position == "subject" else "the last position"
    text = [
        heading(record),
        f"each MLP's input at {where} split into its upstream components; gain = <MLP_c, x_c> / |x_c|^2 "
        "(> 0 amplifies what c wrote, < 0 erases it); push = the part's direct effect on the answer's "
        "centred logit; mean [95% bootstrap interval]",
        f"the parts sum to the real MLP output: largest relative residual {result.residual:.1e}",
    ]
    text.append(f"{'MLP':>5}  {'push of the whole MLP':<24}top {args.top} parts by push: push (gain)")
    for d in result.layers:
        parts = ", ".join(
            f"{c.name} {_signed(c.push.value)} ({_signed(c.gain.value)})" for c in d.by_push()[: args.top]
        )
        text.append(f"{'m' + str(d.layer):>5}  {d.total_push.format(2):<24}{parts}")
        gains = ", ".join(f"{c.name} {_signed(c.gain.value)}" for c in d.by_gain()[: args.top])
        text.append(f"{'':>5}  {'':<24}largest |gain|: {gains}")
    text.append(
        "subject-moving heads: mean |sum over subject positions s of A[last, s] v_s W_O| at the last "
        "position; their parts in the decomposed MLPs that read them (* the interval excludes 0):"
    )
    for name in result.top_moving():
        head = next(h for h in result.moving_heads if h.head == name)
        parts = result.parts_of(name)
        line = f"  {name:>8}  moved {head.moved.format(2)}"
        if not parts:
            text.append(line + "; no decomposed MLP reads it")
            continue
        total = result.moving_total_push[name]
        text.append(line + f"; push summed over those MLPs {total.format(2)}")
        text.append(
            "            gain: "
            + ", ".join(
                f"m{p.layer} {_signed(p.gain.value)}{'*' if p.gain.excludes_zero else ''}" for p in parts
            )
        )
        text.append(
            "            push: "
            + ", ".join(
                f"m{p.layer} {_signed(p.push.value)}{'*' if p.push.excludes_zero else ''}" for p in parts
            )
        )
    return finish(args, record, text, files)


def register(add: Any) -> None:
    """Add ``mlp`` through ``add(name, help, *parents)``."""
    parents = options.analysis()
    p = add(
        "mlp",
        "split each MLP's output into the parts due to its upstream components: what it amplifies, "
        "erases and turns into the answer (Lv et al. 2024)",
        *parents,
    )
    p.add_argument(
        "--layer",
        action="append",
        default=None,
        metavar="L",
        help="an MLP layer to decompose; repeat it or give a comma list (default: every layer)",
    )
    p.add_argument(
        "--position",
        default="last",
        metavar="{last,subject}",
        help="decompose at the last position (default) or at the last subject token",
    )
    p.add_argument("--top", type=options.at_least(1), default=5, help="parts listed per MLP (default 5)")
    output_options(p)
    p.set_defaults(func=cmd_mlp)
