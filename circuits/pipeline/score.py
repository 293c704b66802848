"""From a relation to a scored graph: the job behind ``circuits score``.

Plain functions, so a script runs them the same way the command does.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from circuits.attribution import Harness, attribute_edges, exact_edges, mean_senders
from circuits.attribution.memory import auto_batch_size
from circuits.attribution.prefix import prefix_record
from circuits.graph import (
    N_ROLES,
    PAIR_EDGES,
    ROLE_POSITIONS,
    SUMMED,
    PairScores,
    ScoredGraph,
    check_positions,
    half_precision,
)
from circuits.models import LoadedModel
from circuits.pipeline.pair_spool import PairSpool
from circuits.progress import progress_bar
from circuits.relations import Relation, load_relation
from circuits.relations.pairs import PairSet, batch_pairs, make_pairs
from circuits.relations.prompts import parse_templates
from circuits.relations.samples import report_prompts
from circuits.vocab import Ablation, InputError, Metric, NotEnoughFactsError, ScoreMethod, choice

__all__ = ["ScoreSettings", "score_pairs", "score_relation"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreSettings:
    """How a relation is scored; every field lands in the graph's metadata.

    Enum fields accept their string values (``"eap"``, ``"logprob"``, ...) and
    are stored as enums; an unknown value is an :class:`~circuits.vocab.InputError`
    that lists the valid ones.

    Parameters
    ----------
    score_method : {"eap-ig", "eap", "exact"}
        ``"eap"``: edge attribution patching, the first-order estimate
        ``Δa_u · ∂m/∂in_v`` from one clean forward and backward;
        ``"eap-ig"``: the same with the gradient averaged over ``ig_steps``
        points between the ablated and the clean input embedding (the
        default); ``"exact"``: EAP-IG, then the ``exact_top`` edges of largest
        ``|score|`` are re-scored by real activation patching.
    metric : {"logit-diff", "logprob", "prob", "kl"}
        What is measured at each prompt's last position: clean answer's logit
        minus the counterfactual answer's (the default), the clean answer's
        log-probability or probability, or the KL divergence from the clean
        next-token distribution.
    ablation : {"counterfactual", "mean", "zero"}
        What a corrupted sender carries: its value on the counterfactual
        prompt (the default), its mean over all pairs' prompts, or zero.
    ig_steps : int
        Integration steps of EAP-IG (and of the first pass of ``"exact"``).
    seed : int
        Seeds torch and, through :func:`score_relation`, the choice of
        counterfactuals and the scoring / held-out split.
    batch_size : int, optional
        Pairs per forward and backward pass (memory, not results): by
        default as many as fit half the free memory by the formulas of
        :mod:`circuits.sizing`, at most 16. Scoring streams over these
        mini-batches and keeps every pair's scores on disk
        (:mod:`circuits.pipeline.pair_spool`), so its memory does not grow
        with the number of pairs.
    max_pairs : int, optional
        Keep at most this many prompt pairs (before the split).
    exact_top : int
        Edges re-scored by ``"exact"``; 0 or less re-scores every edge.
    heldout_fraction : float
        Share of the pairs kept out of scoring for evaluation, in ``[0, 1)``.
    max_rank, min_prob
        The known-fact filter of :func:`~circuits.relations.make_pairs`
        (``max_rank=10**9`` keeps every fact, e.g. for a tiny random model).
    pair_edges : int
        How many of the strongest edges keep every scoring pair's own score
        (:class:`~circuits.graph.PairScores`), for bootstrap intervals and
        noise ceilings (of units, in a position-aware graph).
    templates : {"best", "first", "all"} or int
        Which of the relation's templates make the prompts (see
        :func:`~circuits.relations.make_pairs`): by default the one under
        which the model knows the most facts.
    shots : int, optional
        Demonstrations from the relation's own facts before every prompt
        (default: 1 for a template without one of its own, else 0).
    shared_prefix : bool
        Run the tokens both prompts of a pair begin with once and every later
        pass on the rest only (:mod:`circuits.attribution.prefix`). Exact
        with counterfactual ablation, where it is used; mean and zero
        ablation change the prefix too and always run full prompts. The
        choice is recorded in the graph's metadata (``shared_prefix``); it
        changes no score, so it is not part of :meth:`stored_as`.
    positions : {"summed", "roles"}
        ``"roles"`` also splits every edge's score by the role of the
        positions it is summed over (first, demo, subject, relation, last), so
        circuits can keep an edge at some roles only
        (:attr:`~circuits.graph.ScoredGraph.role_scores`).

    Examples
    --------
    >>> from circuits import ScoreSettings
    >>> settings = ScoreSettings(score_method="eap", metric="logprob", max_rank=10**9)
    >>> settings.score_method.value, settings.metric.value, settings.steps
    ('eap', 'logprob', 1)
    >>> ScoreSettings(ig_steps=2).steps
    2
    >>> ScoreSettings(ablation="noise")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown ablation 'noise'; valid: counterfactual, mean, zero
    """

    score_method: ScoreMethod = ScoreMethod.EAP_IG
    metric: Metric = Metric.LOGIT_DIFF
    ablation: Ablation = Ablation.COUNTERFACTUAL
    ig_steps: int = 5
    seed: int = 0
    batch_size: int | None = None
    max_pairs: int | None = None
    exact_top: int = 500
    heldout_fraction: float = 0.4
    max_rank: int = 1
    min_prob: float = 0.0
    pair_edges: int = PAIR_EDGES
    positions: str = SUMMED
    templates: str | int = "best"
    shots: int | None = None
    shared_prefix: bool = True

    def __post_init__(self) -> None:
        check_positions(self.positions)
        object.__setattr__(self, "templates", parse_templates(self.templates))
        if self.shots is not None and self.shots < 0:
            raise InputError(f"shots must be 0 or more, not {self.shots}")
        for name, enum in (("score_method", ScoreMethod), ("metric", Metric), ("ablation", Ablation)):
            object.__setattr__(self, name, choice(enum, getattr(self, name), name.replace("_", " ")))
        if self.ig_steps < 1 or (self.batch_size is not None and self.batch_size < 1) or self.pair_edges < 1:
            raise InputError("ig_steps, batch_size and pair_edges must be at least 1")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise InputError(
                f"max_pairs must be at least 2 (one pair to score, one held out), not {self.max_pairs}"
            )

    @property
    def steps(self) -> int:
        """Gradient steps actually taken: 1 for EAP, ``ig_steps`` otherwise."""
        return 1 if self.score_method is ScoreMethod.EAP else self.ig_steps

    def stored_as(self) -> dict[str, Any]:
        """The metadata a stored graph must carry to be reused for these settings.

        Which relation it was scored on is checked by content, not by the file's
        path (:meth:`~circuits.store.Gallery.find_scored` with ``facts``).
        """
        return {
            "score_method": self.score_method.value,
            "metric": self.metric.value,
            "ablation": self.ablation.value,
            "ig_steps": self.steps,
            "seed": self.seed,
            "max_pairs": self.max_pairs,
            "heldout_fraction": self.heldout_fraction,
            "known_filter": self.known_filter,
            "prompt_request": self.prompt_request,
            "pair_edges": self.pair_edges,
            "positions": self.positions,
        }

    @property
    def prompt_request(self) -> dict[str, Any]:
        """The templates and shots asked for, as recorded in a scored graph's metadata."""
        return {"templates": self.templates, "shots": self.shots}

    @property
    def known_filter(self) -> dict[str, Any]:
        """Which facts count as known, as recorded in a scored graph's metadata."""
        return {
            "max_rank": self.max_rank,
            "min_prob": self.min_prob,
            "heldout_fraction": self.heldout_fraction,
        }


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
    import circuits

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
        "package_version": circuits.__version__,
        "d_model": int(model.cfg.d_model),
        "pair_edges": settings.pair_edges,
        "positions": settings.positions,
        "batch_size": batch_size,
        "shared_prefix": prefix_record(whole, settings.ablation, settings.shared_prefix),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return graph


def _graph_of(shape: Any, means: np.ndarray, by_role: bool) -> ScoredGraph:
    """The graph of the pairs' mean scores (``[S, R]``, or ``[n_roles, S, R]``, which also gives role scores)."""
    if not by_role:
        return ScoredGraph(shape, means.astype(np.float32))
    return ScoredGraph(shape, means.sum(0).astype(np.float32), role_scores=means.astype(np.float32))


def strongest_pair_scores(graph: ScoredGraph, spool: PairSpool, k: int) -> PairScores:
    """The per-pair scores (spooled ``[n_pairs, S, R]``, or by role) of the ``k`` units of largest ``|score|``."""
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
