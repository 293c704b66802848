"""The ``extract``, ``render``, ``compare`` and ``reuse`` subcommands, and :func:`run_reuse`.

:func:`add_parsers` registers the four subcommands on the ``circuits`` command's
subparsers. :func:`run_reuse` is the ``reuse`` pipeline as a plain function:
score every relation (reusing stored graphs whose settings match), extract and
evaluate one circuit per relation, compare them all, and write everything into
the ``graphs/`` store.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuits.circuit import Circuit
from circuits.vocab import InputError, Method, NotEnoughFactsError

__all__ = ["add_parsers", "run_reuse"]

from circuits.pipeline import heldout_evaluator

log = logging.getLogger(__name__)

SIMILARITIES = ("edge_jaccard", "node_jaccard", "weighted_jaccard", "edge_overlap", "head_share")


def _scored_dir(path: Path) -> Path:
    from circuits.store import META

    if (path / META).is_file():
        return path
    if (path / "scored" / META).is_file():
        return path / "scored"
    raise InputError(f"{path}: not a scored-graph directory (no {META}); make one with `circuits score`")


def _load_circuit(path: Path) -> Circuit:
    from circuits.gallery import CIRCUIT_FILE

    return Circuit.load(path / CIRCUIT_FILE if path.is_dir() else path)


# ------------------------------------------------------------------ commands


def cmd_extract(args: argparse.Namespace) -> int:
    from circuits.extract import extract
    from circuits.gallery import Gallery, circuit_name
    from circuits.store import RELATION, load_scored

    directory = _scored_dir(args.dir)
    graph = load_scored(directory)
    evaluator = None
    if args.target_faithfulness is not None or args.evaluate:
        from circuits.models import load_model

        model = load_model(graph.metadata["model"], processing=graph.metadata.get("processing", "none"))
        evaluator = heldout_evaluator(model, graph, relation_file=directory / RELATION)
    method = "minimal" if args.target_faithfulness is not None else args.method
    circuit = extract(graph, method, size=args.size, fraction=args.fraction, value=args.threshold,
                      target=args.target_faithfulness, evaluate=evaluator, by=args.by,
                      pruned=not args.no_prune)  # fmt: skip
    if evaluator is not None and circuit.faithfulness is None:
        circuit.faithfulness = float(evaluator.run_mask(circuit.to_mask()).faithfulness)
    circuit.name = args.name or circuit_name(circuit)
    if args.store is not None:
        out, message = Gallery(args.store).save_circuit(circuit, formats=tuple(args.format or ["svg"]))
        if message:
            print(message)
    else:
        out = circuit.save(args.out or directory / f"{circuit.name}.circuit.json")
    s = circuit.summary()
    if args.json:
        print(json.dumps({**s, "path": str(out)}, indent=2))
        return 0
    faith = "" if s["faithfulness"] is None else f", faithfulness {s['faithfulness']:.3f}"
    print(f"{s['name']}: {s['n_edges']} edges, {s['n_heads']} heads, {s['n_mlps']} MLPs{faith} -> {out}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from circuits.export import circuit_dot, diff_dot, render

    circuit = _load_circuit(args.circuit)
    if args.diff is not None:
        graph = diff_dot(circuit, _load_circuit(args.diff))
    else:
        graph = circuit_dot(circuit, color_by=args.color_by)
    base = args.circuit / "circuit" if args.circuit.is_dir() else args.circuit.with_suffix("")
    if args.diff is not None:
        base = base.with_name(f"{base.name}-vs-{args.diff.with_suffix('').name}")
    result = render(graph, args.out or base, formats=(args.format,))
    for path in result.written:
        print(f"wrote {path}")
    if result.message:
        print(f"circuits render: {result.message}")
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from circuits.compare import compare

    a, b = _load_circuit(args.a), _load_circuit(args.b)
    result = compare(a, b)
    if args.diff is not None:
        from circuits.export import diff_dot, render

        result["diff"] = [str(p) for p in render(diff_dot(a, b), args.diff, formats=("svg",)).written]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"A: {result['a']} ({result['edges_a']} edges, {result['nodes_a']} nodes)")
    print(f"B: {result['b']} ({result['edges_b']} edges, {result['nodes_b']} nodes)")
    for key in ("common_edges", "edge_jaccard", "node_jaccard", "edge_overlap", "node_overlap",
                "weighted_jaccard", "head_share", "heads_of_a_in_b", "heads_of_b_in_a"):  # fmt: skip
        value = result[key]
        print(f"{key:<18}{value:>10.4f}" if isinstance(value, float) else f"{key:<18}{value:>10}")
    print(f"common heads: {', '.join(result['common_heads']) or '-'}")
    return 0


def cmd_reuse(args: argparse.Namespace) -> int:
    from circuits.pipeline import ScoreSettings

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    settings = ScoreSettings(method=args.method, max_pairs=args.max_pairs, seed=args.seed,
                             ig_steps=args.ig_steps, batch_size=args.batch_size)  # fmt: skip
    report = run_reuse(args.relations, model=args.model, settings=settings, extract_method=args.extract,
                       size=args.size, fraction=args.fraction, by=args.by, store=args.store,
                       metric=args.metric, cross=not args.no_cross, progress=not args.quiet)  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['model']}: {len(report['relations'])} relations -> {report['folder']}")
    for row in report["circuits"]:
        print(f"  {row['relation']:<28}{row['n_edges']:>6} edges{row['n_heads']:>4} heads  "
              f"F {row['faithfulness']:.3f}  ({row['source']})")  # fmt: skip
    print(f"{report['metric']} matrix:")
    print(report["matrix_csv"], end="")
    print(f"clustering: {report['clustering']['newick']}")
    for key in ("most_similar", "least_similar"):
        pair = report[key]
        print(f"{key.replace('_', ' ')}: {pair['a']} / {pair['b']} {report['metric']} {pair['value']:.3f}, "
              f"head share {pair['head_share']:.3f}")  # fmt: skip
    print(f"done in {report['seconds']:.1f} s")
    return 0


# ------------------------------------------------------------------ reuse


def _size_param(size: int | None, fraction: float | None) -> dict[str, Any]:
    if size is None and fraction is None:
        return {"size": 200}
    return {"size": size, "fraction": fraction}


def run_reuse(
    relations: Sequence[str],
    *,
    model: str | Any = "smollm2-135m",
    settings: Any = None,
    extract_method: str = "top-n",
    size: int | None = None,
    fraction: float | None = None,
    by: str = "signed",
    store: str | Path = "graphs",
    metric: str = "edge_jaccard",
    cross: bool = True,
    formats: tuple[str, ...] = ("svg",),
    progress: bool = True,
) -> dict[str, Any]:
    """Score, extract, evaluate and compare circuits of many relations; store everything.

    Returns a JSON-ready report. Relations the model knows too few facts of are
    skipped with a warning; at least two must remain.
    """
    from circuits.compare import (
        cluster,
        cross_task_matrix,
        rank_correlation_matrix,
        reuse_matrix,
        shared_core,  # fmt: skip
        specific_parts,
    )
    from circuits.data import load_relation
    from circuits.export import circuit_dot, heatmap_svg
    from circuits.extract import extract, pruned_top_n
    from circuits.gallery import Gallery, circuit_name
    from circuits.models import load_model
    from circuits.pipeline import ScoreSettings, progress_bar, score_relation

    started = time.perf_counter()
    if metric not in SIMILARITIES:
        raise InputError(f"unknown --metric {metric!r}; valid: {', '.join(SIMILARITIES)}")
    if len(relations) < 2:
        raise InputError(f"reuse compares at least 2 relations, got {len(relations)}")
    if size is None and fraction is None:
        size = 200
    settings = settings or ScoreSettings()
    loaded = load_model(model) if isinstance(model, str) else model
    gallery = Gallery(store)
    graphs, circuits, evaluators, rows, skipped = {}, {}, {}, [], {}
    bar = progress_bar(len(relations), "reuse: relations", enabled=progress)
    for arg in relations:
        rel = load_relation(arg)
        steps = 1 if settings.method is Method.EAP else settings.ig_steps
        want = {"method": settings.method.value, "metric": settings.metric.value,
                "ablation": settings.ablation.value, "ig_steps": steps, "seed": settings.seed,
                "max_pairs": settings.max_pairs, "heldout_fraction": settings.heldout_fraction,
                "relation_source": rel.source}  # fmt: skip
        t0 = time.perf_counter()
        try:
            graph = gallery.find_scored(loaded.name, rel.name, **want)
            source = "stored"
            if graph is None:
                graph, pairs = score_relation(loaded, arg, settings, progress=False)
                gallery.save_scored(graph, pairs.relation)
                evaluator, source = heldout_evaluator(loaded, graph, pairs), "scored"
            else:
                scored_dir = gallery.folder(loaded.name, rel.name, "scored")
                evaluator = heldout_evaluator(loaded, graph, relation_file=scored_dir / "relation.json")
        except NotEnoughFactsError as error:
            log.warning("skipping %s: %s", rel.name, error)
            skipped[rel.name] = str(error)
            bar.update(1)
            continue
        if extract_method == "top-n":  # equal sizes after pruning, for fair comparisons
            n = size if size is not None else max(1, round((fraction or 0) * graph.n_edges))
            circuit = pruned_top_n(graph, n, by=by)
        else:
            circuit = extract(graph, extract_method, size=size, fraction=fraction, by=by)
        if circuit.faithfulness is None:
            circuit.faithfulness = float(evaluator.run_mask(circuit.to_mask()).faithfulness)
        circuit.name = circuit_name(circuit)
        gallery.save_circuit(circuit, formats=formats)
        graphs[rel.name], circuits[rel.name], evaluators[rel.name] = graph, circuit, evaluator
        rows.append({**circuit.summary(), "relation": rel.name, "source": source,
                     "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
        bar.update(1)
    bar.close()
    if len(circuits) < 2:
        raise NotEnoughFactsError(f"fewer than 2 relations could be scored; skipped: {skipped}")

    matrices = {name: reuse_matrix(circuits, name) for name in SIMILARITIES}
    matrices["spearman"] = rank_correlation_matrix(graphs, by=by)
    tree = cluster(matrices[metric])
    files: dict[str, str | bytes] = {}
    for name, m in matrices.items():
        files[f"{name}.csv"] = m.to_csv()
    files["heatmap.svg"] = heatmap_svg(matrices[metric], clustering=tree,
                                       title=f"{loaded.name}: circuit reuse ({metric})")  # fmt: skip
    files["heads.svg"] = heatmap_svg(matrices["head_share"], clustering=tree,
                                     title=f"{loaded.name}: share of in-circuit heads")  # fmt: skip
    cross_rows: list[dict[str, Any]] = []
    if cross:
        cbar = progress_bar(len(circuits) ** 2, "reuse: cross-task", enabled=progress)
        cross_m, results = cross_task_matrix(circuits, graphs, evaluators, by=by, progress=cbar)
        cbar.close()
        cross_rows = [r.as_dict() for r in results]
        files["cross_task.csv"] = cross_m.to_csv()
        files["cross_task.svg"] = heatmap_svg(cross_m, title=f"{loaded.name}: cross-task faithfulness "
                                              "(row circuit on column prompts / column's own)")  # fmt: skip
    k = max(2, math.ceil(len(circuits) / 2))
    family = [dataclasses.replace(c, name=n) for n, c in circuits.items()]
    core = shared_core(family, k, name=f"shared-core-{k}-of-{len(family)}")
    core.provenance["model"] = loaded.name
    files["core.json"] = core.to_json()
    specific = {n: c.n_edges for n, c in specific_parts(family, k).items()}
    ranked = matrices[metric].pairs()
    head = matrices["head_share"]

    def pair(entry: tuple[str, str, float]) -> dict[str, Any]:
        i, j = head.names.index(entry[0]), head.names.index(entry[1])
        return {"a": entry[0], "b": entry[1], "value": entry[2], "head_share": float(head.values[i, j])}

    report = {"model": loaded.name, "relations": list(circuits), "skipped": skipped,
              "settings": {**{k: (v.value if hasattr(v, "value") else v)
                              for k, v in dataclasses.asdict(settings).items()},
                           "extract": extract_method, "by": by, **_size_param(size, fraction)},
              "circuits": rows, "metric": metric, "matrix_csv": matrices[metric].to_csv(),
              "matrices": {n: m.as_dict() for n, m in matrices.items()}, "clustering": tree.as_dict(),
              "cross_task": cross_rows, "core": {"k": k, "n_edges": core.n_edges, "heads": core.heads()},
              "specific_edges": specific, "most_similar": pair(ranked[0]), "least_similar": pair(ranked[-1])}  # fmt: skip
    files["clustering.json"] = json.dumps(tree.as_dict(), indent=1)
    files["report.json"] = json.dumps(report, indent=1)
    from circuits.export import render

    def draw_core(folder: Path) -> None:
        title = f"{loaded.name}: edges in at least {k} of {len(family)} circuits ({core.n_edges} edges)"
        render(circuit_dot(core, title=title), folder / "core", formats=formats)

    entry = {
        "relations": list(circuits),
        "metric": metric,
        "method": extract_method,
        **_size_param(size, fraction),
    }
    target = gallery.save_files(loaded.name, "reuse", files, entry, after=draw_core)
    report["folder"] = str(target)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return report


# ------------------------------------------------------------------ parsers


def add_parsers(subparsers: Any) -> None:
    """Register ``extract``, ``render``, ``compare`` and ``reuse`` on the ``circuits`` command."""
    from circuits.export import FORMATS
    from circuits.extract import METHODS
    from circuits.models import DEFAULT_MODEL

    def sized(p: argparse.ArgumentParser, *, target: bool) -> None:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--size", type=int, help="edges (top-n, greedy), paths (paths) or nodes (nodes)")
        group.add_argument("--fraction", type=float, help="size as a fraction of all edges")
        if target:
            group.add_argument("--threshold", type=float, help="with --method threshold: minimum strength")
            group.add_argument("--target-faithfulness", type=float,
                               help="the smallest top-n circuit reaching this faithfulness (runs the model)")  # fmt: skip
        p.add_argument("--by", default="signed", choices=["signed", "abs"],
                       help="signed: most negative scores first (relied-on edges); abs: |score|")  # fmt: skip

    p = subparsers.add_parser("extract", help="extract a circuit from a scored graph",
                              description="Extract a circuit from a scored-graph directory.")  # fmt: skip
    p.add_argument(
        "dir", type=Path, help="a directory written by `circuits score` (or a store relation folder)"
    )
    p.add_argument("--method", default="top-n", choices=[m for m in METHODS if m != "minimal"])
    sized(p, target=True)
    p.add_argument("--no-prune", action="store_true", help="keep dead and dangling edges")
    p.add_argument("--evaluate", action="store_true", help="measure held-out faithfulness (runs the model)")
    p.add_argument("--name", help="circuit name (default: method-by-size)")
    p.add_argument("--out", type=Path, help="circuit JSON path (default: DIR/NAME.circuit.json)")
    p.add_argument("--store", type=Path, help="save into this graphs/ store instead, with diagrams")
    p.add_argument("--format", action="append", default=None, choices=FORMATS,
                   help="diagram formats with --store (default svg)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_extract)

    p = subparsers.add_parser("render", help="draw a circuit (or two, with --diff) with Graphviz")
    p.add_argument("circuit", type=Path, help="a circuit JSON file or a store circuit folder")
    p.add_argument("--format", default="svg", choices=FORMATS)
    p.add_argument("--color-by", default="sign", choices=["sign", "qkv"])
    p.add_argument("--diff", type=Path, help="a second circuit: draw shared, only-A and only-B edges")
    p.add_argument("--out", type=Path, help="output path (suffix replaced by the format)")
    p.set_defaults(func=cmd_render)

    p = subparsers.add_parser("compare", help="similarities of two circuits")
    p.add_argument("a", type=Path, help="circuit JSON file or store circuit folder")
    p.add_argument("b", type=Path)
    p.add_argument("--diff", type=Path, help="also write a diff diagram (DOT and SVG) here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("reuse", help="circuits of many relations: reuse matrix, clustering, "
                              "cross-task faithfulness, all stored in graphs/")  # fmt: skip
    p.add_argument("relations", nargs="+", help="bundled relation names or LRE JSON files")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    p.add_argument("--method", default=Method.EAP_IG.value, choices=[m.value for m in Method])
    p.add_argument("--extract", default="top-n", choices=["top-n", "greedy", "paths", "nodes"])
    sized(p, target=False)
    p.add_argument("--metric", default="edge_jaccard", choices=SIMILARITIES, help="for the clustering")
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--ig-steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, default=Path("graphs"), help="store root (default graphs/)")
    p.add_argument("--no-cross", action="store_true", help="skip cross-task faithfulness")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is much faster on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_reuse)
