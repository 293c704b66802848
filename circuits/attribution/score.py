"""From a relation to a scored graph: the scoring loop behind ``circuits score``.

Plain functions, so a script runs them the same way the command does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from circuits.attribution.harness import Harness
from circuits.attribution.memory import auto_batch_size
from circuits.attribution.prefix import prefix_record
from circuits.attribution.scoring import attribute_edges, exact_edges, mean_senders
from circuits.attribution.settings import ScoreSettings
from circuits.attribution.spool import PairSpool
from circuits.graph import (
    N_ROLES,
    ROLE_POSITIONS,
    PairScores,
    ScoredGraph,
    half_precision,
)
from circuits.models import LoadedModel
from circuits.progress import progress_bar
from circuits.relations import Relation, load_relation
from circuits.relations.pairs import PairSet, batch_pairs, make_pairs
from circuits.relations.samples import report_prompts
from circuits.vocab import Ablation, NotEnoughFactsError, ScoreMethod

__all__ = ["score_pairs", "score_relation", "strongest_pair_scores"]

log = logging.getLogger(__name__)


def score_pairs(
    model: LoadedModel, pairs: PairSet, settings: ScoreSettings, *, progress: bool = True
) -> ScoredGraph:
    """Score every edge of ``model`` on the scoring split of ``pairs``.

    An edge's score is the estimated change of the metric when that edge alone
    carries the corrupted sender's value (the sender's output under
    ``settings.ablation``) while every other edge stays clean, averaged over
    the scoring pairs. With the logit difference as metric, the edges a
    circuit relies on have *negative* scores. With ``score_method="exact"``
    the top ``settings.exact_top`` edges hold that change exactly (measured by
    patching), the others the EAP-IG estimate. The formulas are written down in
    ``circuits/ARCHITECTURE.md``.

    Parameters
    ----------
    model : LoadedModel
        The model to score (:func:`~circuits.models.load_model`).
    pairs : PairSet
        Prompt pairs made for this model (:func:`~circuits.relations.make_pairs`);
        only ``pairs.scoring`` is scored (``pairs.pairs`` gives the means of
        mean ablation).
    settings : ScoreSettings
        Method, metric, ablation, IG steps, batch size, seed.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    ScoredGraph
        Dense ``[senders, receivers]`` scores; its metadata records the model,
        relation (name, source, template), settings, prompt counts, split seed,
        known-fact filter, weight processing, package version and seconds.

    Examples
    --------
    >>> from circuits import ScoreSettings, heldout_evaluator, load_model, load_relation
    >>> from circuits import make_pairs, score_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = make_pairs(model, load_relation("country_capital_city"), max_rank=10**9, max_pairs=6)
    >>> settings = ScoreSettings(score_method="exact", ig_steps=2, exact_top=3)
    >>> graph = score_pairs(model, pairs, settings, progress=False)
    >>> graph.metadata["n_pairs_scoring"], graph.metadata["exact_refined_edges"]
    (3, 3)

    The sign convention, checked: an exactly scored edge's score is the change
    of the mean logit difference on the scoring pairs when the circuit of all
    edges but that one is run.

    >>> sender, receiver = divmod(int(graph.ranked(by="abs")[0]), graph.shape.n_receivers)
    >>> keep = graph.mask.copy()
    >>> keep[sender, receiver] = False
    >>> evaluator = heldout_evaluator(model, graph, pairs, split="scoring")
    >>> change = evaluator.run_mask(keep).metric - evaluator.full.metric
    >>> bool(abs(change - graph.scores[sender, receiver]) < 1e-4)
    True
    """
    from circuits.version import __version__

    if not pairs.scoring:
        raise NotEnoughFactsError(
            f"relation {pairs.relation.name!r}: no prompt pair is left to score "
            f"({len(pairs.pairs)} pairs, {len(pairs.heldout)} held out); use more pairs "
            "or a smaller held-out fraction"
        )
    torch.manual_seed(settings.seed)
    harness = Harness(model)
    shape = harness.shape
    scoring = pairs.scoring
    pad = model.pad_id
    means = None
    if settings.ablation is Ablation.MEAN:
        means = mean_senders(harness, batch_pairs(pairs.pairs, pad=pad))
    steps = settings.steps
    started = time.perf_counter()
    whole = batch_pairs(scoring, pad=pad)
    batch_size = settings.batch_size or auto_batch_size(
        harness, whole, "attribution", ablation=settings.ablation, shared_prefix=settings.shared_prefix
    )
    bar = progress_bar(len(scoring), f"{settings.score_method.value} {pairs.relation.name}", enabled=progress)
    by_role = settings.positions == ROLE_POSITIONS
    units = (N_ROLES,) if by_role else ()
    spool = PairSpool((*units, shape.n_senders, shape.n_receivers))
    try:
        for start in range(0, len(scoring), batch_size):
            chunk = scoring[start : start + batch_size]
            # each pair's own scores (the batch mean's gradient at a pair's positions is that pair's alone)
            spool.add(
                attribute_edges(
                    harness,
                    batch_pairs(chunk, pad=pad),
                    metric=settings.metric,
                    ablation=settings.ablation,
                    ig_steps=steps,
                    means=means,
                    per_pair=True,
                    by_role=by_role,
                    shared_prefix=settings.shared_prefix,
                )
                .cpu()
                .numpy()
            )
            bar.update(len(chunk))
        bar.close()
        graph = _graph_of(shape, spool.mean(), by_role)
        refined = 0
        if settings.score_method is ScoreMethod.EXACT:
            refined = _refine_exact(harness, graph, spool, pairs, settings, means, pad, batch_size, progress)
            graph = _graph_of(shape, spool.mean(), by_role)
        graph.pair_scores = strongest_pair_scores(graph, spool, settings.pair_edges)
    finally:
        spool.close()
    graph.metadata = {
        "model": model.name,
        "relation": pairs.relation.name,
        "relation_source": pairs.relation.source,
        "template": pairs.template,
        "prompt": pairs.prompt_record(),
        "prompt_request": pairs.request,
        "score_method": settings.score_method.value,
        "metric": settings.metric.value,
        "ablation": settings.ablation.value,
        "ig_steps": steps,
        "exact_refined_edges": refined,
        "n_pairs_scoring": len(scoring),
        "n_pairs_heldout": len(pairs.heldout),
        "n_facts": pairs.n_facts,
        "n_known": pairs.n_known,
        "n_no_counterfactual": pairs.n_no_counterfactual,
        "split_seed": pairs.seed,
        "seed": settings.seed,
        "heldout_fraction": pairs.settings["heldout_fraction"],
        "max_pairs": pairs.max_pairs,
        "known_filter": pairs.settings,
        "processing": model.processing,
        "package_version": __version__,
        "d_model": int(model.cfg.d_model),
        "pair_edges": settings.pair_edges,
        "positions": settings.positions,
        "batch_size": batch_size,
        "shared_prefix": prefix_record(whole, settings.ablation, settings.shared_prefix),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return graph


def _graph_of(shape: Any, means: np.ndarray, by_role: bool) -> ScoredGraph:
    """The graph of the pairs' mean scores (``[S, R]``, or ``[n_roles, S, R]``,
    which also gives role scores)."""
    if not by_role:
        return ScoredGraph(shape, means.astype(np.float32))
    return ScoredGraph(shape, means.sum(0).astype(np.float32), role_scores=means.astype(np.float32))


def strongest_pair_scores(graph: ScoredGraph, spool: PairSpool, k: int) -> PairScores:
    """The per-pair scores (spooled ``[n_pairs, S, R]``, or by role) of the ``k`` units
    of largest ``|score|``."""
    top = graph.ranked(by="abs", positions=graph.positions)[: max(1, k)]
    return PairScores(top, half_precision(spool.columns(top)))


def _refine_exact(
    harness: Harness,
    graph: ScoredGraph,
    spool: PairSpool,
    pairs: PairSet,
    settings: ScoreSettings,
    means: Any,
    pad: int,
    batch_size: int,
    progress: bool,
) -> int:
    """Replace the approximate scores of the top edges (or units) by exact patching scores in ``spool``."""
    positions = graph.positions
    top = graph.ranked(by="abs", positions=positions)
    if settings.exact_top > 0:
        top = top[: settings.exact_top]
    unit_shape = graph.unit_mask(positions).shape
    units = [tuple(int(i) for i in np.unravel_index(int(flat), unit_shape)) for flat in top]
    # a unit index is (role, sender, receiver); exact_edges takes (sender, receiver[, role])
    edges = [u[1:] + u[:1] if len(u) == 3 else u for u in units]
    exact = np.zeros((len(edges), len(pairs.scoring)))
    bar = progress_bar(len(edges) * len(pairs.scoring), "exact patching", enabled=progress)
    for start in range(0, len(pairs.scoring), batch_size):
        chunk = pairs.scoring[start : start + batch_size]
        batch = batch_pairs(chunk, pad=pad)
        exact[:, start : start + len(chunk)] = exact_edges(
            harness,
            batch,
            edges,
            metric=settings.metric,
            ablation=settings.ablation,
            means=means,
            per_pair=True,
            shared_prefix=settings.shared_prefix,
        )
        bar.update(len(edges) * len(chunk))
    bar.close()
    spool.override(top, exact.T.astype(np.float32))
    return len(edges)


def score_relation(
    model: LoadedModel,
    relation: str | Path | Relation,
    settings: ScoreSettings | None = None,
    *,
    template: str | None = None,
    progress: bool = True,
) -> tuple[ScoredGraph, PairSet]:
    """Load a relation, make its prompt pairs and score the model's graph on them.

    :func:`~circuits.relations.load_relation`, then
    :func:`~circuits.relations.make_pairs` (with the seed, split, pair cap and
    known-fact filter of ``settings``), then :func:`score_pairs`.

    Parameters
    ----------
    model : LoadedModel
        The model to score.
    relation : str, Path or Relation
        A bundled relation's name, an LRE JSON file or a CSV file, or a
        relation already loaded.
    settings : ScoreSettings, optional
        Defaults to ``ScoreSettings()`` (EAP-IG, logit difference,
        counterfactual ablation, facts known at rank 1).
    template : str, optional
        Replaces the relation's first template (required for a CSV relation).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    graph : ScoredGraph
        The edge scores and their metadata.
    pairs : PairSet
        The prompt pairs, split into the scored set and the held-out set (pass
        it to :func:`heldout_evaluator`, or save ``pairs.relation`` with the
        graph).

    Raises
    ------
    NotEnoughFactsError
        The model knows too few facts of the relation under the filter.

    Examples
    --------
    >>> from circuits import ScoreSettings, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> graph.scores.shape, graph.n_edges, len(pairs.scoring), len(pairs.heldout)
    ((16, 28), 190, 3, 3)
    >>> graph.metadata["relation"], graph.metadata["score_method"], graph.metadata["ig_steps"]
    ('country_capital_city', 'eap-ig', 2)
    """
    settings = settings or ScoreSettings()
    rel = relation if isinstance(relation, Relation) else load_relation(relation, template=template)
    if template is not None:
        rel = dataclasses.replace(rel, prompt_templates=(template, *rel.prompt_templates[1:]))
    templates = "first" if template is not None and settings.templates == "best" else settings.templates
    pairs = make_pairs(
        model,
        rel,
        templates=templates,
        shots=settings.shots,
        seed=settings.seed,
        heldout_fraction=settings.heldout_fraction,
        max_pairs=settings.max_pairs,
        max_rank=settings.max_rank,
        min_prob=settings.min_prob,
        progress=progress,
    )
    report_prompts(pairs)
    return score_pairs(model, pairs, settings, progress=progress), pairs
