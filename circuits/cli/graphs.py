"""``circuits extract``, ``render``, ``compare`` and ``reuse``: circuits as graphs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.cli import options
from circuits.compare.families import SIMILARITIES
from circuits.draw.graphviz import FORMATS
from circuits.graph import POSITIONS
from circuits.uncertainty import format_stored as _iv
from circuits.vocab import ExtractMethod, ScoreMethod

if TYPE_CHECKING:
    from circuits.jobs.noise_record import ReuseNoise, SimilarityRow
    from circuits.records.stored import Estimate

__all__ = ["register"]

_EXTRACT = [m.value for m in ExtractMethod if m not in (ExtractMethod.MINIMAL, ExtractMethod.CUSTOM)]


def cmd_extract(args: argparse.Namespace) -> int:
    from circuits.jobs import extract_stored

    circuit, out, message = extract_stored(
        args.dir,
        extract_method=args.extract_method,
        size=args.size,
        fraction=args.fraction,
        threshold=args.threshold,
        target_faithfulness=args.target_faithfulness,
        by=args.by,
        pruned=not args.no_prune,
        evaluate=args.evaluate,
        name=args.name,
        out=args.out,
        store=args.store,
        formats=tuple(args.format or ["svg"]),
        positions=args.positions,
    )
    s = circuit.summary()
    if args.json:
        print(
            json.dumps(
                {**s, "faithfulness_interval": circuit.params.get("faithfulness_interval"), "path": str(out)},
                indent=2,
            )
        )
        return 0
    if message:
        print(message)
    faith = "" if s["faithfulness"] is None else f", faithfulness {s['faithfulness']:.3f}"
    units = f" ({s['n_units']} (edge, role) units)" if s["positions"] == "roles" else ""
    print(
        f"{s['name']}: {s['n_edges']} edges{units}, {s['n_heads']} heads, {s['n_mlps']} MLPs{faith} -> {out}"
    )
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from circuits.jobs import render_circuit_file

    result = render_circuit_file(
        args.circuit, diff=args.diff, color_by=args.color_by, out=args.out, formats=(args.format,)
    )
    for path in result.written:
        print(f"wrote {path}")
    if result.message:
        print(f"circuits render: {result.message}")
        return 1
    return 0


_COMPARED = (
    "common_units",
    "common_edges",
    "edge_jaccard",
    "node_jaccard",
    "edge_overlap",
    "node_overlap",
    "weighted_jaccard",
    "head_share",
    "heads_of_a_in_b",
    "heads_of_b_in_a",
)
"""What ``circuits compare`` prints, in order (a measure a comparison lacks is left out)."""


def cmd_compare(args: argparse.Namespace) -> int:
    from circuits.compare.ceilings import NoiseSettings
    from circuits.jobs import compare_files

    noise = None if args.boot == 0 else NoiseSettings(args.boot, args.splits, args.permutations, args.seed)
    result = compare_files(args.a, args.b, diff=args.diff, noise=noise)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    units = result.units
    sides = (
        ("a", result.a, result.edges_a, result.nodes_a, None if units is None else units.units_a),
        ("b", result.b, result.edges_b, result.nodes_b, None if units is None else units.units_b),
    )
    for side, label, edges, nodes, n_units in sides:
        on = "" if n_units is None else f"{n_units} (edge, role) units on "
        print(f"{side.upper()}: {label} ({on}{edges} edges, {nodes} nodes)")
    if units is not None:
        print("(both circuits are position-aware: the edge similarities below compare (edge, role) units)")
    sims = (result.noise.similarities if result.noise is not None else None) or {}
    for key in _COMPARED:
        value = result.measure(key)
        if value is None:
            continue
        if key in sims:
            print(f"{key:<18}{sims[key].interval.shown()}  {_references(sims[key])}")
        else:
            print(f"{key:<18}{value:>10.4f}" if isinstance(value, float) else f"{key:<18}{value:>10}")
    if "spearman" in sims:
        print(f"{'spearman (top)':<18}{sims['spearman'].interval.shown()}  {_references(sims['spearman'])}")
    print(f"common heads: {', '.join(result.common_heads) or '-'}")
    if sims:
        print(
            "[interval]: 95% bootstrap over each circuit's scoring pairs; ceilings: split-half; "
            "relative: half-sample similarity / sqrt(ceilings); null: pairs shuffled between A and B"
        )
    elif result.noise is not None and result.noise.skipped is not None:
        print(f"no intervals: {result.noise.skipped}")
    return 0


def _references(row: SimilarityRow) -> str:
    rel = "n/a" if row.relative is None else f"{row.relative:.2f}"
    null = "n/a" if row.null is None else f"{row.null.shown()}, p {row.p:.3f}"
    return f"ceilings {_v(row.ceiling_a)} / {_v(row.ceiling_b)}  relative {rel}  null {null}"


def cmd_reuse(args: argparse.Namespace) -> int:
    from circuits.attribution.settings import ScoreSettings
    from circuits.compare.ceilings import NoiseSettings
    from circuits.jobs import run_reuse

    settings = ScoreSettings(
        score_method=args.score_method,
        max_pairs=args.max_pairs,
        seed=args.seed,
        ig_steps=args.ig_steps,
        batch_size=args.batch_size,
        max_rank=args.max_rank,
        min_prob=args.min_prob,
        positions=args.positions,
        templates=args.templates,
        shots=args.shots,
    )
    noise = None if args.boot == 0 else NoiseSettings(args.boot, args.splits, args.permutations, args.seed)
    executor = options.executor_of(args)
    report = run_reuse(
        args.relations,
        model=options.load(args),
        settings=settings,
        extract_method=args.extract_method,
        size=args.size,
        fraction=args.fraction,
        by=args.by,
        store=args.store,
        similarity=args.similarity,
        cross=not args.no_cross,
        noise=noise,
        heatmap=args.heatmap,
        progress=not args.quiet,
        executor=executor,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(f"{report.model}: {len(report.relations)} relations -> {report.folder}")
    for row in report.circuits:
        faith = _iv(row.faithfulness_interval) if row.faithfulness_interval else f"{row.faithfulness:.3f}"
        size = f"{row.n_units:>6} units" if row.positions == "roles" else f"{row.n_edges:>6} edges"
        print(f"  {row.relation:<28}{size}{row.n_heads:>4} heads  F {faith}  ({row.source})")
    print(f"{report.similarity} matrix:")
    print(report.matrix.to_csv(), end="")
    if report.noise is not None:
        print(noise_table(report.noise, report.similarity), end="")
    print(f"clustering: {report.clustering.newick}")
    for label, pair in (("most similar", report.most_similar), ("least similar", report.least_similar)):
        print(
            f"{label}: {pair.a} / {pair.b} {report.similarity} {pair.value:.3f}, "
            f"head share {pair.head_share:.3f}"
        )
    print(f"done in {report.seconds:.1f} s")
    return 0


def noise_table(noise: ReuseNoise, similarity: str) -> str:
    """Each relation's split-half ceiling, then every pair: similarity [interval], ceilings, relative, null.

    ``noise`` is the report's :class:`~circuits.jobs.noise_record.ReuseNoise`.
    """
    lines = [f"split-half ceilings ({similarity}; mean over {noise.settings.n_splits} splits [2.5%, 97.5%]):"]
    for relation, ceilings in noise.ceilings.items():
        lines.append(f"  {relation:<28}{ceilings[similarity].shown()}")
    lines.append(
        f"pairs ({similarity} [95% bootstrap interval]; relative = half-sample similarity / sqrt(ceilings); "
        f"null = shared-circuit permutation null, p = share of shuffles at or below):"
    )
    rows = sorted(noise.rows(similarity), key=lambda r: -(r.value if r.value is not None else -9))
    for r in rows:
        lines.append(f"  {r.a} / {r.b}: {r.interval.shown()}  {_references(r)}")
    return "\n".join(lines) + "\n"


def _v(d: Estimate | None) -> str:
    return "n/a" if d is None or d.value is None else f"{d.value:.2f}"


def _noise_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--splits",
        type=options.at_least(0),
        default=50,
        help="random halvings of each relation's pairs for its noise ceiling (default 50)",
    )
    p.add_argument(
        "--permutations",
        type=options.at_least(0),
        default=100,
        help="label shuffles per pair of relations for the permutation null (default 100)",
    )


def _sized(p: argparse.ArgumentParser, *, target: bool) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--size", type=options.at_least(1), help="edges (top-n, greedy), paths (paths) or nodes (nodes)"
    )
    group.add_argument(
        "--fraction", type=options.in_range(0, 1, open_low=True), help="size as a fraction of all edges"
    )
    if target:
        group.add_argument(
            "--threshold", type=float, help="with --extract-method threshold: minimum strength"
        )
        group.add_argument(
            "--target-faithfulness",
            type=options.in_range(0, 1, open_low=True),
            help="the smallest top-n circuit reaching this faithfulness (runs the model)",
        )
    p.add_argument(
        "--by",
        default="signed",
        choices=["signed", "abs"],
        help="signed: most negative scores first (relied-on edges); abs: |score|",
    )


def register(add: Any) -> None:
    """Add ``extract``, ``render``, ``compare`` and ``reuse`` through ``add(name, help, *parents)``."""
    p = add("extract", "extract a circuit from a scored graph", options.json_output())
    p.add_argument(
        "dir", type=Path, help="a directory written by `circuits score` (or a store relation folder)"
    )
    p.add_argument(
        "--extract-method",
        default=ExtractMethod.TOP_N.value,
        choices=_EXTRACT,
        help="how edges are chosen (default top-n)",
    )
    _sized(p, target=True)
    p.add_argument("--no-prune", action="store_true", help="keep dead and dangling edges")
    p.add_argument(
        "--positions",
        choices=list(POSITIONS),
        default=None,
        help="roles: choose (edge, role) units (needs a graph scored with --positions roles); "
        "summed: edges (default: how the graph was scored)",
    )
    p.add_argument("--evaluate", action="store_true", help="measure held-out faithfulness (runs the model)")
    p.add_argument("--name", help="circuit name (default: extraction method-by-size)")
    p.add_argument("--out", type=options.out_file, help="circuit JSON path (default: DIR/NAME.circuit.json)")
    p.add_argument(
        "--store", type=options.out_dir, help="save into this graphs/ store instead, with diagrams"
    )
    p.add_argument(
        "--format",
        action="append",
        default=None,
        choices=FORMATS,
        help="diagram formats with --store (default svg)",
    )
    p.set_defaults(func=cmd_extract)

    p = add("render", "draw a circuit (or two, with --diff) with Graphviz")
    p.add_argument("circuit", type=Path, help="a circuit JSON file or a store circuit folder")
    p.add_argument("--format", default="svg", choices=FORMATS)
    p.add_argument("--color-by", default="sign", choices=["sign", "qkv"])
    p.add_argument("--diff", type=Path, help="a second circuit: draw shared, only-A and only-B edges")
    p.add_argument("--out", type=options.out_file, help="output path (suffix replaced by the format)")
    p.set_defaults(func=cmd_render)

    p = add(
        "compare",
        "similarities of two circuits, with intervals, noise ceilings and a permutation null",
        options.seed(),
        options.boot(),
        options.json_output(),
    )
    p.add_argument("a", type=Path, help="circuit JSON file or store circuit folder")
    p.add_argument("b", type=Path)
    p.add_argument("--diff", type=options.out_file, help="also write a diff diagram (DOT and SVG) here")
    _noise_options(p)
    p.set_defaults(func=cmd_compare)

    p = add(
        "reuse",
        "circuits of many relations: reuse matrix with intervals, noise ceilings and nulls, "
        "clustering, cross-task faithfulness, all stored in graphs/",
        options.model(),
        options.pairs(),
        options.seed(),
        options.boot(),
        options.quiet(),
        options.json_output(),
        options.executor(),
    )
    p.add_argument("relations", nargs="+", help="bundled relation names or LRE JSON files")
    p.add_argument("--score-method", default=ScoreMethod.EAP_IG.value, choices=[m.value for m in ScoreMethod])
    p.add_argument(
        "--extract-method",
        default=ExtractMethod.TOP_N.value,
        choices=[
            ExtractMethod.TOP_N.value,
            ExtractMethod.GREEDY.value,
            ExtractMethod.PATHS.value,
            ExtractMethod.NODES.value,
        ],
    )
    _sized(p, target=False)
    p.add_argument(
        "--similarity",
        default="edge_jaccard",
        choices=SIMILARITIES,
        help="the similarity of the heatmap, the clustering and the most and least similar pairs "
        "(default edge_jaccard; every one is tabulated)",
    )
    options.old_spelling(p, "--metric", "--similarity", choices=SIMILARITIES)
    p.add_argument("--ig-steps", type=options.at_least(1), default=5)
    options.add_batch_size(p)
    p.add_argument("--store", type=options.out_dir, default="graphs", help="store root (default graphs/)")
    p.add_argument("--no-cross", action="store_true", help="skip cross-task faithfulness")
    p.add_argument(
        "--positions",
        choices=list(POSITIONS),
        default="summed",
        help="roles: score by position role and compare (edge, role) units (--size counts units)",
    )
    _noise_options(p)
    p.add_argument(
        "--heatmap",
        default="similarity",
        choices=["similarity", "relative"],
        help="heatmap.svg shows the similarity or the similarity relative to the ceilings (both are written)",
    )
    p.set_defaults(func=cmd_reuse)
