"""Comparing circuits across relations: overlap, reuse, shared core, clustering.

Set similarities of two circuits ``A`` and ``B`` (each in ``[0, 1]``, symmetric,
1 for a circuit against itself; two empty circuits count as identical):

- :func:`edge_jaccard`, :func:`node_jaccard`: ``|A ∩ B| / |A ∪ B|``;
- :func:`overlap_coefficient`: ``|A ∩ B| / min(|A|, |B|)`` (1 when one contains the other);
- :func:`weighted_jaccard`: ``Σ min(|a_e|, |b_e|) / Σ max(|a_e|, |b_e|)`` over
  the union of edges, an absent edge weighing 0;
- :func:`head_share`: Jaccard of the in-circuit heads (:meth:`Circuit.heads`).

:func:`rank_correlation` compares two *scored graphs* over every edge
(Spearman, in ``[-1, 1]``). :func:`cross_task_faithfulness` evaluates the
circuit found for relation A on relation B's prompts, against B's own circuit
with the same number of edges. :func:`shared_core` and :func:`specific_parts`
split a family of circuits into what at least ``k`` of them share and what is
each one's own; :func:`reuse_matrix` and :func:`cluster` tabulate and group them.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.extract import as_evaluate, pruned_top_n
from circuits.graph import ScoredGraph
from circuits.vocab import InputError

__all__ = [
    "METRICS",
    "Clustering",
    "CrossTask",
    "ReuseMatrix",
    "cluster",
    "compare",
    "cross_task_faithfulness",
    "cross_task_matrix",
    "edge_jaccard",
    "head_share",
    "jaccard",
    "node_jaccard",
    "overlap_coefficient",
    "rank_correlation",
    "rank_correlation_matrix",
    "reuse_matrix",
    "shared_core",
    "specific_parts",
    "weighted_jaccard",
]


def jaccard(a: set[Any] | frozenset[Any], b: set[Any] | frozenset[Any]) -> float:
    """``|a ∩ b| / |a ∪ b|``; 1 for two empty sets.

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _overlap(a: set[Any] | frozenset[Any], b: set[Any] | frozenset[Any]) -> float:
    smaller = min(len(a), len(b))
    if smaller == 0:
        return 1.0 if len(a) == len(b) else 0.0
    return len(a & b) / smaller


def edge_jaccard(a: Circuit, b: Circuit) -> float:
    """Jaccard similarity of the two edge sets."""
    return jaccard(set(a.edges), set(b.edges))


def node_jaccard(a: Circuit, b: Circuit) -> float:
    """Jaccard similarity of the two node sets (:meth:`Circuit.nodes`)."""
    return jaccard(a.nodes(), b.nodes())


def overlap_coefficient(a: Circuit, b: Circuit, *, level: str = "edge") -> float:
    """``|A ∩ B| / min(|A|, |B|)`` of edges (``level="edge"``) or nodes (``"node"``)."""
    if level == "edge":
        return _overlap(set(a.edges), set(b.edges))
    if level == "node":
        return _overlap(a.nodes(), b.nodes())
    raise InputError(f"overlap level is 'edge' or 'node', not {level!r}")


def weighted_jaccard(a: Circuit, b: Circuit) -> float:
    """Weighted Jaccard of the circuits' ``|score|`` over the union of their edges.

    >>> from circuits.graph import GraphShape
    >>> s = GraphShape(1, 1, 1)
    >>> a = Circuit(s, {("input", "logits"): -2.0, ("a0.h0", "logits"): -1.0})
    >>> b = Circuit(s, {("input", "logits"): -1.0})
    >>> weighted_jaccard(a, b)
    0.3333333333333333
    """
    union = set(a.edges) | set(b.edges)
    low = sum(min(abs(a.edges.get(e, 0.0)), abs(b.edges.get(e, 0.0))) for e in union)
    high = sum(max(abs(a.edges.get(e, 0.0)), abs(b.edges.get(e, 0.0))) for e in union)
    return low / high if high > 0 else edge_jaccard(a, b)


def head_share(a: Circuit, b: Circuit) -> float:
    """Share of in-circuit heads common to both: ``|H_A ∩ H_B| / |H_A ∪ H_B|``."""
    return jaccard(set(a.heads()), set(b.heads()))


METRICS: dict[str, Callable[[Circuit, Circuit], float]] = {
    "edge_jaccard": edge_jaccard,
    "node_jaccard": node_jaccard,
    "edge_overlap": overlap_coefficient,
    "node_overlap": lambda a, b: overlap_coefficient(a, b, level="node"),
    "weighted_jaccard": weighted_jaccard,
    "head_share": head_share,
}


