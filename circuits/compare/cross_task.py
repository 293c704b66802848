"""Cross-task faithfulness: the circuit of relation A on relation B's prompts, against B's own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.compare.families import ReuseMatrix
from circuits.extract import as_evaluate, pruned_top_n
from circuits.graph import ScoredGraph
from circuits.records.base import interval
from circuits.uncertainty import Interval, percentile_interval
from circuits.vocab import InputError

__all__ = ["CrossTask", "cross_task_faithfulness", "cross_task_matrix"]


@dataclass(frozen=True)
class CrossTask:
    """Circuit of ``source`` evaluated on ``target``'s prompts, against ``target``'s own.

    With an :class:`~circuits.evaluate.Evaluator` (and ``n_boot`` > 0) the
    faithfulness values and their ratio carry 95% bootstrap intervals over the
    target's pairs, all three from the same resamples.
    """

    source: str
    target: str
    n_edges: int
    transferred: float
    own: float
    intervals: dict[str, Interval] | None = None

    @property
    def ratio(self) -> float:
        """``transferred / own`` (``nan`` when ``own`` is 0)."""
        return self.transferred / self.own if self.own else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out = {
            "source": self.source,
            "target": self.target,
            "n_edges": self.n_edges,
            "transferred": self.transferred,
            "own": self.own,
            "ratio": self.ratio,
        }
        if self.intervals is not None:
            out["intervals"] = {k: iv.as_dict() for k, iv in self.intervals.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CrossTask:
        """A result from :meth:`as_dict`'s form (a stored reuse report); the ratio is derived again."""
        intervals = data.get("intervals")
        return cls(
            str(data["source"]),
            str(data["target"]),
            int(data["n_edges"]),
            float(data["transferred"]),
            float(data["own"]),
            None if intervals is None else {str(k): interval(v) for k, v in intervals.items()},
        )


def _measure(
    evaluator: Any, transferred: np.ndarray, own: np.ndarray, n_boot: int, seed: int, cache: dict[Any, Any]
) -> tuple[float, float, dict[str, Interval] | None]:
    """Faithfulness of two masks on one evaluator and, when it keeps per-pair values, their intervals."""
    if not hasattr(evaluator, "run_mask") or n_boot == 0:
        run = as_evaluate(evaluator)
        return run(transferred), run(own), None
    key = own.tobytes()
    if key not in cache:
        cache[key] = evaluator.run_mask(own)
    runs = [evaluator.run_mask(transferred), cache[key]]
    boot = evaluator.boot_faithfulness(runs, evaluator.resample_weights(n_boot, seed))
    values = [r.faithfulness for r in runs]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = boot[:, 0] / boot[:, 1]
    ratio = values[0] / values[1] if values[1] else float("nan")
    intervals = {
        "transferred": percentile_interval(values[0], boot[:, 0]),
        "own": percentile_interval(values[1], boot[:, 1]),
        "ratio": percentile_interval(ratio, ratios),
    }
    return values[0], values[1], intervals


def cross_task_faithfulness(
    circuit: Circuit,
    graph_b: ScoredGraph,
    evaluate_b: Any,
    *,
    by: str | None = None,
    own: Circuit | None = None,
    n_boot: int = 0,
    seed: int = 0,
) -> CrossTask:
    """Faithfulness of ``circuit`` on relation B, and of B's own circuit of the same size.

    ``evaluate_b`` is B's Evaluator (or a mask -> faithfulness function). B's
    own circuit is ``pruned_top_n(graph_b, circuit.n_edges, by=by)`` (``by``
    defaults to the circuit's own selection) unless ``own`` is given; for a
    position-aware circuit, B's own has as many (edge, role) units.
    """
    if circuit.shape != graph_b.shape:
        raise InputError(
            f"circuit of {circuit.model!r} and graph of {graph_b.metadata.get('model')!r} "
            "have different shapes"
        )
    if own is None:
        own = pruned_top_n(
            graph_b, circuit.n_units, by=by or circuit.params.get("by", "signed"), positions=circuit.positions
        )
    transferred, mine, intervals = _measure(
        evaluate_b, circuit.to_unit_mask(), own.to_unit_mask(), n_boot, seed, {}
    )
    return CrossTask(
        circuit.label(),
        str(graph_b.metadata.get("relation", "B")),
        circuit.n_units,
        transferred,
        mine,
        intervals,
    )


def cross_task_matrix(
    circuits: Mapping[str, Circuit],
    graphs: Mapping[str, ScoredGraph],
    evaluators: Mapping[str, Any],
    *,
    by: str | None = None,
    progress: Any = None,
    n_boot: int = 0,
    seed: int = 0,
) -> tuple[ReuseMatrix, list[CrossTask]]:
    """Cross-task faithfulness for every ordered pair; the matrix holds ``transferred / own``.

    Row ``i``, column ``j``: circuit of relation ``i`` on the prompts of relation ``j``. The
    own circuit is relation ``j``'s circuit when it has as many edges, else
    :func:`~circuits.extract.pruned_top_n` of its graph. With Evaluators and
    ``n_boot`` > 0 every result carries intervals (:class:`CrossTask`).
    """
    names = list(circuits)
    values = np.full((len(names), len(names)), np.nan)
    results = []
    for j, target in enumerate(names):
        own_masks: dict[tuple[int, str], np.ndarray] = {}
        runs: dict[Any, Any] = {}
        for i, source in enumerate(names):
            c = circuits[source]
            size = (c.n_units, c.positions)
            if size not in own_masks:
                if (circuits[target].n_units, circuits[target].positions) == size:
                    own_masks[size] = circuits[target].to_unit_mask()
                else:
                    mine = pruned_top_n(
                        graphs[target],
                        c.n_units,
                        by=by or c.params.get("by", "signed"),
                        positions=c.positions,
                    )
                    own_masks[size] = mine.to_unit_mask()
            transferred, own, intervals = _measure(
                evaluators[target], c.to_unit_mask(), own_masks[size], n_boot, seed, runs
            )
            result = CrossTask(source, target, c.n_units, transferred, own, intervals)
            results.append(result)
            values[i, j] = result.ratio
            if progress is not None:
                progress.update(1)
    return ReuseMatrix(names, values, "cross_task_ratio", symmetric=False), results
