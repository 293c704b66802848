"""``circuits models``, ``relations`` and ``prompts``: what there is to analyse."""

from __future__ import annotations

import argparse
import json
from typing import Any

from circuits.cli import options

__all__ = ["register"]


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

    relations = {name: load_relation(name) for name in bundled_relations()}
    model = None
    if args.model:
        from circuits.models import load_model
        from circuits.relations.pairs import check_facts

        model = load_model(args.model, device=args.device)
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
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    from circuits.models import load_model
    from circuits.relations import load_relation
    from circuits.relations.pairs import make_pairs

    relation = load_relation(args.relation, template=args.template)  # a bad file fails before the model loads
    model = load_model(args.model, device=args.device)
    pairs = make_pairs(model, relation, seed=args.seed, template=args.template, max_rank=args.max_rank,
                       min_prob=args.min_prob, max_pairs=args.max_pairs)  # fmt: skip
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


def register(add: Any) -> None:
    """Add ``models``, ``relations`` and ``prompts`` through ``add(name, help, *parents)``."""
    p = add("models", "list the models that load without the hub", options.json_output())
    p.set_defaults(func=cmd_models)

    p = add("relations", "list bundled relations (with --model: how many facts it knows)",
            options.model(default=None), options.json_output())  # fmt: skip
    p.set_defaults(func=cmd_relations)

    p = add("prompts", "the prompt pairs of a relation for a model", options.relation(), options.model(),
            options.pairs(), options.seed(), options.json_output())  # fmt: skip
    p.add_argument(
        "--limit", type=options.at_least(0), default=10, help="pairs shown per split (text output)"
    )
    p.set_defaults(func=cmd_prompts)
