"""``circuits dla``, ``motif`` and ``suppression``: what components write into the answer at the last position.

``dla`` splits each head's direct effect by source role, ``motif`` groups
components and ranks the answer, ``suppression`` finds last-layer components
that push the answer down across relations and scales them. Each command takes
relations (bundled names, LRE files or CSVs with ``--template``), keeps the facts the model knows, prints a table (or
``--json``), and with ``--out DIR`` writes the JSON record and its SVG figure.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.cli import options
from circuits.cli.analysis import finish, heading, output_options, prompt_choice, run_job

__all__ = ["register"]

_CLASSES = ("subject", "relation", "mixed")


def _thresholds(args: argparse.Namespace) -> Any:
    from circuits.mechanisms.per_source_dla import Thresholds

    return Thresholds(args.subject_share, args.relation_share, args.mixed_share, args.min_share)


def _classes_text(record: dict[str, Any]) -> list[str]:
    heads = {h["head"]: h for h in record["heads"]}
    lines = []
    for c in _CLASSES:
        names = record["classes"][c]
        listed = ", ".join(f"{n} ({heads[n]['dla']['value']:.2f})" for n in names[:5])
        lines.append(f"{c} heads: {len(names)}" + (f" — {listed}" if names else ""))
    return lines


def cmd_dla(args: argparse.Namespace) -> int:
    result, record, files = run_job(
        args, "additive", "run_dla", direction=args.direction, thresholds=_thresholds(args), top=args.top
    )
    text = [
        heading(record),
        record["dla"],
        f"per-source sums match each head's DLA to {result.max_sum_error:.1e}",
    ]
    roles = record["roles"]
    text.append(f"{'head':>9}{'DLA':>24}" + "".join(f"{r:>10}" for r in roles) + f"{'class':>10}")
    for h in record["top_heads"]:
        by_role = "".join(f"{h['by_role'][r]['value']:>10.3f}" for r in roles)
        dla = f"{h['dla']['value']:.3f} [{h['dla']['low']:.3f}, {h['dla']['high']:.3f}]"
        text.append(f"{h['head']:>9}{dla:>24}{by_role}{h['class'] or '-':>10}")
    t = record["thresholds"]
    text.append(
        f"classes (active: mean DLA > 0, interval excludes 0, >= {t['min_share']:.0%} of the heads' "
        f"positive DLA; subject/relation >= {t['subject_share']:.0%}/{t['relation_share']:.0%} of "
        f"positive DLA from that role, mixed >= {t['mixed_share']:.0%} from each):"
    )
    text += ["  " + line for line in _classes_text(record)]
    return finish(args, record, text, files)


def cmd_motif(args: argparse.Namespace) -> int:
    result, record, files = run_job(args, "additive", "run_motif", thresholds=_thresholds(args))
    text = [
        heading(record),
        f"groups' direct effects at the last position, ranked among the relation's "
        f"{record['n_candidates']} candidate answers",
    ]
    text.append(
        f"{'group':>16}{'members':>9}{'effect on answer logit':>26}{'ranks it first':>24}{'median rank':>13}"
    )
    for g in [*record["groups"], "sum"]:
        members = record["members"].get(g, "")
        count = len(members) if isinstance(members, list) else members
        text.append(
            f"{g:>16}{count!s:>9}{result.contribution[g].format(2):>26}{result.top1[g].format(2):>24}"
            f"{record['median_rank'][g]:>13g}"
        )
    for g in ("subject heads", "relation heads", "mixed heads"):
        if record["members"][g]:
            text.append(f"{g}: {', '.join(record['members'][g][:8])}")
    text.append(f"additive motif (no group alone ranks the answer first, the sum does): {result.motif}")
    return finish(args, record, text, files)


def cmd_suppression(args: argparse.Namespace) -> int:
    from circuits.jobs.suppression import run_suppression

    model = options.load(args)
    result, record, files = run_suppression(
        model,
        args.relations,
        prompt_choice(args),
        last_layers=args.last_layers,
        alpha=args.alpha,
        majority=args.majority,
        relations_share=args.relations_share,
        heldout_fraction=args.heldout_fraction,
        n_control=args.control,
        n_boot=args.boot,
        out=args.out,
        store=args.store,
        progress=not args.quiet,
    )
    text = [
        f"{record['model']}: last {len(result.layers)} layers ({', '.join(map(str, result.layers))}) on "
        f"{len(result.relations)} relations; direct effect on the answer's centred logit, scoring prompts"
    ]
    text.append(
        f"suppressors (negative on > {result.majority:.0%} of prompts of >= "
        f"{result.relations_share:.0%} of relations): "
        + (
            ", ".join(
                f"{s} ({len(result.suppresses_on(s))}/{len(result.relations)})" for s in result.suppressors
            )
            or "none"
        )
    )
    for relation, comps in result.effects.items():
        worst = sorted(comps, key=lambda c: c.effect.value)[:3]
        text.append(
            f"  {relation}: most negative "
            + ", ".join(f"{c.name} {c.effect.format(2)} (negative on {c.negative_share:.0%})" for c in worst)
        )
    text.append(f"mitigation: suppressors scaled by {result.alpha:g}, held-out prompts")
    text.append(
        f"{'relation':>24}{'n':>4}{'accuracy before':>24}{'after':>20}{'p(answer) before':>24}{'after':>20}"
    )
    for relation, m in result.mitigation.items():
        text.append(
            f"{relation:>24}{m.n_prompts:>4}{m.before['accuracy'].format(2):>24}"
            f"{m.after['accuracy'].format(2):>20}{m.before['answer_prob'].format(3):>26}"
            f"{m.after['answer_prob'].format(3):>24}"
        )
    if result.control:
        c = result.control
        text.append(
            f"control: next-token loss on {result.control_texts} other sentences {c['before'].format(3)}"
            f" -> {c['after'].format(3)} nats; change {c['change'].format(3)}"
        )
    return finish(args, record, text, files)


def _threshold_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--subject-share",
        type=options.in_range(0, 1),
        default=0.7,
        help="a subject head takes at least this share of its positive DLA from the subject (default 0.7)",
    )
    p.add_argument(
        "--relation-share",
        type=options.in_range(0, 1),
        default=0.7,
        help="... a relation head from the relation tokens (default 0.7)",
    )
    p.add_argument(
        "--mixed-share",
        type=options.in_range(0, 1),
        default=0.25,
        help="... a mixed head at least this from each (default 0.25)",
    )
    p.add_argument(
        "--min-share",
        type=options.in_range(0, 1),
        default=0.02,
        help="heads are classified when their mean DLA is at least this share of all heads' "
        "positive DLA (default 0.02)",
    )


def register(add: Any) -> None:
    """Add ``dla``, ``motif`` and ``suppression`` through ``add(name, help, *parents)``."""
    parents = options.analysis()
    p = add(
        "dla",
        "every head's direct logit attribution at the last position, split by source role; "
        "subject, relation and mixed heads (Chughtai et al. 2024)",
        *parents,
    )
    p.add_argument(
        "--direction",
        choices=("answer", "logit-diff"),
        default="answer",
        help="the answer's centred logit, or the logit difference to the counterfactual's answer "
        "(default answer)",
    )
    p.add_argument("--top", type=options.at_least(1), default=20, help="heads listed and drawn (default 20)")
    _threshold_options(p)
    output_options(p)
    p.set_defaults(func=cmd_dla)

    p = add(
        "suppression",
        "last-layer components that push the answer down on most facts of most relations, "
        "and scaling them by alpha (Lv et al. 2024)",
        options.model(),
        options.pairs(),
        options.seed(),
        options.boot(),
        options.json_output(),
        options.quiet(),
    )
    p.add_argument(
        "relations",
        nargs="+",
        metavar="RELATION",
        help="bundled relation names, LRE-schema JSON files or subject,object CSVs",
    )
    p.add_argument(
        "--template", help="a template with one '{}' for every relation (default: each one's first)"
    )
    p.add_argument(
        "--last-layers",
        type=options.at_least(1),
        default=2,
        help="how many final layers to examine (default 2)",
    )
    p.add_argument(
        "--alpha",
        type=options.in_range(0, 1),
        default=0.5,
        help="scale of the suppressors, in [0, 1] (default 0.5)",
    )
    p.add_argument(
        "--majority",
        type=options.in_range(0, 1),
        default=0.5,
        help="a component suppresses on a relation when negative on more than this share of its "
        "prompts (default 0.5)",
    )
    p.add_argument(
        "--relations-share",
        type=options.in_range(0, 1),
        default=0.5,
        help="... and is a suppressor when it does on at least this share of the relations (default 0.5)",
    )
    p.add_argument(
        "--heldout-fraction",
        type=options.in_range(0, 1),
        default=0.4,
        help="share of each relation's pairs held out to measure the mitigation (default 0.4)",
    )
    p.add_argument(
        "--control",
        type=options.at_least(1),
        default=64,
        metavar="N",
        help="control sentences from relations not analysed (default 64)",
    )
    output_options(p)
    p.set_defaults(func=cmd_suppression)

    p = add(
        "motif",
        "the additive motif: subject, relation and mixed heads, MLPs and the rest, each alone "
        "and summed, ranking the answer among the relation's candidates (Chughtai et al. 2024)",
        *parents,
    )
    _threshold_options(p)
    output_options(p)
    p.set_defaults(func=cmd_motif)
