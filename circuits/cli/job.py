"""``circuits run`` and ``compare-models``: the main job (relations, reuse, channels, mechanisms, report)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from circuits.cli import options
from circuits.uncertainty import format_stored as _iv

if TYPE_CHECKING:
    from circuits.compare.model_record import ModelComparison
    from circuits.jobs.job_settings import JobSettings
    from circuits.jobs.job_summary import JobSummary
    from circuits.models import LoadedModel
    from circuits.records.stored import Estimate

__all__ = ["register"]


def format_summary(s: JobSummary) -> str:
    """The job's summary as text: one table row per relation, then what was found."""
    lines = [
        f"main job on {s.model}: {len(s.relations)} relations, {s.stages_run} stages run, "
        f"{s.stages_reused} read back from disk, {s.seconds:.0f} s",
        "",
        f"{'relation':<22} {'pairs':>9} {'edges':>6}  {'held-out F':<20} {'CPR':<20}",
    ]
    for r in s.relations:
        pairs = f"{r.n_scoring}+{r.n_heldout}"
        edges = f"{r.n_edges}{'' if r.target_reached else '*'}"
        lines.append(
            f"{r.relation:<22} {pairs:>9} {edges:>6}  {_shown(r.faithfulness):<20} {_shown(r.cpr):<20}"
        )
    settings = s.job_settings()
    lines.append(
        f"(circuits: smallest top-n reaching F >= {settings.target_faithfulness} on the scoring "
        "pairs; F and CPR on the held-out pairs, 95% bootstrap intervals)"
    )
    if not all(r.target_reached for r in s.relations):
        lines.append(
            f"(* no circuit of at most {settings.max_edges} edges reached the target: the top "
            f"{settings.max_edges} edges)"
        )
    for name, why in s.skipped.items():
        lines.append(f"skipped {name}: {why}")
    rows = [(r.relation, r.positions) for r in s.relations if r.positions is not None]
    if rows:
        lines += [
            "",
            f"{'position-aware':<22} {'units':>6} {'on edges':>9}  {'held-out F':<20} "
            f"{'summed edges':>12}  {'summed F':<20} units by role (subject/last)",
        ]
        for relation, p in rows:
            units = f"{p.n_units}{'' if p.target_reached else '*'}"
            lines.append(
                f"{relation:<22} {units:>6} {p.n_edges:>9}  {_shown(p.faithfulness):<20} "
                f"{p.summed_edges:>12}  {_shown(p.summed_faithfulness):<20} "
                f"{p.units_at('subject')}/{p.units_at('last')}"
            )
        lines.append(
            "(smallest circuits of (edge, role) units and of edges reaching the target on the same "
            "role-scored graph)"
        )
    lines += ["", "what was found:"]
    for r in s.relations:
        lines.append(f"  {r.relation}: strongest heads {', '.join(r.heads[:6])}")
        lines += [f"    {name}: {text}" for name, text in r.findings.items() if text]
    reuse = s.reuse
    for pair, word in ((reuse.most_similar, "most similar"), (reuse.least_similar, "least similar")):
        relative = None if pair.noise is None else pair.noise.relative
        extra = f" (relative to ceilings {_iv(relative)})" if relative else ""
        lines.append(f"  reuse, {word}: {pair.a} ~ {pair.b} edge Jaccard {pair.value:.2f}{extra}")
    core = reuse.core
    lines.append(
        f"  shared core: {core.n_edges} edges in at least {core.k} circuits; "
        f"heads {', '.join(core.heads[:8])}"
    )
    for row in s.channels:
        lines.append(
            f"  channels vs {row.relation} patching: AUC {row.auc_component:.2f} (per component), "
            f"{row.auc_whole:.2f} (whole matrix); precision@{row.n_important} "
            f"{row.precision_component:.2f}"
        )
    if s.report:
        lines += ["", f"report: {s.report}"]
    return "\n".join(lines)


def _shown(value: Estimate | None) -> str:
    """A stored estimate as the tables print it (``n/a`` for none)."""
    return "n/a" if value is None else value.shown()


