"""Similarities of two circuits (sets of edges, nodes, heads) and of two scored graphs.

Set similarities of two circuits ``A`` and ``B`` (each in ``[0, 1]``, symmetric,
1 for a circuit against itself; two empty circuits count as identical):

- :func:`edge_jaccard`, :func:`node_jaccard`: ``|A ∩ B| / |A ∪ B|``;
- :func:`overlap_coefficient`: ``|A ∩ B| / min(|A|, |B|)`` (1 when one contains the other);
- :func:`weighted_jaccard`: ``Σ min(|a_e|, |b_e|) / Σ max(|a_e|, |b_e|)`` over
  the union of edges, an absent edge weighing 0;
- :func:`head_share`: Jaccard of the in-circuit heads (:meth:`Circuit.heads`).

:func:`rank_correlation` compares two *scored graphs* over every edge
(Spearman, in ``[-1, 1]``).

Two position-aware circuits are compared unit by unit: their "edges" are
their (edge, role) units, so the same edge kept at different roles counts as
different. A position-aware circuit against a summed one compares the edges
the first keeps at any role.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.vocab import InputError

__all__ = [
    "METRICS",
    "TOP_EDGES",
    "compare",
    "edge_jaccard",
    "head_share",
    "jaccard",
    "node_jaccard",
    "overlap_coefficient",
    "rank_correlation",
    "rank_correlation_scores",
    "spearman",
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


def _weights(a: Circuit, b: Circuit) -> tuple[dict[Any, float], dict[Any, float]]:
    """Each circuit's ``{edge or unit: score}``: units when both are position-aware, else edges."""
    if a.roles is not None and b.roles is not None:
        return a.unit_scores(), b.unit_scores()
    return a.edges, b.edges


def edge_jaccard(a: Circuit, b: Circuit) -> float:
    """Jaccard similarity of the two edge sets (unit sets of two position-aware circuits).

    >>> from circuits.graph import GraphShape
    >>> s = GraphShape(1, 1, 1)
    >>> a = Circuit(s, {("input", "logits"): 0.0}, roles={("input", "logits"): {"last": -1.0}})
    >>> b = Circuit(
    ...     s, {("input", "logits"): 0.0}, roles={("input", "logits"): {"last": -1.0, "subject": -0.5}}
    ... )
    >>> edge_jaccard(a, b)
    0.5
    """
    x, y = _weights(a, b)
    return jaccard(set(x), set(y))


def node_jaccard(a: Circuit, b: Circuit) -> float:
    """Jaccard similarity of the two node sets (:meth:`Circuit.nodes`)."""
    return jaccard(a.nodes(), b.nodes())


def overlap_coefficient(a: Circuit, b: Circuit, *, level: str = "edge") -> float:
    """``|A ∩ B| / min(|A|, |B|)`` of edges (``level="edge"``) or nodes (``"node"``)."""
    if level == "edge":
        x, y = _weights(a, b)
        return _overlap(set(x), set(y))
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
    x, y = _weights(a, b)
    union = set(x) | set(y)
    low = sum(min(abs(x.get(e, 0.0)), abs(y.get(e, 0.0))) for e in union)
    high = sum(max(abs(x.get(e, 0.0)), abs(y.get(e, 0.0))) for e in union)
    return low / high if high > 0 else edge_jaccard(a, b)


def head_share(a: Circuit, b: Circuit) -> float:
    """Share of in-circuit heads common to both: ``|H_A ∩ H_B| / |H_A ∪ H_B|``."""
    return jaccard(set(a.heads()), set(b.heads()))


TOP_EDGES = 1000
"""Rank correlations between graphs use the union of each graph's this many strongest edges."""

METRICS: dict[str, Callable[[Circuit, Circuit], float]] = {
    "edge_jaccard": edge_jaccard,
    "node_jaccard": node_jaccard,
    "edge_overlap": overlap_coefficient,
    "node_overlap": lambda a, b: overlap_coefficient(a, b, level="node"),
    "weighted_jaccard": weighted_jaccard,
    "head_share": head_share,
}


def rank_correlation(
    a: ScoredGraph, b: ScoredGraph, *, by: str = "signed", top: int | None = TOP_EDGES
) -> float:
    """Spearman correlation of two graphs' scores over the union of their ``top`` strongest edges.

    Most of a graph's tens of thousands of edges carry noise, which would
    dominate a correlation over all of them; ``top`` (default
    :data:`TOP_EDGES`) restricts it to the edges either graph ranks among its
    best ``top`` (by ``by``: most negative first, or ``|score|``), and
    ``top=None`` takes every edge. ``by="abs"`` correlates ``|score|``. 1 for
    identical scores; ``nan`` when one side is constant and the other is not.
    """
    if a.shape != b.shape:
        raise InputError(f"cannot correlate graphs of different shapes: {a.shape} and {b.shape}")
    return rank_correlation_scores(a.scores, b.scores, a.mask, by=by, top=top)


