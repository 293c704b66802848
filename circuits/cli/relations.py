"""``circuits models``, ``relations`` and ``prompts``: what there is to analyse."""

from __future__ import annotations

import argparse
import json
from typing import Any

from circuits.cli import options

__all__ = ["register"]


def sizing_table(rows: list[dict[str, Any]], positions: int, steps: int, gflops: float) -> str:
    """The rows of :func:`circuits.sizing.sizing_rows` as a Markdown table (the README carries one)."""
    pairs = rows[0]["pairs"]
    lines = [
        f"| model | weights | scoring peak (batch {rows[0]['batch']}) | evaluation peak | "
        f"time per {pairs} pairs at {gflops:g} GFLOP/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        minutes = r["seconds_per_pairs"] / 60
        lines.append(
            f"| {r['name']} | {r['weights_gb']:.1f} GB | {r['scoring_gb']:.1f} GB | "
            f"{r['evaluation_gb']:.1f} GB | {minutes:.1f} min |"
        )
    lines.append(f"\n{positions} positions per pass, EAP-IG with {steps} steps, float32.")
    return "\n".join(lines)


def cmd_sizing(args: argparse.Namespace) -> int:
    from circuits.sizing import sizing_rows

    rows = sizing_rows(args.positions, args.steps, args.gflops * 1e9, pairs=args.pairs)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(sizing_table(rows, args.positions, args.steps, args.gflops))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from circuits.models.catalog import DEFAULT_MODEL, list_models

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
    from circuits.relations import bundled_relations, load_relation
    from circuits.relations.schema import load_relations

    if args.relations:
        return _templates_of([rel for _, rel in load_relations(args.relations)], args)
    relations = {name: load_relation(name) for name in bundled_relations()}
    model = None
    if args.model:
        from circuits.relations.pairs import check_facts

        model = options.load(args)
    rows: list[dict[str, Any]] = []
    for name, relation in relations.items():
        row = {
            "name": name,
            "title": relation.title,
            "facts": len(relation.facts),
            "template": relation.template,
        }
        if model is not None:
            row["known"] = sum(c.known for c in check_facts(model, relation))
        rows.append(row)
    if args.json:
        print(json.dumps({"model": args.model, "relations": rows}, indent=2))
        return 0
    print(f"{'relation':<28}{'facts':>6}" + (f"{'known':>7}" if model else "") + "  template")
    for row in rows:
        count = f"{row['known']:>7}" if model else ""
        print(f"{row['name']:<28}{row['facts']:>6}{count}  {row['template']}")
    print("(`circuits relations NAME-OR-FILE --model M` compares a relation's templates and shot counts)")
    return 0


def _templates_of(relations: list[Any], args: argparse.Namespace) -> int:
    """Each relation's templates; with a model, the facts it knows per template and shot count."""
    if not args.model:
        out = [
            {"name": r.name, "facts": len(r.facts), "templates": list(r.prompt_templates)} for r in relations
        ]
        if args.json:
            print(json.dumps({"model": None, "relations": out}, indent=2))
            return 0
        for r in out:
            print(
                f"{r['name']}: {r['facts']} facts; templates "
                "(give --model to see how many facts a model knows):"
            )
            for i, t in enumerate(r["templates"]):
                print(f"  {i}  {t}")
        return 0
    from circuits.relations.survey import survey_prompts

    model = options.load(args)
    shots = args.shots if args.shots is not None else (0, 1, 3)
    tables = {
        r.name: survey_prompts(
            model,
            r,
            shots=[shots] if isinstance(shots, int) else shots,
            pick_shots=args.shots,
            seed=args.seed,
            max_rank=args.max_rank,
            min_prob=args.min_prob,
            progress=not args.quiet,
        )
        for r in relations
    }
    if args.json:
        print(json.dumps({"model": model.name, "relations": tables}, indent=2))
        return 0
    for name, rows in tables.items():
        print(
            f"{name}: facts {model.name} knows (answer at rank <= {args.max_rank}), "
            "per template and shot count"
        )
        print(f"  {'#':>2} {'shots':>5} {'known':>11} {'mean p':>7}  template")
        for r in rows:
            mark = "  <- picked by `circuits score` (--templates best)" if r["default"] else ""
            print(
                f"  {r['index']:>2} {r['shots']:>5} {r['n_known']:>4} of {r['n_facts']:<4} "
                f"{r['mean_prob']:>7.2f}  {r['template']}{mark}"
            )
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from circuits.relations import load_relation
    from circuits.relations.pairs import make_pairs
    from circuits.relations.samples import prompt_summary

    relation = load_relation(args.relation, template=args.template)  # a bad file fails before the model loads
    model = options.load(args)
    pairs = make_pairs(
        model,
        relation,
        seed=args.seed,
        template=args.template,
        templates=args.templates,
        shots=args.shots,
        max_rank=args.max_rank,
        min_prob=args.min_prob,
        max_pairs=args.max_pairs,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "relation": relation.name,
                    "model": model.name,
                    "template": pairs.template,
                    "facts": pairs.n_facts,
                    "known": pairs.n_known,
                    "no_counterfactual": pairs.n_no_counterfactual,
                    "seed": pairs.seed,
                    "scoring": [p.as_dict() for p in pairs.scoring],
                    "heldout": [p.as_dict() for p in pairs.heldout],
                },
                indent=2,
            )
        )
        return 0
    print(prompt_summary(pairs))
    print(
        f"{relation.name}: {pairs.n_known} of {pairs.n_facts} facts known to {model.name}; "
        f"{len(pairs.pairs)} pairs ({len(pairs.scoring)} scoring, {len(pairs.heldout)} held out), "
        f"{pairs.n_no_counterfactual} without an equal-length counterfactual"
    )
    for split, group in (("scoring", pairs.scoring), ("heldout", pairs.heldout)):
        for p in group[: args.limit]:
            r = p.roles
            print(
                f"[{split}] {p.clean_text!r} -> {p.answer_text!r} (p={p.clean_prob:.2f}) | "
                f"{p.corrupt_text!r} -> {p.corrupt_answer_text!r} | subject {r.subject} "
                f"last_subject {r.last_subject} last {r.last}"
            )
    return 0


