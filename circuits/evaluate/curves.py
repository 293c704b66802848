"""Faithfulness curves over edge fractions, CPR, CMD and Hit@k, with their bootstrap intervals.

Normalized faithfulness ``F(C) = (m(C) − m(∅)) / (m(M) − m(∅))``. The MIB
metrics over edge fractions ``k``: CPR is the area under ``F(k)`` for circuits
chosen by signed score (most negative first, see :mod:`circuits.graph`); CMD is
the area under ``|1 − F(k)|`` for circuits chosen by ``|score|``; both by
trapezoids on the fraction axis. The intervals come from the runs' per-pair
values (see :mod:`circuits.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from circuits.evaluate.forward import FRACTIONS, CircuitRun, Evaluator
from circuits.graph import SUMMED, ScoredGraph
from circuits.uncertainty import DEFAULT_BOOT, Interval, percentile_interval
from circuits.vocab import InputError

__all__ = [
    "Evaluation",
    "EvaluationIntervals",
    "area",
    "bootstrap_evaluation",
    "evaluate_graph",
    "faithfulness_interval",
]


@dataclass
class EvaluationIntervals:
    """95% percentile-bootstrap intervals over the pairs of every figure of an :class:`Evaluation`.

    The curves have one :class:`~circuits.uncertainty.Interval` per edge
    fraction; all figures come from the same ``n_boot`` resamples (drawn with
    ``seed``), so a CPR's interval is that of the areas under the resampled
    curves.
    """

    signed: list[Interval]
    absolute: list[Interval]
    random: list[Interval]
    hit_at_10: list[Interval]
    cpr: Interval
    cmd: Interval
    random_cpr: Interval
    clean_metric: Interval
    corrupt_metric: Interval
    n_boot: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every interval as ``{"value", "low", "high"}`` (nan as None), curves as lists."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, Interval):
                out[name] = value.as_dict()
            elif isinstance(value, list):
                out[name] = [iv.as_dict() for iv in value]
            else:
                out[name] = value
        return out


@dataclass
class Evaluation:
    """A scored graph's faithfulness on a set of pairs.

    The scalar fields are the full-sample figures; ``intervals`` holds their
    95% bootstrap intervals over the pairs (None when evaluated with
    ``n_boot=0``). :meth:`as_dict` gives both, the intervals as
    ``{"value", "low", "high"}`` objects under ``"intervals"``.
    """

    clean_metric: float
    corrupt_metric: float
    fractions: list[float]
    signed: list[float]
    absolute: list[float]
    random: list[float]
    hit_at_10: list[float]
    cpr: float
    cmd: float
    random_cpr: float
    n_pairs: int
    n_edges: int
    extra: dict[str, Any] = field(default_factory=dict)
    intervals: EvaluationIntervals | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["intervals"] = None if self.intervals is None else self.intervals.as_dict()
        return out


def area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over the fraction axis."""
    return float(np.trapezoid(np.asarray(values, dtype=float), np.asarray(fractions, dtype=float)))