def rank_correlation_scores(
    x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, by: str = "signed", top: int | None = TOP_EDGES
) -> float:
    """:func:`rank_correlation` of two dense score matrices of one graph shape (``mask``: its edges).

    >>> mask = np.ones((1, 4), dtype=bool)
    >>> x, y = np.array([[-4.0, -3.0, 0.1, 0.2]]), np.array([[-5.0, -1.0, 0.3, 0.0]])
    >>> rank_correlation_scores(x, y, mask, top=1)  # edges 0 and 0: one edge, the union of both tops
    nan
    >>> round(rank_correlation_scores(x, y, mask, top=2), 6)
    1.0
    >>> round(rank_correlation_scores(x, y, mask, top=None), 6)
    0.8
    """
    if by not in ("signed", "abs"):
        raise InputError(f"rank by 'signed' or 'abs', not {by!r}")
    idx = np.flatnonzero(np.asarray(mask).ravel())
    xs, ys = np.asarray(x, dtype=np.float64).ravel()[idx], np.asarray(y, dtype=np.float64).ravel()[idx]
    if by == "abs":
        xs, ys = np.abs(xs), np.abs(ys)
    if top is not None and top < idx.size:
        kx, ky = (xs, ys) if by == "abs" else (-xs, -ys)
        keep = np.union1d(np.argpartition(-kx, top - 1)[:top], np.argpartition(-ky, top - 1)[:top])
        xs, ys = xs[keep], ys[keep]
    return spearman(xs, ys)


def spearman(xs: np.ndarray, ys: np.ndarray) -> float:
    """Spearman's rank correlation of two samples: 1 when equal, NaN when one side is constant or too short.

    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
    0.5
    """
    from scipy.stats import rankdata

    if np.array_equal(xs, ys):
        return 1.0 if xs.size > 1 else float("nan")
    if xs.size < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return float("nan")
    # Pearson's correlation of the (tie-averaged) ranks: Spearman's, without spearmanr's overhead
    rx, ry = rankdata(xs) - (xs.size + 1) / 2, rankdata(ys) - (ys.size + 1) / 2
    return float(np.clip(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)), -1.0, 1.0))


def compare(a: Circuit, b: Circuit) -> dict[str, Any]:
    """Every similarity of two circuits, their sizes and their common heads.

    Parameters
    ----------
    a, b : Circuit
        Two circuits of the same model (e.g. of two relations); edges and
        nodes are compared by name.

    Returns
    -------
    dict
        ``a`` and ``b`` (the circuits' labels); ``edges_a``, ``edges_b``,
        ``nodes_a``, ``nodes_b`` and ``common_edges`` (counts); every
        similarity of :data:`METRICS`, each in ``[0, 1]`` and 1 for a circuit
        against itself (``edge_jaccard``, ``node_jaccard``, ``edge_overlap``,
        ``node_overlap``, ``weighted_jaccard`` of ``|score|``,
        ``head_share``; on units when both circuits are position-aware, which
        also adds ``units_a``, ``units_b`` and ``common_units``);
        ``common_heads`` (in ``a``'s forward order) and ``heads_of_a_in_b`` /
        ``heads_of_b_in_a``, the share of one circuit's heads that the other
        keeps.

    Examples
    --------
    >>> from circuits import Circuit, GraphShape
    >>> shape = GraphShape(1, 1, 1)
    >>> a = Circuit(shape, {("input", "logits"): -2.0, ("a0.h0", "logits"): -1.0}, name="a")
    >>> b = Circuit(shape, {("input", "logits"): -1.0, ("m0", "logits"): -0.5}, name="b")
    >>> result = compare(a, b)
    >>> result["common_edges"], result["edge_jaccard"], result["node_jaccard"], result["head_share"]
    (1, 0.3333333333333333, 0.5, 0.0)

    Circuits of two relations on a tiny model:

    >>> from circuits import ScoreSettings, extract, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> capital = extract(score_relation(model, "country_capital_city", settings, progress=False)[0], size=30)
    >>> currency = extract(score_relation(model, "country_currency", settings, progress=False)[0], size=30)
    >>> result = compare(capital, currency)
    >>> result["a"], result["b"], 0.0 <= result["edge_jaccard"] <= 1.0
    ('country_capital_city', 'country_currency', True)
    >>> result["common_edges"] == len(set(capital.edges) & set(currency.edges))
    True
    >>> all(compare(capital, capital)[name] == 1.0 for name in METRICS)
    True
    """
    heads_a, heads_b = set(a.heads()), set(b.heads())
    out: dict[str, Any] = {
        "a": a.label(),
        "b": b.label(),
        "edges_a": a.n_edges,
        "edges_b": b.n_edges,
        "nodes_a": len(a.nodes()),
        "nodes_b": len(b.nodes()),
        "common_edges": len(set(a.edges) & set(b.edges)),
    }
    if a.roles is not None and b.roles is not None:
        out.update({"units_a": a.n_units, "units_b": b.n_units, "common_units": len(a.units() & b.units())})
    out.update({name: fn(a, b) for name, fn in METRICS.items()})
    out["common_heads"] = [h for h in a.heads() if h in heads_b]
    out["heads_of_a_in_b"] = len(heads_a & heads_b) / len(heads_a) if heads_a else 1.0
    out["heads_of_b_in_a"] = len(heads_a & heads_b) / len(heads_b) if heads_b else 1.0
    return out