def register(add: Any) -> None:
    """Add ``models``, ``relations`` and ``prompts`` through ``add(name, help, *parents)``."""
    p = add("models", "list the models that load without the hub", options.json_output())
    p.set_defaults(func=cmd_models)

    from circuits.sizing import MEASURED_GFLOPS

    p = add(
        "sizing",
        "memory and time of scoring per 100 prompt pairs for SmolLM2-135M, a 1B and an 8B "
        "Llama-architecture model, from the formulas the batch size is chosen by",
        options.json_output(),
    )
    p.add_argument(
        "--positions",
        type=options.at_least(1),
        default=10,
        help="positions per pass, after the shared prefix (default 10)",
    )
    p.add_argument("--steps", type=options.at_least(1), default=5, help="EAP-IG steps (default 5)")
    p.add_argument("--pairs", type=options.at_least(1), default=100, help="prompt pairs (default 100)")
    p.add_argument(
        "--gflops",
        type=float,
        default=MEASURED_GFLOPS,
        help=f"the machine's rate in GFLOP/s (default {MEASURED_GFLOPS:g}: measured with "
        "tests/benchmarks/bench_memory.py on a 2-core CPU)",
    )
    p.set_defaults(func=cmd_sizing)

    p = add(
        "relations",
        "list bundled relations (with --model: how many facts it knows); given relations, "
        "compare their templates and shot counts",
        options.model(default=None),
        options.seed(),
        options.json_output(),
        options.quiet(),
    )
    p.add_argument(
        "relations",
        nargs="*",
        metavar="RELATION",
        help="bundled relation names or LRE-schema JSON files whose templates to compare",
    )
    p.add_argument(
        "--shots",
        type=options.at_least(0),
        default=None,
        metavar="N",
        help="compare only this shot count (default: 0, 1 and 3)",
    )
    p.add_argument(
        "--max-rank",
        type=options.at_least(1),
        default=1,
        help="a fact is known when its answer ranks at most this (default 1: top-1)",
    )
    p.add_argument(
        "--min-prob",
        type=options.in_range(0, 1),
        default=0.0,
        help="... and has at least this probability (default 0)",
    )
    p.set_defaults(func=cmd_relations)

    p = add(
        "prompts",
        "the prompt pairs of a relation for a model",
        options.relation(),
        options.model(),
        options.pairs(),
        options.seed(),
        options.json_output(),
    )
    p.add_argument(
        "--limit", type=options.at_least(0), default=10, help="pairs shown per split (text output)"
    )
    p.set_defaults(func=cmd_prompts)
