"""How much of a similarity between circuits is noise: bootstraps, split-half ceilings, permutation nulls.

A circuit is extracted from edge scores that are means over a few dozen
prompt pairs, so two circuits of the *same* relation drawn from different
prompts already differ. Three references tell reuse from that noise, all
computed from each scoring pair's own scores
(:class:`~circuits.graph.PairScores`), never by re-scoring:

- **bootstrap**: resample each relation's pairs with replacement, re-extract
  its circuit, recompute the similarity; the 95% interval is the spread of
  those replicates placed around the full-sample value
  (:func:`~circuits.uncertainty.centred_interval`: a re-extracted circuit is
  noisier than the full-sample one, so the raw replicates are biased low);
- **split-half ceiling**: split a relation's pairs into two disjoint halves at
  random, extract a circuit from each, measure their similarity; the mean
  over splits is what the relation reaches against *itself* on other prompts
  (its interval: the 2.5th and 97.5th percentiles over splits). Two relations'
  circuits compared at the same half size give the matched similarity, and
  ``relative = matched / sqrt(ceiling_a * ceiling_b)``: 1 means as similar as
  each relation is to itself (undefined when a ceiling is below
  :data:`MIN_CEILING`: the relation does not even agree with itself);
- **permutation null**: pool two relations' pairs, shuffle the relation
  labels, re-extract both circuits; the null is the similarity when both
  relations share one circuit. ``p`` is the share of shuffles at or below the
  observed similarity (small: the circuits differ by more than prompt noise).

Circuits are re-extracted as pruned top-n circuits of the size the compared
circuits have (:func:`~circuits.extract.pruned_top_n`, on masks). Only each
graph's ``K`` strongest edges carry per-pair scores; the other edges keep
their mean (pooled over both relations in a permutation), which moves no
circuit of a few hundred edges in practice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.circuit import Circuit, group_units
from circuits.extract.masks import pruned_top_mask
from circuits.graph import GraphShape, ScoredGraph, edge_mask
from circuits.relations.roles import ROLES
from circuits.uncertainty import (
    DEFAULT_BOOT,
    Interval,
    centred_interval,
    percentile_interval,
    resample_counts,
)
from circuits.vocab import InputError

__all__ = [
    "MIN_CEILING",
    "Draw",
    "PairRows",
    "Redraws",
    "Similarity",
    "bootstrap_interval",
    "ceiling",
    "null_interval",
    "on_circuits",
    "on_scores",
    "pair_rows",
    "permutation_null",
    "pooled_rows",
    "redraw_bootstrap",
    "redraw_halves",
]

MIN_CEILING = 0.1
"""Below this split-half ceiling a relation does not agree with itself: nothing is divided by it."""

Metric = Callable[["Draw", "Draw"], float]
"""A similarity of two redrawn circuits (see :func:`on_circuits` and :func:`on_scores`)."""


@dataclass
class PairRows:
    """Per-pair scores of candidate edges plus the fixed scores of every other edge.

    ``rows[i]`` are pair ``i``'s scores of the candidate edges ``edges`` (flat
    indices); ``rest`` holds the dense scores used for every non-candidate
    edge. :meth:`scores` gives the dense scores of any weighting of the pairs.
    For a position-aware graph ``rest`` is ``[n_roles, S, R]`` and the
    candidates are (edge, role) units.
    """

    shape: GraphShape
    edges: np.ndarray
    rows: np.ndarray
    rest: np.ndarray
    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        self.units = self.rest.ndim == 3
        mask = edge_mask(self.shape)
        self.mask = np.broadcast_to(mask, self.rest.shape) if self.units else mask
        self._by_index = np.argsort(self.edges)
        self._sorted = self.edges[self._by_index]

    @property
    def n_pairs(self) -> int:
        return int(self.rows.shape[0])

    def means(self, weights: np.ndarray) -> np.ndarray:
        """The candidates' scores averaged over the pairs, weighted by ``weights``: ``[K]``."""
        w = np.asarray(weights, dtype=np.float64)
        return (w @ self.rows) / w.sum()

    def scores(self, weights: np.ndarray) -> np.ndarray:
        """Dense ``[S, R]`` (or unit) scores with the candidates averaged over the pairs,
        weighted by ``weights``."""
        out = self.rest.copy().ravel()
        out[self.edges] = self.means(weights)
        return out.reshape(self.rest.shape)

    def values_at(self, means: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """The scores of the edges ``flat`` given the candidates' ``means`` (others: their fixed score)."""
        out = self.rest.ravel()[flat].copy()
        pos = np.minimum(np.searchsorted(self._sorted, flat), self._sorted.size - 1)
        hit = self._sorted[pos] == flat
        out[hit] = means[self._by_index[pos[hit]]]
        return out

    def top(self, means: np.ndarray, n: int, by: str) -> np.ndarray:
        """Flat indices of the ``n`` best candidates under ``means`` (most negative first, or ``|score|``)."""
        key = np.abs(means) if by == "abs" else -means
        n = min(n, key.size)
        return self.edges[np.argpartition(-key, n - 1)[:n]]


def _need_pairs(graph: ScoredGraph) -> Any:
    if graph.pair_scores is None:
        where = graph.metadata.get("relation", "this graph")
        raise InputError(
            f"{where}: the scored graph keeps no per-pair scores (scored before version 0.3); "
            "score it again with `circuits score` to get intervals and noise ceilings"
        )
    return graph.pair_scores


def pair_rows(graph: ScoredGraph) -> PairRows:
    """One graph's per-pair rows (:class:`PairRows`); an :class:`InputError` when it has none."""
    ps = _need_pairs(graph)
    rest = graph.unit_scores(graph.positions).astype(np.float64)
    return PairRows(graph.shape, ps.edges, ps.values.astype(np.float64), rest, graph.metadata)


def pooled_rows(a: ScoredGraph, b: ScoredGraph) -> PairRows:
    """The pairs of two graphs over the union of their candidate edges, ``a``'s first.

    A pair's score of an edge outside its own graph's candidates is its
    graph's mean score of that edge; the non-candidate edges carry the pooled
    mean of both graphs.
    """
    if a.shape != b.shape:
        raise InputError(f"graphs of different shapes cannot be pooled: {a.shape} and {b.shape}")
    if a.positions != b.positions:
        raise InputError(
            f"a graph scored by position role cannot be pooled with one summed over positions "
            f"({a.metadata.get('relation')}: {a.positions}, {b.metadata.get('relation')}: {b.positions})"
        )
    pa, pb = _need_pairs(a), _need_pairs(b)
    union = np.union1d(pa.edges, pb.edges)
    dense_a, dense_b = (g.unit_scores(g.positions).astype(np.float64) for g in (a, b))

    def rows(dense: np.ndarray, ps: Any) -> np.ndarray:
        out = np.broadcast_to(dense.ravel()[union], (ps.n_pairs, union.size)).copy()
        out[:, np.searchsorted(union, ps.edges)] = ps.values
        return out

    na, nb = pa.n_pairs, pb.n_pairs
    rest = (na * dense_a + nb * dense_b) / (na + nb)
    return PairRows(a.shape, union, np.vstack([rows(dense_a, pa), rows(dense_b, pb)]), rest, dict(a.metadata))


@dataclass(frozen=True)
class Draw:
    """One re-extracted circuit, with the pair weights and rows it came from (for its dense scores)."""

    circuit: Circuit
    weights: np.ndarray
    rows: PairRows
    means: np.ndarray

    def scores(self) -> np.ndarray:
        return self.rows.scores(self.weights)


def on_circuits(fn: Callable[[Circuit, Circuit], float]) -> Metric:
    """A circuit similarity (:data:`~circuits.compare.similarity.METRICS`) as a :data:`Metric` of draws."""
    return lambda x, y: fn(x.circuit, y.circuit)


def on_scores(by: str, top: int) -> Metric:
    """The rank correlation over the union of both draws' ``top`` strongest candidate edges,
    as a :data:`Metric`.

    The tops are taken among each graph's per-pair candidates (the ``K``
    strongest edges, far more than ``top``), which keeps a redraw's
    correlation cheap; an edge that is a candidate of one graph only takes
    the other's fixed score.
    """
    from circuits.compare.similarity import spearman

    def metric(x: Draw, y: Draw) -> float:
        union = np.union1d(x.rows.top(x.means, top, by), y.rows.top(y.means, top, by))
        xs, ys = x.rows.values_at(x.means, union), y.rows.values_at(y.means, union)
        return spearman(np.abs(xs), np.abs(ys)) if by == "abs" else spearman(xs, ys)

    return metric


class Redraws:
    """Pruned top-n circuits of ``n`` edges re-extracted from weighted pairs of one :class:`PairRows`.

    Only the head of each ranking is needed: the best ``8 n`` edges (at least
    1,024) among the candidates, whose scores change with the weights, and the
    best non-candidates, whose scores are fixed; the full ranking is sorted
    only if the search runs past that head.
    """

    def __init__(self, rows: PairRows, n: int, by: str) -> None:
        self.rows, self.n, self.by = rows, n, by
        self.start: int | None = None
        self.all = np.flatnonzero(rows.mask.ravel())
        self.head = min(self.all.size, max(8 * n, 1024))
        rest = np.setdiff1d(self.all, rows.edges, assume_unique=True)
        rest_key = self._key(rows.rest.ravel()[rest])
        top = np.argsort(-rest_key, kind="stable")[: self.head]
        self.rest_idx, self.rest_key = rest[top], rest_key[top]
        self.senders, self.receivers = rows.shape.sender_names(), rows.shape.receiver_names()

    def _key(self, scores: np.ndarray) -> np.ndarray:
        return np.abs(scores) if self.by == "abs" else -scores

    def _order(self, means: np.ndarray, full: bool) -> np.ndarray:
        """Edge indices best first: the head of the ranking, or (``full``) all of it."""
        if full:
            scores = self.rows.rest.ravel().copy()
            scores[self.rows.edges] = means
            idx, key = self.all, self._key(scores[self.all])
        else:
            idx = np.concatenate([self.rows.edges, self.rest_idx])
            key = np.concatenate([self._key(means), self.rest_key])
            part = min(self.head, idx.size)
            best = np.argpartition(-key, part - 1)[:part]
            idx, key = idx[best], key[best]
        return idx[np.lexsort((idx, -key))]  # ties by position, as ScoredGraph.ranked

    def draw(self, weights: np.ndarray) -> Draw:
        """The circuit of the pairs weighted by ``weights`` (counts of a resample, or 0/1 for a subset)."""
        means = self.rows.means(weights)
        for full in (False, True):
            order = self._order(means, full)
            mask, m = pruned_top_mask(self.rows.shape, order, self.n, start=self.start, units=self.rows.units)
            if m < order.size or order.size == self.all.size:
                break
        self.start = m  # resamples of one graph need similar m: start the next search there
        flat = np.flatnonzero(mask)
        roles, rest = np.divmod(flat, self.rows.shape.n_senders * self.rows.shape.n_receivers)
        rows, cols = np.divmod(rest, self.rows.shape.n_receivers)
        values = self.rows.values_at(means, flat)
        units = group_units(
            {
                (self.senders[s], self.receivers[r], ROLES[role]): float(v)
                for role, s, r, v in zip(
                    roles.tolist(), rows.tolist(), cols.tolist(), values.tolist(), strict=True
                )
            }
        )
        edges = {e: sum(kept.values()) for e, kept in units.items()}
        circuit = Circuit(
            self.rows.shape,
            edges,
            {},
            {"relation": self.rows.metadata.get("relation")},
            "top-n",
            {"n": m, "by": self.by, "pruned": True, "max_edges": self.n},
            roles=units if self.rows.units else None,
        )
        return Draw(circuit, np.asarray(weights, dtype=np.float64), self.rows, means)


def redraw_bootstrap(
    graph: ScoredGraph, n: int, by: str, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> list[Draw]:
    """``n_boot`` circuits of ``graph`` re-extracted from bootstrap resamples of its scoring pairs."""
    rows = pair_rows(graph)
    redraws = Redraws(rows, n, by)
    return [redraws.draw(c) for c in resample_counts(rows.n_pairs, n_boot=n_boot, seed=seed)]


def redraw_halves(
    graph: ScoredGraph, n: int, by: str, *, n_splits: int = 50, seed: int = 0
) -> list[tuple[Draw, Draw]]:
    """For ``n_splits`` random splits of the scoring pairs into two disjoint halves, each half's circuit.

    With an odd number of pairs one pair sits out of each split, so both
    halves have the same size. At least two pairs are needed.
    """
    rows = pair_rows(graph)
    if rows.n_pairs < 2:
        raise InputError(
            f"a split-half ceiling needs at least 2 scoring pairs, {graph.metadata.get('relation')} "
            f"has {rows.n_pairs}"
        )
    redraws = Redraws(rows, n, by)
    rng = np.random.default_rng(seed)
    half = rows.n_pairs // 2
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(rows.n_pairs)
        first, second = np.zeros(rows.n_pairs), np.zeros(rows.n_pairs)
        first[perm[:half]], second[perm[half : 2 * half]] = 1.0, 1.0
        out.append((redraws.draw(first), redraws.draw(second)))
    return out


def ceiling(halves: Sequence[tuple[Draw, Draw]], metric: Metric) -> tuple[Interval, np.ndarray]:
    """A relation's split-half ceiling under ``metric``: mean over splits, 2.5–97.5 percentiles;
    and the values."""
    values = np.array([metric(x, y) for x, y in halves], dtype=np.float64)
    return percentile_interval(float(np.nanmean(values)), values), values


def permutation_null(
    a: ScoredGraph,
    b: ScoredGraph,
    n: int,
    by: str,
    metrics: Mapping[str, Metric],
    *,
    n_perm: int = 100,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each metric's similarity over ``n_perm`` shuffles of the relation labels of ``a``'s
    and ``b``'s pairs."""
    rows = pooled_rows(a, b)
    na = _need_pairs(a).n_pairs
    draw_a = Redraws(rows, n, by)
    draw_b = copy.copy(draw_a)  # the same ranking tables, its own search start
    rng = np.random.default_rng(seed)
    out = {name: np.empty(n_perm) for name in metrics}
    for p in range(n_perm):
        perm = rng.permutation(rows.n_pairs)
        first, second = np.zeros(rows.n_pairs), np.zeros(rows.n_pairs)
        first[perm[:na]], second[perm[na:]] = 1.0, 1.0
        x, y = draw_a.draw(first), draw_b.draw(second)
        for name, fn in metrics.items():
            out[name][p] = fn(x, y)
    return out


@dataclass(frozen=True)
class Similarity:
    """One similarity of two relations' circuits, with every reference it needs to be read.

    ``interval``: bootstrap (centred); ``ceiling_a``/``ceiling_b``: split-half
    ceilings; ``matched``: the similarity of the two relations' half-sample
    circuits (mean over splits); ``relative``: ``matched / sqrt(ceiling_a *
    ceiling_b)``; ``null``: the permutation null's mean and 2.5–97.5
    percentiles; ``p``: the share of shuffles at or below the observed value
    (with the observed itself counted, so never 0).
    """

    a: str
    b: str
    metric: str
    interval: Interval
    ceiling_a: Interval | None = None
    ceiling_b: Interval | None = None
    matched: float | None = None
    null: Interval | None = None
    p: float | None = None

    @property
    def relative(self) -> float | None:
        """``matched / sqrt(ceiling_a * ceiling_b)``; NaN when a ceiling is below :data:`MIN_CEILING`."""
        if self.matched is None or self.ceiling_a is None or self.ceiling_b is None:
            return None
        if min(self.ceiling_a.value, self.ceiling_b.value) < MIN_CEILING:
            return float("nan")
        return self.matched / float(np.sqrt(self.ceiling_a.value * self.ceiling_b.value))

    def as_dict(self) -> dict[str, Any]:
        def iv(x: Interval | None) -> dict[str, float | None] | None:
            return None if x is None else x.as_dict()

        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            **self.interval.as_dict(),
            "ceiling_a": iv(self.ceiling_a),
            "ceiling_b": iv(self.ceiling_b),
            "matched": _num(self.matched),
            "relative": _num(self.relative),
            "null": iv(self.null),
            "p": _num(self.p),
        }


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def bootstrap_interval(
    value: float, boot_a: Sequence[Draw], boot_b: Sequence[Draw], metric: Metric, *, lower: float = 0.0
) -> Interval:
    """The centred bootstrap interval of ``metric`` from paired replicates of the two circuits.

    Clipped to ``[lower, 1]``: 0 for the set similarities, -1 for a correlation.
    """
    values = [metric(x, y) for x, y in zip(boot_a, boot_b, strict=True)]
    return centred_interval(value, values, lower=lower, upper=1.0)


def null_interval(observed: float, null: np.ndarray) -> tuple[Interval, float]:
    """The null's mean with its 2.5–97.5 percentiles, and the one-sided ``p`` of ``observed`` (at or below).

    Shuffles where the similarity is undefined (NaN) are left out.

    >>> iv, p = null_interval(0.2, np.array([0.1, 0.3, 0.5, np.nan]))
    >>> round(iv.value, 6), p
    (0.3, 0.5)
    """
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size:
        return Interval(float("nan"), float("nan"), float("nan")), float("nan")
    below = int(np.sum(null <= observed + 1e-12))
    return percentile_interval(float(np.mean(null)), null), (1 + below) / (1 + len(null))
