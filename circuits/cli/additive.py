"""``circuits dla`` and ``motif``: what each head writes into the answer, by source, and how groups add up.

Each command takes a relation (bundled name, LRE file or CSV with
``--template``), keeps the facts the model knows, prints a table (or
``--json``), and with ``--out DIR`` writes the JSON record and its SVG figure.
"""

from __future__ import annotations

import argparse
from typing import Any

from circuits.cli import options
from circuits.cli.analysis import finish, heading, output_options, run_job

__all__ = ["register"]

_CLASSES = ("subject", "relation", "mixed")


def _thresholds(args: argparse.Namespace) -> Any:
    from circuits.mechanisms.source_attribution import Thresholds

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
    result, record, files = run_job(args, "additive", "run_dla", direction=args.direction,
                                    thresholds=_thresholds(args), top=args.top)  # fmt: skip
    text = [heading(record), record["dla"],
            f"per-source sums match each head's DLA to {result.max_sum_error:.1e}"]  # fmt: skip
    roles = record["roles"]
    text.append(f"{'head':>9}{'DLA':>24}" + "".join(f"{r:>10}" for r in roles) + f"{'class':>10}")
    for h in record["top_heads"]:
        by_role = "".join(f"{h['by_role'][r]['value']:>10.3f}" for r in roles)
        dla = f"{h['dla']['value']:.3f} [{h['dla']['low']:.3f}, {h['dla']['high']:.3f}]"
        text.append(f"{h['head']:>9}{dla:>24}{by_role}{h['class'] or '-':>10}")
    t = record["thresholds"]
    text.append(f"classes (active: mean DLA > 0, interval excludes 0, >= {t['min_share']:.0%} of the heads' "
                f"positive DLA; subject/relation >= {t['subject_share']:.0%}/{t['relation_share']:.0%} of "
                f"positive DLA from that role, mixed >= {t['mixed_share']:.0%} from each):")  # fmt: skip
    text += ["  " + line for line in _classes_text(record)]
    return finish(args, record, text, files)


def cmd_motif(args: argparse.Namespace) -> int:
    result, record, files = run_job(args, "additive", "run_motif", thresholds=_thresholds(args))
    text = [heading(record), f"groups' direct effects at the last position, ranked among the relation's "
            f"{record['n_candidates']} candidate answers"]  # fmt: skip
    text.append(f"{'group':>16}{'members':>9}{'effect on answer logit':>26}{'ranks it first':>24}"
                f"{'median rank':>13}")  # fmt: skip
    for g in [*record["groups"], "sum"]:
        members = record["members"].get(g, "")
        count = len(members) if isinstance(members, list) else members
        text.append(f"{g:>16}{count!s:>9}{result.contribution[g].format(2):>26}{result.top1[g].format(2):>24}"
                    f"{record['median_rank'][g]:>13g}")  # fmt: skip
    for g in ("subject heads", "relation heads", "mixed heads"):
        if record["members"][g]:
            text.append(f"{g}: {', '.join(record['members'][g][:8])}")
    text.append(f"additive motif (no group alone ranks the answer first, the sum does): {result.motif}")
    return finish(args, record, text, files)


def _threshold_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subject-share", type=float, default=0.7,
                   help="a subject head takes at least this share of its positive DLA from the subject "
                   "(default 0.7)")  # fmt: skip
    p.add_argument("--relation-share", type=float, default=0.7,
                   help="... a relation head from the relation tokens (default 0.7)")  # fmt: skip
    p.add_argument("--mixed-share", type=float, default=0.25,
                   help="... a mixed head at least this from each (default 0.25)")  # fmt: skip
    p.add_argument("--min-share", type=float, default=0.02,
                   help="heads are classified when their mean DLA is at least this share of all heads' "
                   "positive DLA (default 0.02)")  # fmt: skip


def register(add: Any) -> None:
    """Add ``dla`` and ``motif`` through ``add(name, help, *parents)``."""
    parents = (options.relation(), options.model(), options.pairs(), options.seed(), options.json_output(),
               options.quiet())  # fmt: skip
    p = add("dla", "every head's direct logit attribution at the last position, split by source role; "
            "subject, relation and mixed heads (Chughtai et al. 2024)", *parents)  # fmt: skip
    p.add_argument("--direction", choices=("answer", "logit-diff"), default="answer",
                   help="the answer's centred logit, or the logit difference to the counterfactual's answer "
                   "(default answer)")  # fmt: skip
    p.add_argument("--top", type=int, default=20, help="heads listed and drawn (default 20)")
    _threshold_options(p)
    output_options(p)
    p.set_defaults(func=cmd_dla)

    p = add("motif", "the additive motif: subject, relation and mixed heads, MLPs and the rest, each alone "
            "and summed, ranking the answer among the relation's candidates (Chughtai et al. 2024)",
            *parents)  # fmt: skip
    _threshold_options(p)
    output_options(p)
    p.set_defaults(func=cmd_motif)
