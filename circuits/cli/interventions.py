"""``circuits intervene`` and ``circuits reuse-test``: edit heads, MLPs and edges, and measure what changes.

``intervene`` scales, ablates or removes output subspaces of nodes (and
scales or ablates edges) and prints accuracy, p(answer) and the logit
difference on a relation's held-out prompts before and after. ``reuse-test``
ablates the heads the stored circuits of several relations share against each
relation's own heads (the causal test of circuit reuse).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.cli import options
from circuits.cli.analysis import finish, output_options, prompt_choice
from circuits.records.stored import Estimate

if TYPE_CHECKING:
    from circuits.jobs.reuse_test_record import ReuseTestMeasures

__all__ = ["register"]

_NAMES = {"accuracy": "accuracy", "answer_prob": "p(answer)", "logit_diff": "logit diff"}


def cmd_intervene(args: argparse.Namespace) -> int:
    from circuits.jobs.interventions import run_intervene

    model = options.load(args)
    _, record, files = run_intervene(
        model,
        args.relation,
        prompt_choice(args),
        scale=args.scale or (),
        ablate=args.ablate or (),
        subspace=args.subspace or (),
        split=args.split,
        heldout_fraction=args.heldout_fraction,
        n_boot=args.boot,
        out=args.out,
        store=args.store,
        progress=not args.quiet,
    )
    p = record.prompts
    counts = "" if p is None else f" of {p.n_pairs} pairs; {p.n_scoring} scoring, {p.n_heldout} held out"
    text = [
        record.provenance().heading(),
        f"split: {record.split} ({record.n_prompts}{counts}); mean [95% bootstrap interval]",
    ]
    text.append("edits: " + ("; ".join(record.edits) if record.edits else "no edits (after = before)"))
    text.append(f"{'metric':<12}{'before':>26}{'after':>26}{'change (after - before)':>28}")
    for metric, before in record.before.items():
        text.append(
            f"{_NAMES.get(metric, metric):<12}{before.shown(3):>26}"
            f"{record.after[metric].shown(3):>26}{record.change[metric].shown(3):>28}"
        )
    return finish(args, record, text, files)


def cmd_reuse_test(args: argparse.Namespace) -> int:
    from circuits.jobs.interventions import run_reuse_test
    from circuits.jobs.reuse_test_record import CONDITIONS

    model = options.load(args)
    record, files = run_reuse_test(
        model,
        args.relations,
        store=args.gallery,
        circuit=args.circuit,
        ablation=args.ablation,
        fraction=args.fraction,
        max_pairs=args.max_pairs,
        n_boot=args.boot,
        seed=args.seed,
        out=args.out,
        save=args.save,
        progress=not args.quiet,
    )
    text = [
        f"{record.model}: causal reuse test, {record.ablation} ablation of heads, on each circuit's "
        f"held-out prompts; core = {len(record.core)} heads in >= {record.k} of "
        f"{record.n_circuits} circuits: {', '.join(record.core)}",
        "accuracy = share of prompts whose answer is top-1; drop = before - after, mean [95% paired "
        "bootstrap interval]",
    ]
    text.append(
        f"{'relation':<22}{'n':>4}{'core':>5}{'spec':>5}{'before':>7}{'core':>6}{'core@n':>7}{'spec':>6}"
        f"{'rand':>6}{'drop core':>20}{'drop core@n':>20}{'drop specific':>20}{'drop random':>20}"
        f"{'core@n - specific':>20}"
    )
    lines: list[tuple[str, Any, Any, ReuseTestMeasures]] = [
        (row.relation, row.n_core, row.n_specific, row.measures) for row in record.relations
    ]
    for name, n_core, n_specific, m in [*lines, ("pooled (all prompts)", "", "", record.pooled)]:
        acc = {cond: m.value("accuracy", cond).value for cond in CONDITIONS}
        drop = {
            d: Estimate.of(m.drop("accuracy", d)).shown(2) for d in (*CONDITIONS[1:], "matched_vs_specific")
        }
        text.append(
            f"{name:<22}{m.n_prompts:>4}{n_core!s:>5}{n_specific!s:>5}"
            f"{acc['before']:>7.2f}{acc['core']:>6.2f}{acc['core_matched']:>7.2f}"
            f"{acc['specific']:>6.2f}{acc['random']:>6.2f}{drop['core']:>20}"
            f"{drop['core_matched']:>20}{drop['specific']:>20}{drop['random']:>20}"
            f"{drop['matched_vs_specific']:>20}"
        )
    text.append(
        "core@n: the n core heads the relation's graph weighs most, n = its number of specific heads; "
        "accuracy columns are after ablating each set"
    )
    text.append(f"({record.seconds} s)")
    return finish(args, record.to_dict(), text, files)


def register(add: Any) -> None:
    """Add ``intervene`` and ``reuse-test`` through ``add(name, help, *parents)``."""
    parents = options.analysis()
    p = add(
        "intervene",
        "scale, ablate or remove output subspaces of heads and MLPs (and scale or ablate "
        "edges); accuracy, p(answer) and logit difference before and after",
        *parents,
    )
    p.add_argument(
        "--scale",
        action="append",
        metavar="NODE=F",
        help="multiply a node's output (a{l}.h{h}, m{l}) or an edge SRC->DST by F; repeatable",
    )
    p.add_argument(
        "--ablate",
        action="append",
        metavar="NODE[:MODE]",
        help="replace a node's output or an edge SRC->DST by its mean over the scoring prompts "
        "(mean, the default), zero, or its value on the corrupt prompt (counterfactual); "
        "repeatable",
    )
    p.add_argument(
        "--subspace",
        action="append",
        metavar="NODE:RANK[=F]",
        help="scale by F (default 0: remove) the part of a node's output in the span of the top RANK "
        "output singular directions of its OV matrix (head) or W_out (MLP); repeatable",
    )
    p.add_argument(
        "--split",
        default="heldout",
        choices=["heldout", "scoring", "all"],
        help="which pairs to measure on (default heldout)",
    )
    p.add_argument(
        "--heldout-fraction",
        type=options.in_range(0, 1),
        default=0.4,
        help="share of the pairs held out of scoring (default 0.4, as circuits score)",
    )
    output_options(p)
    p.set_defaults(func=cmd_intervene)

    p = add(
        "reuse-test",
        "causal test of circuit reuse: ablate the heads the stored circuits share vs each "
        "relation's own heads, on held-out prompts",
        options.model(),
        options.seed(),
        options.boot(),
        options.json_output(),
        options.quiet(),
    )
    p.add_argument("relations", nargs="+", help="relations whose circuits are in the gallery (at least 2)")
    p.add_argument(
        "--gallery", type=Path, default=Path("graphs"), help="gallery to read circuits from (default graphs)"
    )
    p.add_argument(
        "--circuit",
        default=None,
        help="stored circuit name, e.g. top-n-signed-150 (default: each relation's newest)",
    )
    p.add_argument(
        "--ablation",
        default="mean",
        choices=["mean", "zero", "counterfactual"],
        help="what an ablated head outputs (default mean over the scoring prompts)",
    )
    p.add_argument(
        "--fraction",
        type=options.in_range(0, 1),
        default=0.5,
        help="core = heads in at least this share of the circuits (default 0.5)",
    )
    p.add_argument(
        "--max-pairs",
        type=options.at_least(2),
        default=None,
        help="pair cap (default and minimum: the one each circuit was scored with, so its held-out "
        "prompts stay unseen)",
    )
    p.add_argument(
        "--out", type=options.out_dir, default=None, help="write reuse_test.json and reuse_test.svg here"
    )
    p.add_argument(
        "--save", action="store_true", help="also store them in the gallery: GALLERY/<model>/reuse_test/"
    )
    p.set_defaults(func=cmd_reuse_test)