def job_settings(args: argparse.Namespace) -> JobSettings:
    """The :class:`~circuits.jobs.job_settings.JobSettings` the job arguments ask for."""
    from circuits.jobs.job_settings import DEFAULT_RELATIONS, JobSettings

    relations = tuple(args.relations) or DEFAULT_RELATIONS
    analyses = tuple(a for a in args.analyses.split(",") if a) if args.analyses is not None else None
    return JobSettings(
        relations=relations,
        max_pairs=args.max_pairs,
        target_faithfulness=args.target_faithfulness,
        max_edges=args.max_edges,
        reuse_size=args.size,
        analysis_pairs=args.analysis_pairs,
        n_boot=args.boot,
        n_splits=args.splits,
        n_perm=args.permutations,
        seed=args.seed,
        max_rank=args.max_rank,
        positions=not args.no_positions,
        templates=args.templates,
        shots=args.shots,
        **({"analyses": analyses} if analyses is not None else {}),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from circuits.jobs.job import run_job

    settings = job_settings(args)
    executor = options.executor_of(args)
    model = options.load(args)
    summary = run_job(
        settings, args.out, model=model, progress=not args.quiet, report=not args.no_report, executor=executor
    )
    plain = {**summary.to_dict(), "report": summary.report}  # "report": null when none was built
    print(json.dumps(plain, indent=1) if args.json else format_summary(summary))
    return 0


def register(add: Any) -> None:
    """Add ``run`` and ``compare-models`` through ``add(name, help, *parents)``."""
    p = add(
        "run",
        "the main job: score, extract, evaluate, compare and explain several relations, then build "
        "the HTML report; a re-run reuses every finished stage whose inputs are unchanged",
        options.model(),
        options.seed(),
        options.boot(),
        options.json_output(),
        options.quiet(),
        options.executor(),
    )
    add_job_arguments(p)
    p.add_argument("--no-report", action="store_true", help="do not build the HTML report")
    p.set_defaults(func=cmd_run)
    register_compare(add)


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """The main job's relations, ``--out`` and settings (shared by ``run`` and ``compare-models``)."""
    p.add_argument(
        "relations",
        nargs="*",
        metavar="RELATION",
        help="bundled relation names or relation files (default: country_capital_city "
        "country_language country_currency city_in_country)",
    )
    p.add_argument(
        "--out", type=options.out_dir, default="runs/demo", help="results folder (default runs/demo)"
    )
    p.add_argument(
        "--max-pairs", type=options.at_least(2), default=24, help="prompt pairs per relation (default 24)"
    )
    p.add_argument(
        "--target-faithfulness",
        type=options.in_range(0, 1, open_low=True),
        default=0.8,
        help="each relation's circuit is the smallest reaching this (default 0.8)",
    )
    p.add_argument(
        "--max-edges",
        type=options.at_least(1),
        default=1000,
        help="... of at most this many edges, else the top this many (default 1000)",
    )
    p.add_argument(
        "--size",
        type=options.at_least(1),
        default=150,
        help="edges of the circuits reuse compares (default 150)",
    )
    p.add_argument(
        "--analysis-pairs",
        type=options.at_least(1),
        default=16,
        help="prompts of each mechanism analysis (default 16)",
    )
    from circuits.registry import job_analyses

    p.add_argument(
        "--analyses",
        default=None,
        help=f"comma-separated mechanism analyses (default all: {','.join(job_analyses())}; '' for none)",
    )
    p.add_argument(
        "--splits",
        type=options.at_least(0),
        default=20,
        help="split-half splits for noise ceilings (default 20)",
    )
    p.add_argument(
        "--permutations",
        type=options.at_least(0),
        default=50,
        help="permutation shuffles for nulls (default 50)",
    )
    p.add_argument(
        "--max-rank",
        type=options.at_least(1),
        default=1,
        help="a fact is known when its answer ranks at most this (default 1: top-1)",
    )
    p.add_argument(
        "--no-positions",
        action="store_true",
        help="skip the position-aware circuits (scored by role: first, demo, subject, relation, last)",
    )
    options.prompt_options(p)


def format_comparison(c: ModelComparison) -> str:
    """A comparison across models as text: per relation each model's circuit at the target, then reuse."""
    models = c.models
    lines = [
        f"{len(c.relations)} relations on {', '.join(models)} (circuits: smallest top-n reaching "
        f"F >= {c.target} on the scoring pairs; F on the held-out pairs, 95% intervals)",
        "",
        f"{'relation':<22}" + "".join(f" {m[:26]:<44}" for m in models) + " depth overlap",
    ]
    for row in c.relations:
        cells = []
        for m in models:
            d = row.models[m]
            share = f" ({100 * d.share:.1f}%)" if d.share is not None else ""
            mark = "" if d.target_reached in (None, True) else "*"
            cells.append(f" {d.n_edges}{mark}{share} F {_shown(d.faithfulness)}".ljust(45))
        overlap = ", ".join(f"{v:.2f}" for v in row.depth_overlap.values())
        lines.append(f"{row.relation:<22}" + "".join(cells) + f" {overlap}")
    reuse = c.reuse
    if reuse is None:
        lines.append("reuse: fewer than three shared relations with a reuse matrix in both models")
    else:
        rho = (
            "undefined (a constant matrix)"
            if reuse.spearman is None
            else f"{reuse.spearman:.2f} (permutation p {reuse.p:.3f}, {reuse.n_perm} shuffles)"
        )
        first = " vs ".join(" ~ ".join(pair) for pair in reuse.first_merge)
        lines += [
            "",
            f"reuse matrices: Spearman of the pairs' edge Jaccard {rho}",
            f"first to merge: {first} ({'the same' if reuse.same_first_merge else 'different'})",
        ]
    lines.append(f"\nstored in {c.folder}")
    return "\n".join(lines)


def cmd_compare_models(args: argparse.Namespace) -> int:
    from circuits.jobs.model_comparison import run_comparison
    from circuits.models import load_model

    settings = job_settings(args)

    def load(name: str) -> LoadedModel:
        return load_model(name, device=args.device)

    comparison = run_comparison(
        settings,
        args.out,
        list(args.models),
        load=load,
        progress=not args.quiet,
        n_perm=args.model_permutations,
    )
    print(json.dumps(comparison.to_dict(), indent=1) if args.json else format_comparison(comparison))
    return 0


def register_compare(add: Any) -> None:
    """Add ``compare-models`` through ``add(name, help, *parents)``."""
    p = add(
        "compare-models",
        "the main job on two or more models (finished stages are read back), then their "
        "circuits, depth profiles, mechanisms and reuse matrices side by side",
        options.seed(),
        options.boot(),
        options.json_output(),
        options.quiet(),
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=["smollm2-135m", "gemma3-270m"],
        help="the models to compare (default: the two embedded ones, smollm2-135m gemma3-270m)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument(
        "--model-permutations",
        type=options.at_least(0),
        default=1000,
        help="relation-label shuffles for the reuse matrices' correlation (default 1000)",
    )
    add_job_arguments(p)
    p.set_defaults(func=cmd_compare_models)
