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
from circuits.vocab import InputError

__all__ = ["CrossTask", "cross_task_faithfulness", "cross_task_matrix"]


@dataclass(frozen=True)
class CrossTask:
    """Circuit of ``source`` evaluated on ``target``'s prompts, against ``target``'s own."""

    source: str
    target: str
    n_edges: int
    transferred: float
    own: float

    @property
    def ratio(self) -> float:
        """``transferred / own`` (``nan`` when ``own`` is 0)."""
        return self.transferred / self.own if self.own else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "n_edges": self.n_edges,
                "transferred": self.transferred, "own": self.own, "ratio": self.ratio}  # fmt: skip


def cross_task_faithfulness(
    circuit: Circuit,
    graph_b: ScoredGraph,
    evaluate_b: Any,
    *,
    by: str | None = None,
    own: Circuit | None = None,
) -> CrossTask:
    """Faithfulness of ``circuit`` on relation B, and of B's own circuit of the same size.

    ``evaluate_b`` is B's Evaluator (or a mask -> faithfulness function). B's
    own circuit is ``pruned_top_n(graph_b, circuit.n_edges, by=by)`` (``by``
    defaults to the circuit's own selection) unless ``own`` is given.
    """
    if circuit.shape != graph_b.shape:
        raise InputError(f"circuit of {circuit.model!r} and graph of {graph_b.metadata.get('model')!r} "
                         "have different shapes")  # fmt: skip
    run = as_evaluate(evaluate_b)
    if own is None:
        own = pruned_top_n(graph_b, circuit.n_edges, by=by or circuit.params.get("by", "signed"))
    return CrossTask(circuit.label(), str(graph_b.metadata.get("relation", "B")), circuit.n_edges,
                     run(circuit.to_mask()), run(own.to_mask()))  # fmt: skip


def cross_task_matrix(
    circuits: Mapping[str, Circuit],
    graphs: Mapping[str, ScoredGraph],
    evaluators: Mapping[str, Any],
    *,
    by: str | None = None,
    progress: Any = None,
) -> tuple[ReuseMatrix, list[CrossTask]]:
    """Cross-task faithfulness for every ordered pair; the matrix holds ``transferred / own``.

    Row ``i``, column ``j``: circuit of relation ``i`` on the prompts of relation ``j``. The
    own circuit is relation ``j``'s circuit when it has as many edges, else
    :func:`~circuits.extract.pruned_top_n` of its graph.
    """
    names = list(circuits)
    values = np.full((len(names), len(names)), np.nan)
    results = []
    for j, target in enumerate(names):
        run = as_evaluate(evaluators[target])
        own_cache: dict[int, float] = {}
        for i, source in enumerate(names):
            c = circuits[source]
            if circuits[target].n_edges == c.n_edges:
                own_cache[c.n_edges] = run(circuits[target].to_mask())
            elif c.n_edges not in own_cache:
                mine = pruned_top_n(graphs[target], c.n_edges, by=by or c.params.get("by", "signed"))
                own_cache[c.n_edges] = run(mine.to_mask())
            result = CrossTask(source, target, c.n_edges, run(c.to_mask()), own_cache[c.n_edges])
            results.append(result)
            values[i, j] = result.ratio
            if progress is not None:
                progress.update(1)
    return ReuseMatrix(names, values, "cross_task_ratio", symmetric=False), results
