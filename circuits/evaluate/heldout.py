"""From a scored graph to its evaluation: the job behind ``circuits evaluate``.

The held-out pairs a graph is evaluated on are remade from its metadata
(relation, template, split seed, known-fact filter, pair cap), so a stored
graph is evaluated on exactly the pairs it was not scored on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from circuits.attribution import Harness, mean_senders
from circuits.checks import REQUIRED_METADATA, check_metadata, shape_size
from circuits.evaluate.curves import Evaluation, evaluate_graph
from circuits.evaluate.forward import FRACTIONS, Evaluator
from circuits.graph import GraphShape, ScoredGraph
from circuits.models import LoadedModel, load_model
from circuits.progress import progress_bar
from circuits.relations import load_relation
from circuits.relations.pairs import PairSet, batch_pairs, remake_pairs
from circuits.store.scored import META, RELATION, load_scored
from circuits.uncertainty import DEFAULT_BOOT
from circuits.vocab import Ablation, InputError

__all__ = ["evaluate_scored", "heldout_evaluator"]


def heldout_evaluator(
    model: LoadedModel,
    graph: ScoredGraph,
    pairs: PairSet | None = None,
    *,
    relation_file: Path | None = None,
    split: str = "heldout",
) -> Evaluator:
    """An Evaluator on the held-out (or scoring) pairs of the relation ``graph`` was scored on.

    The evaluator runs circuits (boolean ``[senders, receivers]`` masks of kept
    edges) on those pairs with the graph's metric and ablation: every removed
    edge carries the corrupted sender's value. Its normalized faithfulness is
    ``(m(C) - m(∅)) / (m(full) - m(∅))``: 1 for the full model, 0 for the
    fully corrupted run.

    Parameters
    ----------
    model : LoadedModel
        The model the graph was scored on.
    graph : ScoredGraph
        Its metadata gives the metric, the ablation and how to remake the pairs.
    pairs : PairSet, optional
        The pairs the graph was scored with. When not given they are remade
        from the graph's metadata (template, split seed, known-fact filter,
        pair cap); the relation is read from ``relation_file`` when it exists,
        else by the name in the metadata.
    relation_file : Path, optional
        A stored ``relation.json`` (see :func:`circuits.save_scored`).
    split : {"heldout", "scoring"}
        Which pairs to evaluate on (any other value means ``"scoring"``).

    Returns
    -------
    Evaluator
        ``run_mask(keep)`` gives a circuit's ``n_edges``, mean ``metric``,
        ``faithfulness`` and ``hit_at_k``; ``full`` and ``empty`` are the runs
        of every edge and of none.

    Examples
    --------
    >>> import numpy as np
    >>> from circuits import ScoreSettings, extract, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> evaluator = heldout_evaluator(model, graph, pairs)
    >>> len(evaluator.batch)
    3
    >>> run = evaluator.run_mask(graph.mask)
    >>> run.n_edges, round(run.faithfulness, 6)
    (190, 1.0)
    >>> evaluator.run_mask(np.zeros_like(graph.mask)).faithfulness == 0.0
    True
    >>> circuit = extract(graph, "top-n", size=20)
    >>> evaluator.run_mask(circuit.to_mask()).n_edges == circuit.n_edges
    True

    Without ``pairs`` the same held-out pairs are remade from the metadata:

    >>> heldout_evaluator(model, graph).full.metric == evaluator.full.metric
    True
    """
    if split not in ("heldout", "scoring"):
        raise InputError(f"split is 'heldout' or 'scoring', not {split!r}")
    meta = graph.metadata
    if pairs is None:
        source: str | Path = meta["relation"]
        if relation_file is not None and relation_file.is_file():
            source = relation_file
        rel = dataclasses.replace(load_relation(source), name=meta["relation"])
        pairs = remake_pairs(model, rel, meta)
    pad = model.pad_id
    harness = Harness(model)
    means = None
    if meta.get("ablation") == Ablation.MEAN.value:
        means = mean_senders(harness, batch_pairs(pairs.pairs, pad=pad))
    chosen = pairs.heldout if split == "heldout" else pairs.scoring
    return Evaluator(
        harness, batch_pairs(chosen, pad=pad), metric=meta["metric"], ablation=meta["ablation"], means=means
    )


def evaluate_scored(
    directory: str | Path,
    *,
    model: LoadedModel | None = None,
    progress: bool = True,
    split: str = "heldout",
    n_boot: int = DEFAULT_BOOT,
) -> tuple[Evaluation, ScoredGraph]:
    """Faithfulness of a stored scored graph on the held-out split of its relation.

    Reads the graph written by :func:`circuits.save_scored` (or
    :meth:`circuits.Gallery.save_scored`), remakes its held-out pairs
    (:func:`heldout_evaluator`) and measures the faithfulness of its top
    circuits at the edge fractions of :data:`circuits.evaluate.FRACTIONS`:
    chosen by signed score (most negative first), by ``|score|``, and at
    random; CPR is the area under the signed curve, CMD the area under
    ``|1 - F|`` of the ``|score|`` curve. Every figure gets a 95% bootstrap
    interval over the pairs, seeded by the graph's seed (the per-pair values
    of the runs are resampled; the model is not re-run).

    Parameters
    ----------
    directory : str or Path
        A scored-graph directory (``graph.json``, ``scores.safetensors`` and,
        when saved with its relation, ``relation.json``).
    model : LoadedModel, optional
        The model to evaluate with; loaded by the name in the metadata (with
        its weight processing) when not given. Its shape must match the graph.
    progress : bool
        Show a progress bar on stderr.
    split : {"heldout", "scoring"}
        Which pairs to evaluate on.
    n_boot : int
        Bootstrap resamples for the intervals (default 200; 0: none).

    Returns
    -------
    evaluation : Evaluation
        Clean and corrupted metric, the three faithfulness curves, Hit@10,
        CPR, CMD, random CPR and counts; ``intervals`` their 95% intervals
        (None with ``n_boot=0``); ``extra`` names the split, relation, model
        and score method.
    graph : ScoredGraph
        The graph as read back.

    Examples
    --------
    >>> import tempfile
    >>> from circuits import ScoreSettings, evaluate_scored, load_model, save_scored, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> folder = save_scored(tempfile.mkdtemp(), graph, pairs.relation)
    >>> evaluation, stored = evaluate_scored(folder, model=model, progress=False)
    >>> evaluation.n_pairs, evaluation.n_edges, len(evaluation.fractions)
    (3, 190, 10)
    >>> evaluation.fractions[-1], round(evaluation.signed[-1], 6)
    (1.0, 1.0)
    >>> evaluation.extra["split"], evaluation.extra["score_method"]
    ('heldout', 'eap-ig')
    >>> str(evaluation.intervals.signed[-1])
    '1.00 [1.00, 1.00]'
    >>> evaluate_scored(folder, model=model, progress=False, n_boot=0)[0].intervals is None
    True
    """
    graph = load_scored(directory)
    meta = check_metadata(graph.metadata, str(Path(directory) / META), required=REQUIRED_METADATA)
    if model is None:
        model = load_model(meta["model"], processing=meta.get("processing", "none"))
    here = GraphShape.of(model)
    if here != graph.shape:
        whose = "" if meta["model"] == model.name else f" (the graph names {meta['model']!r})"
        raise InputError(
            f"{directory}: the graph's shape ({shape_size(graph.shape)}) is not the shape of "
            f"{model.name!r} as loaded here ({shape_size(here)}){whose}; the graph was edited "
            "or scored on another model: score it again with this one"
        )
    evaluator = heldout_evaluator(model, graph, relation_file=Path(directory) / RELATION, split=split)
    bar = progress_bar(len(FRACTIONS), "evaluating", enabled=progress)
    result = evaluate_graph(
        evaluator, graph, seed=meta.get("seed", 0), progress=bar, n_boot=n_boot, positions=graph.positions
    )
    bar.close()
    result.extra = {
        "split": split,
        "relation": meta["relation"],
        "model": meta["model"],
        "score_method": meta["score_method"],
        "positions": graph.positions,
    }
    return result, graph
