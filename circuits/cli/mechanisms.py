"""``circuits knockout``, ``enrichment`` and ``extraction``: how information reaches the last position.

Each command takes a relation (bundled name, LRE file or CSV with
``--template``), keeps the facts the model knows, runs one analysis of
:mod:`circuits.mechanisms`, prints a table (or ``--json``), and with
``--out DIR`` writes the JSON record and its SVG figure there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.cli import options

__all__ = ["register"]


def _choice(args: argparse.Namespace) -> Any:
    from circuits.pipeline.mechanisms import PromptChoice

    return PromptChoice(template=args.template, seed=args.seed, max_pairs=args.max_pairs,
                        max_rank=args.max_rank, min_prob=args.min_prob)  # fmt: skip


def _run(args: argparse.Namespace, job: str, **options: Any) -> tuple[Any, dict[str, Any], list[Path]]:
    """Load the model and run ``circuits.pipeline.mechanisms.<job>`` with the shared options."""
    from circuits.models import load_model
    from circuits.pipeline import mechanisms

    model = load_model(args.model, device=args.device)
    return getattr(mechanisms, job)(model, args.relation, _choice(args), n_boot=args.boot, out=args.out,
                                    store=args.store, progress=not args.quiet, **options)  # fmt: skip


def _finish(args: argparse.Namespace, record: dict[str, Any], text: list[str], files: list[Path]) -> int:
    if args.json:
        print(json.dumps(record, indent=2, allow_nan=False))
        return 0
    if files:
        text.append("wrote " + ", ".join(str(f) for f in files))
    print("\n".join(text))
    return 0


def _head(record: dict[str, Any]) -> str:
    p = record["prompts"]
    return (f"{record['model']} / {record['relation']}: {record['n_prompts']} known-fact prompts "
            f"({p['n_known']} of {p['n_facts']} facts known), template {p['template']!r}")  # fmt: skip


def _span(start: int, window: int) -> str:
    if window == 0:
        return f"{start} (none)"
    return str(start) if window == 1 else f"{start}-{start + window - 1}"


def cmd_knockout(args: argparse.Namespace) -> int:
    result, record, files = _run(args, "run_knockout", window=args.window, sources=args.sources,
                                 block_first=args.block_first)  # fmt: skip
    curves = [*result.curves, *([result.sink] if result.sink else [])]
    text = [_head(record), f"baseline p(answer) {result.baseline_prob}; window of {result.window} "
            f"layer{'' if result.window == 1 else 's'}; "
            f"effect = (p_knock - p) / p, mean [95% bootstrap interval]"]  # fmt: skip
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
    return _finish(args, record, text, files)


def cmd_enrichment(args: argparse.Namespace) -> int:
    result, record, files = _run(args, "run_enrichment", top_k=args.top_k, split=args.split)
    text = [_head(record), f"attribute rate at the last subject token (share of the top-{result.top_k} "
            f"logit-lens tokens that are attributes of the subject); {result.n_no_attributes} prompts "
            "without attribute words left out"]  # fmt: skip
    conditions = list(result.rates)
    text.append(f"{'layer':>6}" + "".join(f"{c:>22}" for c in conditions))
    for layer in range(result.n_layers):
        text.append(f"{layer:>6}" + "".join(f"{result.rates[c][layer].format(3):>22}" for c in conditions))
    layer, rate = result.peak()
    text.append(f"embedding {result.embedding_rate.format(3)}; peak at layer {layer}: {rate.format(3)}")
    return _finish(args, record, text, files)


def cmd_extraction(args: argparse.Namespace) -> int:
    result, record, files = _run(args, "run_extraction")
    text = [_head(record), "extraction rate: share of prompts whose sublayer output at the last position "
            "decodes to the answer as top-1"]  # fmt: skip
    text.append(f"{'layer':>6}{'attention':>22}{'MLP':>22}")
    for layer in range(result.n_layers):
        text.append(
            f"{layer:>6}{result.attn_rate[layer].format(3):>22}{result.mlp_rate[layer].format(3):>22}"
        )
    text.append(f"prompts with an event at any layer: attention {result.any_event['attn']:.2f}, "
                f"MLP {result.any_event['mlp']:.2f}")  # fmt: skip
    text.append(f"top {args.top} heads by the answer's median rank in their output (and through their OV "
                "map applied to the subject's last token):")  # fmt: skip
    text.append(f"{'head':>9}{'median rank':>13}{'top-1':>7}{'OV median rank':>16}{'OV top-10':>11}")
    for name in result.by_output[: args.top]:
        h = result.head(name)
        text.append(
            f"{h.head:>9}{h.median_rank:>13g}{h.top1:>7.2f}{h.ov_median_rank:>16g}{h.ov_top10:>11.2f}"
        )
    text.append("top heads by OV rank: " + ", ".join(
        f"{n} ({result.head(n).ov_median_rank:g})" for n in result.by_ov[: args.top]))  # fmt: skip
    return _finish(args, record, text, files)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--boot", type=int, default=200, metavar="B",
                   help="bootstrap resamples for the 95%% intervals (default 200)")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="write <analysis>.json and <analysis>.svg here")
    p.add_argument("--store", type=Path, default=None, metavar="ROOT",
                   help="also store them in the gallery ROOT (e.g. graphs): ROOT/<model>/<relation>/mechanisms/")  # fmt: skip


def register(add: Any) -> None:
    """Add ``knockout``, ``enrichment`` and ``extraction`` through ``add(name, help, *parents)``."""
    parents = (options.relation(), options.model(), options.pairs(), options.seed(), options.json_output(),
               options.quiet())  # fmt: skip
    p = add("knockout", "block attention from the last position to source roles, per window of layers "
            "(Geva et al. 2023)", *parents)  # fmt: skip
    p.add_argument("--window", type=int, default=None,
                   help="layers per window (default round(n_layers / 5); Geva used 9 of 48)")  # fmt: skip
    p.add_argument("--sources", default="subject,relation,last",
                   help="comma-separated source sets; roles first, subject, relation, last, joined with '+' "
                   "or 'all' (default subject,relation,last)")  # fmt: skip
    p.add_argument("--block-first", action="store_true",
                   help="also block the first token (the attention sink), reported separately")  # fmt: skip
    _common(p)
    p.set_defaults(func=cmd_knockout)

    p = add("enrichment", "attribute rate per layer at the last subject token, with early/late MLP or "
            "attention updates removed (Geva et al. 2023)", *parents)  # fmt: skip
    p.add_argument("--top-k", type=int, default=50, help="logit-lens tokens read per layer (default 50)")
    p.add_argument("--split", type=int, default=None,
                   help="first 'late' layer for the removal conditions (default n_layers // 2)")  # fmt: skip
    _common(p)
    p.set_defaults(func=cmd_enrichment)

    p = add("extraction", "per layer, how often attention and MLP outputs at the last position decode to "
            "the answer; the heads that rank it highest (Geva et al. 2023)", *parents)  # fmt: skip
    p.add_argument("--top", type=int, default=10, help="heads listed (default 10)")
    _common(p)
    p.set_defaults(func=cmd_extraction)
