"""The reuse sweep: circuits of many relations, compared, all stored in the ``graphs/`` gallery."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from circuits.attribution.score import score_relation
from circuits.attribution.settings import ScoreSettings
from circuits.compare import (
    SIMILARITIES,
    cluster,
    cross_task_matrix,
    rank_correlation_matrix,
    reuse_matrix,
    shared_core,
    specific_parts,
)
from circuits.compare.ceilings import NoiseSettings, family_noise
from circuits.compare.cross_task import CrossTask
from circuits.deprecation import renamed_keyword
from circuits.draw import circuit_dot, heatmap_svg, render
from circuits.evaluate import faithfulness_interval
from circuits.evaluate.heldout import heldout_evaluator
from circuits.extract import extract, pruned_top_n
from circuits.io import record_json
from circuits.jobs.executor import Executor, ModelSpec
from circuits.jobs.extraction import diagram_writer
from circuits.jobs.reuse_noise import noise_files, noise_steps
from circuits.jobs.reuse_report import ReuseCircuit, ReuseCore, ReusePair, ReuseReport
from circuits.models import DEFAULT_MODEL, LoadedModel, load_model
from circuits.progress import progress_bar
from circuits.relations import Relation
from circuits.relations.pairs import PairSet
from circuits.relations.schema import load_relations
from circuits.store import RELATION, Gallery, circuit_name, circuit_to_json
from circuits.vocab import ExtractMethod, InputError, NotEnoughFactsError

__all__ = ["SIMILARITIES", "ReuseReport", "StoredScore", "run_reuse", "score_stored", "skipped_text"]

DEFAULT_NOISE = NoiseSettings()

log = logging.getLogger(__name__)


def skipped_text(skipped: dict[str, str]) -> str:
    """The relations a sweep skipped and why, for an error message.

    >>> skipped_text({"a": "knows 1 of 9 facts", "b": "no counterfactual"})
    'skipped: a (knows 1 of 9 facts); b (no counterfactual)'
    >>> skipped_text({})
    'none was skipped'
    """
    if not skipped:
        return "none was skipped"
    return "skipped: " + "; ".join(f"{name} ({why})" for name, why in skipped.items())


@dataclass(frozen=True)
class StoredScore:
    """One relation's scoring in a sweep: the pairs it was scored on now, or why it was skipped.

    ``pairs`` is ``None`` when a stored graph was found (so the sweep
    evaluates without checking the facts again); ``skipped`` says why the
    relation could not be scored, or is ``None``.
    """

    relation: str
    pairs: PairSet | None = None
    skipped: str | None = None


def score_stored(
    relation: Relation, *, model: ModelSpec | LoadedModel, settings: ScoreSettings, store: str | Path
) -> StoredScore:
    """Score ``relation`` into the gallery at ``store`` unless a graph with these settings is stored there.

    The reuse sweep's scoring of one relation, in this process or as a Ray
    task (where a :class:`ModelSpec` is loaded again).
    """
    gallery = Gallery(store)
    loaded = model.load() if isinstance(model, ModelSpec) else model
    if gallery.find_scored(loaded.name, relation.name, facts=relation, **settings.stored_as()) is not None:
        return StoredScore(relation.name)
    try:
        graph, pairs = score_relation(loaded, relation, settings, progress=False)
    except NotEnoughFactsError as error:
        return StoredScore(relation.name, skipped=str(error))
    gallery.save_scored(graph, pairs.relation)
    return StoredScore(relation.name, pairs=pairs)


def run_reuse(
    relations: Sequence[str],
    *,
    model: str | LoadedModel = DEFAULT_MODEL,
    settings: ScoreSettings | None = None,
    extract_method: str = "top-n",
    size: int | None = None,
    fraction: float | None = None,
    by: str = "signed",
    store: str | Path = "graphs",
    similarity: str = "edge_jaccard",
    cross: bool = True,
    formats: tuple[str, ...] = ("svg",),
    noise: NoiseSettings | None = DEFAULT_NOISE,
    heatmap: str = "similarity",
    progress: bool = True,
    executor: Executor | None = None,
    metric: str | None = None,
) -> ReuseReport:
    """Score, extract, evaluate and compare circuits of many relations; store everything.

    For each relation: score it (or reuse the stored graph whose settings
    match), extract one circuit (top-n circuits are pruned to equal sizes for
    fair comparisons), measure its held-out faithfulness and store it with its
    diagram. Then compare them all: similarity matrices, clustering,
    cross-task faithfulness, the shared core and each relation's specific
    part, stored as one ``<model>/reuse`` unit of the :class:`~circuits.store.Gallery`.

    Parameters
    ----------
    relations : sequence of str
        At least two relations: bundled names or relation files.
    model : str or LoadedModel
        A model name for :func:`~circuits.models.load_model`, or a loaded model.
    settings : ScoreSettings, optional
        How each relation is scored (default ``ScoreSettings()``); a stored
        graph is reused only when its metadata match these settings.
    extract_method : str
        An extraction method of :func:`circuits.extract.extract`; ``"top-n"``
        uses :func:`~circuits.extract.pruned_top_n`, so every circuit has the
        same size after pruning where the graphs allow it.
    size, fraction
        Circuit size in edges, or as a fraction of all edges; neither means
        200 edges. With ``settings.positions == "roles"`` the circuits keep
        (edge, role) units and the sizes count units.
    by : {"signed", "abs"}
        Rank edges by signed score (most negative, i.e. most relied-on, first)
        or by ``|score|``.
    store : str or Path
        Root of the gallery (default ``graphs``).
    similarity : str
        The similarity the heatmap, clustering and most/least similar pairs
        use: one of :data:`SIMILARITIES` (every one of them is tabulated).
        ``metric=``, its old name, still works for one version.
    cross : bool
        Also measure cross-task faithfulness: each circuit on every other
        relation's held-out prompts, against that relation's own circuit of
        the same size.
    formats : tuple of str
        Diagram formats (``"svg"``, ``"png"``, ``"dot"``); images need
        Graphviz's ``dot``, the DOT file is always written.
    noise : NoiseSettings or None
        Bootstrap resamples, split-half splits and permutation shuffles for
        every similarity's interval, each relation's noise ceiling and each
        pair's null (:mod:`circuits.compare.noise`); ``None`` skips them. Only
        top-n circuits are redrawn; other extraction methods get none.
    heatmap : {"similarity", "relative"}
        What ``heatmap.svg`` shows: the similarity, or the similarity
        relative to the two relations' split-half ceilings (both are written).
    progress : bool
        Show progress bars on stderr.
    executor : Executor, optional
        Where the relations are scored: here, one after another (the
        default), or one Ray task per relation (``Executor("ray")``), each
        storing its graph in ``store``; the rest of the sweep then reads them
        back here. The results are the same either way.

    Returns
    -------
    ReuseReport
        Its :meth:`~ReuseReport.to_dict` is also written as ``report.json``:
        ``model``, ``relations`` (those compared), ``skipped`` (relation ->
        why), ``settings``, ``circuits`` (one row per relation, with
        ``source`` ``"scored"`` or ``"stored"`` and held-out faithfulness),
        ``matrices`` (every similarity, plus the Spearman rank correlation
        over the union of the graphs' top edges), ``noise`` (intervals,
        ceilings, matched similarities, nulls; see
        :class:`~circuits.compare.ceilings.FamilyNoise`), ``clustering``,
        ``cross_task``, ``core`` (edges in at least half of the circuits),
        ``specific_edges``, ``most_similar`` and ``least_similar`` pairs,
        ``folder`` and ``seconds``.

    Raises
    ------
    InputError
        Fewer than two relations, or an unknown ``similarity``.
    NotEnoughFactsError
        Fewer than two relations could be scored. Relations the model knows
        too few facts of are skipped with a warning.

    Examples
    --------
    >>> import os, tempfile
    >>> from circuits import ScoreSettings, load_model, run_reuse
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> store = tempfile.mkdtemp()
    >>> relations = ["country_capital_city", "country_currency"]
    >>> report = run_reuse(relations, model=model, settings=settings, size=20, store=store,
    ...                    formats=("dot",), progress=False)
    >>> report.relations, report.skipped, report.core.k
    (['country_capital_city', 'country_currency'], {}, 2)
    >>> [row.source for row in report.circuits], all(row.n_edges <= 20 for row in report.circuits)
    (['scored', 'scored'], True)
    >>> float(report.matrices["edge_jaccard"].values[0, 0]), len(report.cross_task)
    (1.0, 4)
    >>> sorted(os.listdir(os.path.join(store, "tiny-llama")))
    ['country_capital_city', 'country_currency', 'reuse']

    A second sweep with the same settings reuses the stored graphs:

    >>> again = run_reuse(relations, model=model, settings=settings, size=20, store=store,
    ...                   formats=("dot",), progress=False)
    >>> [row.source for row in again.circuits]
    ['stored', 'stored']
    """
    started = time.perf_counter()
    similarity = renamed_keyword("metric", metric, "similarity", similarity, "edge_jaccard")
    if heatmap not in ("similarity", "relative"):
        raise InputError(f"--heatmap shows 'similarity' or 'relative', not {heatmap!r}")
    if similarity not in SIMILARITIES:
        raise InputError(f"unknown --similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
    if len(relations) < 2:
        raise InputError(f"reuse compares at least 2 relations, got {len(relations)}")
    if size is None and fraction is None:
        size = 200
    settings = settings or ScoreSettings()
    loaded_relations = load_relations(relations)
    loaded = load_model(model) if isinstance(model, str) else model
    gallery = Gallery(store)
    graphs, circuits, evaluators, skipped = {}, {}, {}, {}
    rows: list[ReuseCircuit] = []
    fresh: dict[str, PairSet] = {}  # relation -> the pairs it was scored on now
    executor = executor or Executor()
    task = functools.partial(
        score_stored,
        model=ModelSpec.of(loaded) if executor.distributed else loaded,
        settings=settings,
        store=str(gallery.root.resolve()),
    )
    for done in executor.map(
        task, [rel for _, rel in loaded_relations], desc="reuse: scoring", progress=progress
    ):
        if done.pairs is not None:
            fresh[done.relation] = done.pairs
        if done.skipped is not None:
            log.warning("skipping %s: %s", done.relation, done.skipped)
            skipped[done.relation] = done.skipped
    bar = progress_bar(len(relations), "reuse: relations", enabled=progress)
    for _, rel in loaded_relations:
        t0 = time.perf_counter()
        if rel.name in skipped:
            bar.update(1)
            continue
        try:
            graph = gallery.load_scored(loaded.name, rel.name)
            if rel.name in fresh:
                evaluator, source = heldout_evaluator(loaded, graph, fresh[rel.name]), "scored"
            else:
                folder = gallery.folder(loaded.name, rel.name, "scored")
                evaluator, source = (
                    heldout_evaluator(loaded, graph, relation_file=folder / RELATION),
                    "stored",
                )
        except NotEnoughFactsError as error:
            log.warning("skipping %s: %s", rel.name, error)
            skipped[rel.name] = str(error)
            bar.update(1)
            continue
        if extract_method == ExtractMethod.TOP_N.value:  # equal sizes after pruning, for fair comparisons
            n = size if size is not None else max(1, round((fraction or 0) * graph.n_units(graph.positions)))
            circuit = pruned_top_n(graph, n, by=by, positions=graph.positions)
        else:
            circuit = extract(graph, extract_method, size=size, fraction=fraction, by=by)
        n_boot = 0 if noise is None else noise.n_boot
        interval = faithfulness_interval(evaluator, circuit.to_unit_mask(), n_boot=n_boot, seed=settings.seed)
        circuit.faithfulness = interval.value if circuit.faithfulness is None else circuit.faithfulness
        if n_boot:
            circuit.params = {
                **circuit.params,
                "faithfulness_interval": {
                    **interval.as_dict(),
                    "n_boot": n_boot,
                    "n_pairs": len(evaluator.batch),
                },
            }
        circuit.name = circuit_name(circuit)
        gallery.save_circuit(circuit, draw=diagram_writer(circuit, formats))
        graphs[rel.name], circuits[rel.name], evaluators[rel.name] = graph, circuit, evaluator
        rows.append(ReuseCircuit.of(circuit, rel.name, source, time.perf_counter() - t0))
        bar.update(1)
    bar.close()
    if len(circuits) < 2:
        raise NotEnoughFactsError(f"fewer than 2 relations could be scored; {skipped_text(skipped)}")

    matrices = {name: reuse_matrix(circuits, name) for name in SIMILARITIES}
    matrices["spearman"] = rank_correlation_matrix(graphs, by=by)
    tree = cluster(matrices[similarity])
    files: dict[str, str | bytes] = {}
    for name, m in matrices.items():
        files[f"{name}.csv"] = m.to_csv()
    refs = None
    if noise is not None and extract_method == ExtractMethod.TOP_N.value:
        nbar = progress_bar(noise_steps(len(circuits), noise), "reuse: noise ceilings", enabled=progress)
        refs = family_noise(graphs, circuits, [*SIMILARITIES, "spearman"], settings=noise, progress=nbar)
        nbar.close()
        files.update(noise_files(refs, matrices, tree))
    chosen = matrices[similarity]
    shown = refs.matrix(similarity, "relative") if refs is not None and heatmap == "relative" else chosen
    label = f"{similarity} relative to the split-half ceilings" if shown is not chosen else similarity
    files["heatmap.svg"] = heatmap_svg(
        shown, clustering=tree, title=f"{loaded.name}: circuit reuse ({label})"
    )
    if refs is not None:
        files["heatmap_relative.svg"] = heatmap_svg(
            refs.matrix(similarity, "relative"),
            clustering=tree,
            title=f"{loaded.name}: {similarity} / split-half ceilings",
        )
    files["heads.svg"] = heatmap_svg(
        matrices["head_share"], clustering=tree, title=f"{loaded.name}: share of in-circuit heads"
    )
    cross_rows: list[CrossTask] = []
    if cross:
        cbar = progress_bar(len(circuits) ** 2, "reuse: cross-task", enabled=progress)
        cross_m, results = cross_task_matrix(
            circuits,
            graphs,
            evaluators,
            by=by,
            progress=cbar,
            n_boot=0 if noise is None else noise.n_boot,
            seed=settings.seed,
        )
        cbar.close()
        cross_rows = list(results)
        files["cross_task.csv"] = cross_m.to_csv()
        files["cross_task.svg"] = heatmap_svg(
            cross_m,
            title=f"{loaded.name}: cross-task faithfulness (row circuit on column prompts / column's own)",
        )
    k = max(2, math.ceil(len(circuits) / 2))
    family = [dataclasses.replace(c, name=n) for n, c in circuits.items()]
    core = shared_core(family, k, name=f"shared-core-{k}-of-{len(family)}")
    core.provenance["model"] = loaded.name
    files["core.json"] = circuit_to_json(core)
    specific = {n: c.n_edges for n, c in specific_parts(family, k).items()}
    ranked = chosen.pairs()
    head = matrices["head_share"]

    def pair(entry: tuple[str, str, float]) -> ReusePair:
        i, j = head.names.index(entry[0]), head.names.index(entry[1])
        noise_of = None
        if refs is not None:
            key = (entry[0], entry[1]) if (entry[0], entry[1]) in refs.pairs else (entry[1], entry[0])
            noise_of = refs.pairs[key][similarity].as_dict()
        return ReusePair(entry[0], entry[1], entry[2], float(head.values[i, j]), noise_of)

    report = ReuseReport(
        model=loaded.name,
        relations=list(circuits),
        skipped=skipped,
        settings={
            **{k: (v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(settings).items()},
            "extract_method": extract_method,
            "by": by,
            "size": size,
            "fraction": fraction,
        },
        circuits=rows,
        similarity=similarity,
        matrices=matrices,
        clustering=tree,
        cross_task=cross_rows,
        core=ReuseCore(k, core.n_edges, core.heads()),
        specific_edges=specific,
        most_similar=pair(ranked[0]),
        least_similar=pair(ranked[-1]),
        noise=None if refs is None else refs.as_dict(),
    )
    files["clustering.json"] = json.dumps(tree.as_dict(), indent=1)
    files["report.json"] = record_json(report.to_dict())

    def draw_core(folder: Path) -> None:
        title = f"{loaded.name}: edges in at least {k} of {len(family)} circuits ({core.n_edges} edges)"
        render(circuit_dot(core, title=title), folder / "core", formats=formats)

    entry = {
        "relations": list(circuits),
        "metric": similarity,
        "extract_method": extract_method,
        "size": size,
        "fraction": fraction,
    }
    target = gallery.save_files(loaded.name, "reuse", files, entry, after=draw_core)
    report.folder = str(target)
    report.seconds = round(time.perf_counter() - started, 2)
    return report
