"""Circuit evaluation: one forward per circuit, faithfulness curves, CPR, CMD, Hit@k, held-out pairs.

A circuit is a boolean ``[senders, receivers]`` mask of kept edges. Its forward
gives every receiver ``v`` the input

    in_v + Σ_{u→v not kept} (a_u(ablated) − a_u(current)),

where ``a_u(current)`` is the sender's output in this same patched forward, so
the effect of removed edges propagates through kept ones. Keeping every edge is
the clean run; keeping none is the ablated (corrupted) run.

Normalized faithfulness ``F(C) = (m(C) − m(∅)) / (m(M) − m(∅))``. The MIB
metrics over edge fractions ``k``: CPR is the area under ``F(k)`` for circuits
chosen by signed score (most negative first, see :mod:`circuits.graph`); CMD is
the area under ``|1 − F(k)|`` for circuits chosen by ``|score|``; both by
trapezoids on the fraction axis.

Every figure has a 95% percentile-bootstrap interval over the evaluation's
pairs, without re-running the model: each run keeps its per-pair metric values
and Hit@k hits, the resamples are one ``[n_boot, n_pairs]`` matrix of counts
(:func:`circuits.uncertainty.resample_counts`), and every resample's mean is a
matrix product. A ratio or an area of means is bootstrapped from the means of
the same resample: ``F_b(C) = (m_b(C) − m_b(∅)) / (m_b(M) − m_b(∅))``, and the
CPR and CMD of resample ``b`` are the areas under its curve ``F_b(k)``.
"""

from circuits.evaluate.curves import (
    Evaluation,
    EvaluationIntervals,
    area,
    bootstrap_evaluation,
    evaluate_graph,
    faithfulness_interval,
)
from circuits.evaluate.forward import FRACTIONS, CircuitRun, Evaluator
from circuits.evaluate.heldout import evaluate_scored, heldout_evaluator

__all__ = [
    "FRACTIONS",
    "CircuitRun",
    "Evaluation",
    "EvaluationIntervals",
    "Evaluator",
    "area",
    "bootstrap_evaluation",
    "evaluate_graph",
    "evaluate_scored",
    "faithfulness_interval",
    "heldout_evaluator",
]