def faithfulness_interval(
    evaluator: Evaluator, mask: Tensor | np.ndarray, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> Interval:
    """Run the circuit ``mask`` once and give its faithfulness with a 95% bootstrap interval over the pairs.

    One forward (:meth:`Evaluator.run_mask`); the interval comes from the
    run's per-pair values (:meth:`Evaluator.faithfulness_interval`). With
    ``n_boot=0`` the bounds are nan.

    >>> from circuits import ScoreSettings, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> evaluator = heldout_evaluator(model, graph, pairs)
    >>> iv = faithfulness_interval(evaluator, graph.top_mask(20), n_boot=100, seed=1)
    >>> iv.value == evaluator.run_mask(graph.top_mask(20)).faithfulness, iv.low <= iv.high
    (True, True)
    >>> str(faithfulness_interval(evaluator, graph.mask, n_boot=100))
    '1.00 [1.00, 1.00]'
    """
    return evaluator.faithfulness_interval(evaluator.run_mask(mask), n_boot=n_boot, seed=seed)


def bootstrap_evaluation(
    evaluator: Evaluator,
    fractions: Sequence[float],
    signed: Sequence[CircuitRun],
    absolute: Sequence[CircuitRun],
    random: Sequence[CircuitRun],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> EvaluationIntervals:
    """The intervals of :func:`evaluate_graph` from its runs (one per fraction and curve), without forwards.

    One ``[n_boot, n_pairs]`` weight matrix resamples every figure: each
    curve's resampled faithfulness is ``[n_boot, n_fractions]``, and its
    rows' trapezoid areas are the resampled CPR (signed, random) and CMD
    (``|1 − F|`` of the ``|score|`` curve). The point values are the
    full-sample figures.
    """
    weights = evaluator.resample_weights(n_boot, seed)
    x = np.asarray(fractions, dtype=float)
    curves = {
        name: evaluator.boot_faithfulness(runs, weights)
        for name, runs in (("signed", signed), ("absolute", absolute), ("random", random))
    }
    hits = evaluator.boot_hits(absolute, weights)

    def points(runs: Sequence[CircuitRun]) -> list[float]:
        return [evaluator.normalize(run.metric) for run in runs]

    def each(values: Sequence[float], boot: np.ndarray) -> list[Interval]:
        return [percentile_interval(v, boot[:, i]) for i, v in enumerate(values)]

    full, empty = evaluator.full, evaluator.empty
    return EvaluationIntervals(
        signed=each(points(signed), curves["signed"]),
        absolute=each(points(absolute), curves["absolute"]),
        random=each(points(random), curves["random"]),
        hit_at_10=each([run.hit_at_k for run in absolute], hits),
        cpr=percentile_interval(area(x, points(signed)), np.trapezoid(curves["signed"], x, axis=1)),
        cmd=percentile_interval(
            area(x, [abs(1 - f) for f in points(absolute)]),
            np.trapezoid(np.abs(1 - curves["absolute"]), x, axis=1),
        ),
        random_cpr=percentile_interval(area(x, points(random)), np.trapezoid(curves["random"], x, axis=1)),
        clean_metric=percentile_interval(full.metric, weights @ full.values),
        corrupt_metric=percentile_interval(empty.metric, weights @ empty.values),
        n_boot=n_boot,
        seed=seed,
    )


def evaluate_graph(
    evaluator: Evaluator,
    graph: ScoredGraph,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    progress: Any = None,
    n_boot: int = DEFAULT_BOOT,
    positions: str = SUMMED,
) -> Evaluation:
    """Faithfulness curves (signed, absolute, random), CPR, CMD and Hit@10 of ``graph``.

    At each edge fraction ``k`` the top ``max(1, round(k * n_edges))`` edges
    are evaluated three ways: chosen by signed score (most negative first:
    the edges a logit-difference circuit relies on), by ``|score|``, and at
    random (seeded). CPR is the area under the signed curve, CMD the area under
    ``|1 − F|`` of the ``|score|`` curve, both by trapezoids on the fraction
    axis; a faithful graph has high CPR and low CMD. Every figure gets a 95%
    percentile-bootstrap interval over the pairs (:func:`bootstrap_evaluation`:
    the runs' per-pair values are resampled, the model is not re-run).

    Parameters
    ----------
    evaluator : Evaluator
        Runs circuits on a set of pairs (:func:`circuits.heldout_evaluator`).
    graph : ScoredGraph
        The edge scores to rank by.
    fractions : sequence of float
        Edge fractions in ``(0, 1]``; default :data:`FRACTIONS`.
    seed : int
        Seed of the random circuits and of the bootstrap resamples.
    progress : optional
        Anything with ``update(1)``, called once per fraction.
    n_boot : int
        Bootstrap resamples over the pairs (default
        :data:`~circuits.uncertainty.DEFAULT_BOOT`); 0 gives no intervals.
    positions : {"summed", "roles"}
        ``"roles"`` ranks the (edge, role) units of a position-aware graph
        instead of its edges: fractions and ``n_edges`` then count units.

    Returns
    -------
    Evaluation
        ``clean_metric`` and ``corrupt_metric`` (every edge / none kept), the
        ``signed``, ``absolute`` and ``random`` faithfulness curves,
        ``hit_at_10`` (of the ``|score|`` circuits), ``cpr``, ``cmd``,
        ``random_cpr``, ``n_pairs`` and ``n_edges``; ``intervals``
        (:class:`EvaluationIntervals`, None with ``n_boot=0``) has their 95%
        bootstrap intervals.

    Examples
    --------
    >>> from circuits import ScoreSettings, evaluate_graph, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> result = evaluate_graph(heldout_evaluator(model, graph, pairs), graph, fractions=(0.1, 0.5, 1.0))
    >>> result.n_pairs, result.n_edges, len(result.signed), round(result.absolute[-1], 6)
    (3, 190, 3, 1.0)
    >>> str(result.intervals.absolute[-1]), result.intervals.n_boot
    ('1.00 [1.00, 1.00]', 200)
    >>> result.as_dict()["intervals"]["cpr"].keys()
    dict_keys(['value', 'low', 'high'])
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InputError(f"the number of bootstrap resamples must be a non-negative integer, not {n_boot!r}")
    total = graph.n_units(positions)
    rng = np.random.default_rng(seed)
    unit_mask = graph.unit_mask(positions)
    real = np.nonzero(unit_mask.ravel())[0]
    signed, absolute, random_curve, hits = [], [], [], []
    runs: tuple[list[CircuitRun], list[CircuitRun], list[CircuitRun]] = ([], [], [])
    for fraction in fractions:
        n = max(1, round(fraction * total))
        run_signed = evaluator.run_mask(graph.top_mask(n, by="signed", positions=positions))
        run_abs = evaluator.run_mask(graph.top_mask(n, by="abs", positions=positions))
        chosen = np.zeros(unit_mask.size, dtype=bool)
        chosen[rng.choice(real, size=n, replace=False)] = True
        run_random = evaluator.run_mask(chosen.reshape(unit_mask.shape))
        for kept, run in zip(runs, (run_signed, run_abs, run_random), strict=True):
            kept.append(run)
        signed.append(run_signed.faithfulness)
        absolute.append(run_abs.faithfulness)
        random_curve.append(run_random.faithfulness)
        hits.append(run_abs.hit_at_k)
        if progress is not None:
            progress.update(1)
    cmd = area(fractions, [abs(1 - f) for f in absolute])
    intervals = (
        bootstrap_evaluation(evaluator, fractions, *runs, n_boot=int(n_boot), seed=seed) if n_boot else None
    )
    return Evaluation(
        clean_metric=evaluator.full.metric,
        corrupt_metric=evaluator.empty.metric,
        fractions=list(fractions),
        signed=signed,
        absolute=absolute,
        random=random_curve,
        hit_at_10=hits,
        cpr=area(fractions, signed),
        cmd=cmd,
        random_cpr=area(fractions, random_curve),
        n_pairs=len(evaluator.batch),
        n_edges=total,
        intervals=intervals,
    )
