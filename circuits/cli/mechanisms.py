"""``circuits knockout``, ``enrichment`` and ``extraction``: how information reaches the last position.

Each command takes a relation (bundled name, LRE file or CSV with
``--template``), keeps the facts the model knows, runs one analysis of
:mod:`circuits.mechanisms`, prints a table (or ``--json``), and with
``--out DIR`` writes the JSON record and its SVG figure there.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.cli import options
from circuits.cli.analysis import finish, heading, output_options, run_job

__all__ = ["register"]


def _span(start: int, window: int) -> str:
    if window == 0:
        return f"{start} (none)"
    return str(start) if window == 1 else f"{start}-{start + window - 1}"


def cmd_knockout(args: argparse.Namespace) -> int:
    result, record, files = run_job(
        args,
        "mechanisms",
        "run_knockout",
        window=args.window,
        sources=args.sources,
        block_first=args.block_first,
    )
    curves = [*result.curves, *([result.sink] if result.sink else [])]
    text = [
        heading(record),
        f"baseline p(answer) {result.baseline_prob}; window of {result.window} "
        f"layer{'' if result.window == 1 else 's'}; "
        f"effect = (p_knock - p) / p, mean [95% bootstrap interval]",
    ]
    for c in curves:
        if c.skipped:
            text.append(
                f"  {c.source}: skipped {len(c.skipped)} prompts with an empty role, e.g. {c.skipped[0]!r}"
            )
    text.append(f"{'layers':>9}" + "".join(f"{c.source:>22}" for c in curves))
    for i, start in enumerate(curves[0].starts):
        span = _span(start, result.window)
        text.append(f"{span:>9}" + "".join(f"{c.effect[i].format(2):>22}" for c in curves))
    for c in curves:
        start, effect = c.strongest()
        text.append(f"strongest for {c.source}: layers {_span(start, result.window)}, effect {effect}")
    return finish(args, record, text, files)


def cmd_enrichment(args: argparse.Namespace) -> int:
    result, record, files = run_job(args, "mechanisms", "run_enrichment", top_k=args.top_k, split=args.split)
    text = [
        heading(record),
        f"attribute rate at the last subject token (share of the top-{result.top_k} "
        f"logit-lens tokens that are attributes of the subject); {result.n_no_attributes} prompts "
        "without attribute words left out",
    ]
    conditions = list(result.rates)
    text.append(f"{'layer':>6}" + "".join(f"{c:>22}" for c in conditions))
    for layer in range(result.n_layers):
        text.append(f"{layer:>6}" + "".join(f"{result.rates[c][layer].format(3):>22}" for c in conditions))
    layer, rate = result.peak()
    text.append(f"embedding {result.embedding_rate.format(3)}; peak at layer {layer}: {rate.format(3)}")
    return finish(args, record, text, files)


def cmd_extraction(args: argparse.Namespace) -> int:
    result, record, files = run_job(args, "mechanisms", "run_extraction")
    text = [
        heading(record),
        "extraction rate: share of prompts whose sublayer output at the last position "
        "decodes to the answer as top-1",
    ]
    text.append(f"{'layer':>6}{'attention':>22}{'MLP':>22}")
    for layer in range(result.n_layers):
        text.append(
            f"{layer:>6}{result.attn_rate[layer].format(3):>22}{result.mlp_rate[layer].format(3):>22}"
        )
    text.append(
        f"prompts with an event at any layer: attention {result.any_event['attn']:.2f}, "
        f"MLP {result.any_event['mlp']:.2f}"
    )
    text.append(
        f"top {args.top} heads by the answer's median rank in their output (and through their OV "
        "map applied to the subject's last token):"
    )
    text.append(f"{'head':>9}{'median rank':>13}{'top-1':>7}{'OV median rank':>16}{'OV top-10':>11}")
    for name in result.by_output[: args.top]:
        h = result.head(name)
        text.append(
            f"{h.head:>9}{h.median_rank:>13g}{h.top1:>7.2f}{h.ov_median_rank:>16g}{h.ov_top10:>11.2f}"
        )
    text.append(
        "top heads by OV rank: "
        + ", ".join(f"{n} ({result.head(n).ov_median_rank:g})" for n in result.by_ov[: args.top])
    )
    return finish(args, record, text, files)


def register(add: Any) -> None:
    """Add ``knockout``, ``enrichment`` and ``extraction`` through ``add(name, help, *parents)``."""
    parents = options.analysis()
    p = add(
        "knockout",
        "block attention from the last position to source roles, per window of layers (Geva et al. 2023)",
        *parents,
    )
    p.add_argument(
        "--window",
        type=options.at_least(1),
        default=None,
        help="layers per window (default round(n_layers / 5); Geva used 9 of 48)",
    )
    p.add_argument(
        "--sources",
        default="subject,relation,last",
        help="comma-separated source sets; roles first, demo, subject, relation, last, joined with '+' "
        "or 'all' (default subject,relation,last)",
    )
    p.add_argument(
        "--block-first",
        action="store_true",
        help="also block the first token (the attention sink), reported separately",
    )
    output_options(p)
    p.set_defaults(func=cmd_knockout)

    p = add(
        "enrichment",
        "attribute rate per layer at the last subject token, with early/late MLP or "
        "attention updates removed (Geva et al. 2023)",
        *parents,
    )
    p.add_argument(
        "--top-k", type=options.at_least(1), default=50, help="logit-lens tokens read per layer (default 50)"
    )
    p.add_argument(
        "--split",
        type=options.at_least(0),
        default=None,
        help="first 'late' layer for the removal conditions (default n_layers // 2)",
    )
    output_options(p)
    p.set_defaults(func=cmd_enrichment)

    p = add(
        "extraction",
        "per layer, how often attention and MLP outputs at the last position decode to "
        "the answer; the heads that rank it highest (Geva et al. 2023)",
        *parents,
    )
    p.add_argument("--top", type=options.at_least(1), default=10, help="heads listed (default 10)")
    output_options(p)
    p.set_defaults(func=cmd_extraction)