def rank_correlation(a: ScoredGraph, b: ScoredGraph, *, by: str = "signed") -> float:
    """Spearman correlation of two graphs' scores over every edge (``by="abs"``: of ``|score|``).

    1 for identical scores; ``nan`` when one graph's scores are constant and the other's are not.
    """
    from scipy.stats import spearmanr

    if a.shape != b.shape:
        raise InputError(f"cannot correlate graphs of different shapes: {a.shape} and {b.shape}")
    if by not in ("signed", "abs"):
        raise InputError(f"rank by 'signed' or 'abs', not {by!r}")
    x, y = a.scores[a.mask].astype(np.float64), b.scores[b.mask].astype(np.float64)
    if by == "abs":
        x, y = np.abs(x), np.abs(y)
    if np.array_equal(x, y):
        return 1.0
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.clip(spearmanr(x, y).statistic, -1.0, 1.0))


def compare(a: Circuit, b: Circuit) -> dict[str, Any]:
    """Every similarity of two circuits, their sizes and their common heads."""
    heads_a, heads_b = set(a.heads()), set(b.heads())
    out: dict[str, Any] = {"a": a.label(), "b": b.label(), "edges_a": a.n_edges, "edges_b": b.n_edges,
                           "nodes_a": len(a.nodes()), "nodes_b": len(b.nodes()),
                           "common_edges": len(set(a.edges) & set(b.edges))}  # fmt: skip
    out.update({name: fn(a, b) for name, fn in METRICS.items()})
    out["common_heads"] = [h for h in a.heads() if h in heads_b]
    out["heads_of_a_in_b"] = len(heads_a & heads_b) / len(heads_a) if heads_a else 1.0
    out["heads_of_b_in_a"] = len(heads_a & heads_b) / len(heads_b) if heads_b else 1.0
    return out


# ----------------------------------------------------------- cross-task


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


# ----------------------------------------------------------- families


def _scores_by_edge(circuits: Sequence[Circuit]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for c in circuits:
        for e, s in c.edges.items():
            out.setdefault(e, []).append(s)
    return out


def _check_family(circuits: Sequence[Circuit]) -> None:
    if not circuits:
        raise InputError("no circuits to combine")
    if len({c.shape for c in circuits}) > 1:
        raise InputError("circuits of different graph shapes cannot be combined")


def shared_core(circuits: Sequence[Circuit], k: int | None = None, *, name: str = "shared-core") -> Circuit:
    """Edges present in at least ``k`` of the ``N`` circuits (default: all), scored by their mean.

    >>> from circuits.graph import GraphShape
    >>> s = GraphShape(1, 1, 1)
    >>> cs = [Circuit(s, {("input", "logits"): -1.0, ("a0.h0", "logits"): -1.0}),
    ...       Circuit(s, {("input", "logits"): -3.0})]
    >>> shared_core(cs).edges
    {('input', 'logits'): -2.0}
    """
    _check_family(circuits)
    k = len(circuits) if k is None else k
    if not 1 <= k <= len(circuits):
        raise InputError(f"k must lie in 1..{len(circuits)} (the number of circuits), not {k}")
    scores = _scores_by_edge(circuits)
    edges = {e: float(np.mean(v)) for e, v in scores.items() if len(v) >= k}
    node_scores: dict[str, list[float]] = {}
    for c in circuits:
        for n, v in c.node_scores.items():
            node_scores.setdefault(n, []).append(v)
    senders = {s for s, _ in edges}
    models = {c.model for c in circuits}
    provenance = {"model": models.pop() if len(models) == 1 else None,
                  "relations": [c.label() for c in circuits]}  # fmt: skip
    return Circuit(circuits[0].shape, edges,
                   {n: float(np.mean(v)) for n, v in node_scores.items() if n in senders}, provenance,
                   "shared-core", {"k": k, "n": len(circuits)}, None, name)  # fmt: skip


def specific_parts(circuits: Sequence[Circuit], k: int | None = None) -> dict[str, Circuit]:
    """Each circuit's edges that are not in the shared core of ``k`` (keyed by label)."""
    core = set(shared_core(circuits, k).edges)
    out = {}
    for c in circuits:
        own = set(c.edges) - core
        out[c.label()] = c.with_edges(own, method="specific", params={**c.params, "core_k": k},
                                      name=f"{c.label()}-specific")  # fmt: skip
    return out


def edge_counts(circuits: Sequence[Circuit]) -> Counter[tuple[str, str]]:
    """In how many circuits each edge appears."""
    return Counter(e for c in circuits for e in c.edges)


# ----------------------------------------------------------- matrices


@dataclass
class ReuseMatrix:
    """A square table of a similarity between named items (rows and columns alike)."""

    names: list[str]
    values: np.ndarray
    metric: str
    symmetric: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_csv(self) -> str:
        out = io.StringIO()
        out.write(",".join([self.metric, *self.names]) + "\n")
        for name, row in zip(self.names, self.values, strict=True):
            out.write(",".join([name, *(_fmt(v) for v in row)]) + "\n")
        return out.getvalue()

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "names": self.names, "symmetric": self.symmetric,
                "values": [[None if math.isnan(v) else float(v) for v in row] for row in self.values]}  # fmt: skip

    def pairs(self) -> list[tuple[str, str, float]]:
        """Off-diagonal pairs (each once when symmetric), most similar first."""
        rows = []
        for i, a in enumerate(self.names):
            for j, b in enumerate(self.names):
                if i != j and (not self.symmetric or i < j):
                    rows.append((a, b, float(self.values[i, j])))
        return sorted(rows, key=lambda r: -r[2] if not math.isnan(r[2]) else math.inf)


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


