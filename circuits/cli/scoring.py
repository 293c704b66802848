"""``circuits score`` and ``evaluate``: a relation's scored graph and its faithfulness."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from circuits.cli import options
from circuits.graph import N_ROLES, POSITIONS, SUMMED
from circuits.store.scored import META, RELATION, SCORES
from circuits.vocab import Ablation, Metric, ScoreMethod

__all__ = ["register"]


def cmd_score(args: argparse.Namespace) -> int:
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings
    from circuits.relations import load_relation
    from circuits.relations.samples import prompt_summary
    from circuits.store import save_scored
    from circuits.store.outputs import check_scored_out, remove_old_run

    old_run = check_scored_out(args.out, force=args.force)
    relation = load_relation(args.relation, template=args.template)  # a bad file fails before the model loads
    model = options.load(args)
    settings = ScoreSettings(
        score_method=args.score_method,
        metric=args.metric,
        ablation=args.ablation,
        ig_steps=args.ig_steps,
        seed=args.seed,
        batch_size=args.batch_size,
        max_pairs=args.max_pairs,
        exact_top=args.exact_top,
        max_rank=args.max_rank,
        min_prob=args.min_prob,
        positions=args.positions,
        templates=args.templates,
        shots=args.shots,
        shared_prefix=not args.full_prompts,
    )
    graph, pairs = score_relation(model, relation, settings, template=args.template, progress=not args.quiet)
    out = save_scored(args.out, graph, pairs.relation)
    removed = remove_old_run(old_run, [out / name for name in (META, SCORES, RELATION)])
    meta = graph.metadata
    print(prompt_summary(pairs))
    units = f" x {N_ROLES} roles" if graph.role_scores is not None else ""
    print(
        f"scored {graph.n_edges} edges{units} of {model.name} on {meta['relation']} "
        f"({meta['n_pairs_scoring']} pairs, {meta['score_method']}) in {meta['seconds']} s -> {out}"
    )
    prefix = meta["shared_prefix"]
    if prefix["used"]:
        print(
            f"shared prefix: {100 * prefix['share']:.0f}% of the positions ran once per batch "
            "(tokens both prompts of a pair begin with)"
        )
    else:
        print(f"full prompts: {prefix['reason']}")
    if removed:
        names = ", ".join(p.name for p in removed[:4]) + (", ..." if len(removed) > 4 else "")
        print(f"replaced the previous run: removed {len(removed)} of its files ({names})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from circuits.evaluate.heldout import evaluate_scored

    result, graph = evaluate_scored(args.dir, progress=not args.quiet, split=args.split, n_boot=args.boot)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    meta = graph.metadata
    ivs = result.intervals

    def cell(value: float, name: str, i: int | None = None, digits: int = 3, boot_digits: int = 2) -> str:
        """``value``, or ``value [low, high]`` when there are intervals."""
        if ivs is None:
            return f"{value:.{digits}f}"
        iv = getattr(ivs, name)
        return (iv if i is None else iv[i]).format(boot_digits)

    print(
        f"{meta['model']} / {meta['relation']} / {meta['score_method']}: {result.n_pairs} "
        f"{args.split} pairs, clean {meta['metric']} {cell(result.clean_metric, 'clean_metric')}, "
        f"corrupted {cell(result.corrupt_metric, 'corrupt_metric')}"
    )
    w, h = (23, 20) if ivs is not None else (10, 8)
    unit = "units" if graph.role_scores is not None else "edges"
    print(f"{unit + ' %':>8}{unit:>8}{'F signed':>{w}}{'F |s|':>{w}}{'F random':>{w}}{'Hit@10':>{h}}")
    for i, (f, s, a, r, hit) in enumerate(
        zip(result.fractions, result.signed, result.absolute, result.random, result.hit_at_10, strict=True)
    ):
        n = max(1, round(f * result.n_edges))
        print(
            f"{100 * f:>8.1f}{n:>8}{cell(s, 'signed', i):>{w}}{cell(a, 'absolute', i):>{w}}"
            f"{cell(r, 'random', i):>{w}}{cell(hit, 'hit_at_10', i, 2):>{h}}"
        )
    print(
        f"CPR {cell(result.cpr, 'cpr', boot_digits=3)}   CMD {cell(result.cmd, 'cmd', boot_digits=3)}   "
        f"random CPR {cell(result.random_cpr, 'random_cpr', boot_digits=3)}"
    )
    if ivs is not None:
        print(
            f"[low, high]: 95% percentile bootstrap over the {result.n_pairs} pairs "
            f"({ivs.n_boot} resamples, seed {ivs.seed})"
        )
    return 0


def register(add: Any) -> None:
    """Add ``score`` and ``evaluate`` through ``add(name, help, *parents)``."""
    p = add(
        "score",
        "score every edge of the model's graph on a relation",
        options.relation(),
        options.model(),
        options.pairs(),
        options.seed(),
        options.quiet(),
    )
    p.add_argument(
        "--score-method",
        default=ScoreMethod.EAP_IG.value,
        choices=[m.value for m in ScoreMethod],
        help="how edges are scored (default eap-ig)",
    )
    p.add_argument("--metric", default=Metric.LOGIT_DIFF.value, choices=[m.value for m in Metric])
    p.add_argument("--ablation", default=Ablation.COUNTERFACTUAL.value, choices=[a.value for a in Ablation])
    p.add_argument("--ig-steps", type=options.at_least(1), default=5)
    p.add_argument(
        "--exact-top",
        type=options.at_least(0),
        default=500,
        help="with --score-method exact: edges re-scored exactly (0 = all)",
    )
    options.add_batch_size(p)
    p.add_argument(
        "--positions",
        default=SUMMED,
        choices=list(POSITIONS),
        help="summed: one score per edge (default); roles: also split by the role of the position "
        "(first, demo, subject, relation, last), for position-aware circuits",
    )
    p.add_argument(
        "--full-prompts",
        action="store_true",
        help="run every pass on the whole prompts instead of once on the tokens both prompts of a pair "
        "begin with (the shared-prefix cache; the scores are the same, only slower)",
    )
    p.add_argument(
        "--out", required=True, type=options.out_dir, help="directory to write the scored graph to"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a scored graph already in --out, with the circuits and diagrams made from it",
    )
    p.set_defaults(func=cmd_score)

    p = add(
        "evaluate",
        "faithfulness curve, CPR, CMD and Hit@10 of a scored graph, with bootstrap intervals",
        options.boot(),
        options.json_output(),
        options.quiet(),
    )
    p.add_argument("dir", type=Path, help="a directory written by `circuits score`")
    p.add_argument("--split", default="heldout", choices=["heldout", "scoring"])
    p.set_defaults(func=cmd_evaluate)
