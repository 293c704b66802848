"""The ``circuits`` command.

Subcommands: ``models``, ``relations``, ``prompts``, ``score``, ``evaluate``
(this module); ``extract``, ``render``, ``compare``, ``reuse``
(:mod:`circuits.graphs_cli`); ``channels`` (:mod:`circuits.channels.cli`).
Errors the user can fix are printed as one line naming what was wrong and what
would be valid, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuits.vocab import Ablation, CircuitsError, Method, Metric

__all__ = ["main"]


def _model(args: argparse.Namespace) -> Any:
    from circuits.models import load_model

    return load_model(args.model, device=args.device)


def cmd_models(args: argparse.Namespace) -> int:
    from circuits.models import DEFAULT_MODEL, list_models

    models = list_models()
    if args.json:
        print(json.dumps({"default": DEFAULT_MODEL, "models": models}, indent=2))
        return 0
    for name, about in models.items():
        mark = "*" if name == DEFAULT_MODEL else " "
        print(f"{mark} {name:<20} {about}")
    print("  (any Hugging Face model name also works when its hub or local cache is reachable)")
    return 0


def cmd_relations(args: argparse.Namespace) -> int:
    from circuits.data import bundled_relations, check_facts, load_relation

    model = _model(args) if args.model else None
    rows = []
    for name in bundled_relations():
        relation = load_relation(name)
        row: dict[str, Any] = {"name": name, "title": relation.title, "facts": len(relation.facts),
                               "template": relation.template}  # fmt: skip
        if model is not None:
            row["known"] = sum(c.known for c in check_facts(model, relation))
        rows.append(row)
    if args.json:
        print(json.dumps({"model": args.model, "relations": rows}, indent=2))
        return 0
    header = f"{'relation':<28}{'facts':>6}" + (f"{'known':>7}" if model else "") + "  template"
    print(header)
    for row in rows:
        known = f"{row['known']:>7}" if model else ""
        print(f"{row['name']:<28}{row['facts']:>6}{known}  {row['template']}")
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from circuits.data import load_relation, make_pairs

    model = _model(args)
    relation = load_relation(args.relation, template=args.template)
    pairs = make_pairs(model, relation, seed=args.seed, template=args.template,
                       max_rank=args.max_rank, min_prob=args.min_prob)  # fmt: skip
    if args.json:
        print(json.dumps({
            "relation": relation.name, "model": model.name, "template": pairs.template,
            "facts": pairs.n_facts, "known": pairs.n_known,
            "no_counterfactual": pairs.n_no_counterfactual, "seed": pairs.seed,
            "scoring": [p.as_dict() for p in pairs.scoring],
            "heldout": [p.as_dict() for p in pairs.heldout],
        }, indent=2))  # fmt: skip
        return 0
    print(f"{relation.name}: {pairs.n_known} of {pairs.n_facts} facts known to {model.name}; "
          f"{len(pairs.pairs)} pairs ({len(pairs.scoring)} scoring, {len(pairs.heldout)} held out), "
          f"{pairs.n_no_counterfactual} without an equal-length counterfactual")  # fmt: skip
    for split, group in (("scoring", pairs.scoring), ("heldout", pairs.heldout)):
        for p in group[: args.limit]:
            r = p.roles
            print(f"[{split}] {p.clean_text!r} -> {p.answer_text!r} (p={p.clean_prob:.2f}) | "
                  f"{p.corrupt_text!r} -> {p.corrupt_answer_text!r} | subject {r.subject} "
                  f"last_subject {r.last_subject} last {r.last}")  # fmt: skip
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from circuits.pipeline import ScoreSettings, score_relation
    from circuits.store import save_scored

    model = _model(args)
    settings = ScoreSettings(method=args.method, metric=args.metric, ablation=args.ablation,
                             ig_steps=args.ig_steps, seed=args.seed, batch_size=args.batch_size,
                             max_pairs=args.max_pairs, exact_top=args.exact_top,
                             max_rank=args.max_rank, min_prob=args.min_prob)  # fmt: skip
    graph, pairs = score_relation(
        model, args.relation, settings, template=args.template, progress=not args.quiet
    )
    out = save_scored(args.out, graph, pairs.relation)
    meta = graph.metadata
    print(f"scored {graph.n_edges} edges of {model.name} on {meta['relation']} "
          f"({meta['n_pairs_scoring']} pairs, {meta['method']}) in {meta['seconds']} s -> {out}")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from circuits.pipeline import evaluate_scored

    result, graph = evaluate_scored(args.dir, progress=not args.quiet, split=args.split)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    meta = graph.metadata
    print(f"{meta['model']} / {meta['relation']} / {meta['method']}: {result.n_pairs} "
          f"{args.split} pairs, clean {meta['metric']} {result.clean_metric:.3f}, "
          f"corrupted {result.corrupt_metric:.3f}")  # fmt: skip
    print(f"{'edges %':>8}{'edges':>8}{'F signed':>10}{'F |s|':>8}{'F random':>10}{'Hit@10':>8}")
    for f, s, a, r, h in zip(result.fractions, result.signed, result.absolute, result.random,
                             result.hit_at_10, strict=True):  # fmt: skip
        n = max(1, round(f * result.n_edges))
        print(f"{100 * f:>8.1f}{n:>8}{s:>10.3f}{a:>8.3f}{r:>10.3f}{h:>8.2f}")
    print(f"CPR {result.cpr:.3f}   CMD {result.cmd:.3f}   random CPR {result.random_cpr:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from circuits.models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(
        prog="circuits", description="Circuit-discovery graph engine for transformer language models."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def known_filter(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-rank",
            type=int,
            default=1,
            help="a fact is known when its answer ranks at most this (default 1: top-1)",
        )
        p.add_argument("--min-prob", type=float, default=0.0,
                       help="... and has at least this probability (default 0)")  # fmt: skip

    def add(name: str, help_text: str, *, model: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if model:
            p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
            p.add_argument("--device", default="cpu", help="torch device (default cpu)")
        return p

    p = add("models", "list the models that load without the hub", model=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = add("relations", "list bundled relations (with --model: how many facts it knows)")
    p.set_defaults(model=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_relations)

    p = add("prompts", "the prompt pairs of a relation for a model")
    p.add_argument("relation", help="bundled relation name, LRE-schema JSON file or subject,object CSV")
    p.add_argument("--template", help="a template with one '{}' (default: the relation's first; "
                   "required for a CSV relation)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=10, help="pairs shown per split (text output)")
    known_filter(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prompts)

    p = add("score", "score every edge of the model's graph on a relation")
    p.add_argument("relation", help="bundled relation name, LRE-schema JSON file or subject,object CSV")
    p.add_argument("--template", help="a template with one '{}' (required for a CSV relation)")
    p.add_argument("--method", default=Method.EAP_IG.value, choices=[m.value for m in Method])
    p.add_argument("--metric", default=Metric.LOGIT_DIFF.value, choices=[m.value for m in Metric])
    p.add_argument("--ablation", default=Ablation.COUNTERFACTUAL.value,
                   choices=[a.value for a in Ablation])  # fmt: skip
    p.add_argument("--ig-steps", type=int, default=5)
    p.add_argument("--exact-top", type=int, default=500,
                   help="with --method exact: edges re-scored exactly (0 = all)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    known_filter(p)
    p.add_argument("--out", required=True, type=Path, help="directory to write the scored graph to")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_score)

    p = add("evaluate", "faithfulness curve, CPR, CMD and Hit@10 of a scored graph", model=False)
    p.add_argument("dir", type=Path, help="a directory written by `circuits score`")
    p.add_argument("--split", default="heldout", choices=["heldout", "scoring"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_evaluate)

    from circuits.channels.cli import add_parser as add_channels
    from circuits.graphs_cli import add_parsers

    add_parsers(sub)
    add_channels(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args))
    except CircuitsError as error:
        print(f"circuits {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