def reuse_matrix(
    circuits: Mapping[str, Circuit] | Sequence[Circuit],
    metric: str | Callable[[Circuit, Circuit], float] = "edge_jaccard",
) -> ReuseMatrix:
    """The similarity of every pair of circuits, by a name in :data:`METRICS` or any function."""
    if isinstance(circuits, Mapping):
        items = dict(circuits)
    else:
        items = {c.label(): c for c in circuits}
        if len(items) < len(circuits):
            raise InputError("circuits share labels; pass a mapping {name: circuit} to name them apart")
    if isinstance(metric, str):
        if metric not in METRICS:
            raise InputError(f"unknown similarity {metric!r}; valid: {', '.join(METRICS)}")
        fn, label = METRICS[metric], metric
    else:
        fn, label = metric, getattr(metric, "__name__", "custom")
    names = list(items)
    values = np.eye(len(names))
    for i, a in enumerate(names):
        values[i, i] = fn(items[a], items[a])
        for j in range(i + 1, len(names)):
            values[i, j] = values[j, i] = fn(items[a], items[names[j]])
    return ReuseMatrix(names, values, label)


def rank_correlation_matrix(graphs: Mapping[str, ScoredGraph], *, by: str = "signed") -> ReuseMatrix:
    """Spearman correlation of the full edge scores of every pair of graphs."""
    names = list(graphs)
    values = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            values[i, j] = values[j, i] = rank_correlation(graphs[a], graphs[names[j]], by=by)
    return ReuseMatrix(names, values, f"spearman_{by}")


@dataclass
class Clustering:
    """Hierarchical clustering of relations: scipy linkage, leaf order, Newick tree."""

    names: list[str]
    linkage: list[list[float]]
    order: list[str]
    newick: str
    method: str
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return {"names": self.names, "linkage": self.linkage, "order": self.order,
                "newick": self.newick, "method": self.method, "metric": self.metric}  # fmt: skip


def cluster(matrix: ReuseMatrix, *, method: str = "average") -> Clustering:
    """Cluster by distance ``1 - similarity`` (symmetrised, clipped at 0) with scipy.

    >>> m = ReuseMatrix(["a", "b", "c"], np.array([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]]), "x")
    >>> cluster(m).newick
    '(c:0.425,(a:0.05,b:0.05):0.375);'
    """
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import squareform

    names, n = list(matrix.names), len(matrix.names)
    if n < 2:
        return Clustering(names, [], names, f"({names[0]});" if names else ";", method, matrix.metric)
    sim = np.nan_to_num(np.asarray(matrix.values, dtype=float), nan=0.0)
    distance = np.clip(1.0 - (sim + sim.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    try:
        z = linkage(squareform(distance, checks=False), method=method)
    except ValueError as error:
        raise InputError(f"clustering method {method!r} failed: {error}") from None

    def newick(node: Any, parent_height: float) -> str:
        length = f":{round(parent_height - node.dist / 2, 6):g}"
        if node.is_leaf():
            return names[node.id] + length
        inner = ",".join(newick(child, node.dist / 2) for child in (node.left, node.right))
        return f"({inner}){length}"

    root = to_tree(z)
    tree = "(" + ",".join(newick(c, root.dist / 2) for c in (root.left, root.right)) + ");"
    order = [names[i] for i in root.pre_order()]
    return Clustering(names, z.tolist(), order, tree, method, matrix.metric)
