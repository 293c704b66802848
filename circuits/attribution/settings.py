"""How a relation is scored: :class:`ScoreSettings`, recorded in every scored graph's metadata."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from circuits.graph import (
    PAIR_EDGES,
    SUMMED,
    check_positions,
)
from circuits.relations.prompts import parse_templates
from circuits.vocab import Ablation, InputError, Metric, ScoreMethod, choice

__all__ = ["ScoreSettings"]

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
        (:mod:`circuits.attribution.spool`), so its memory does not grow
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
