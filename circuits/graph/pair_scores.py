"""Each scoring pair's own scores of a graph's strongest edges, kept at half precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuits.vocab import InputError

__all__ = ["PAIR_EDGES", "PairScores", "half_precision"]

PAIR_EDGES = 4096
"""How many of a graph's strongest edges keep each scoring pair's own score (:class:`PairScores`)."""


def half_precision(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) rounded to float16's 11 significant bits, unless some would not fit float16.

    Per-pair scores are kept this way: resampling needs two or three digits,
    and the stored file is then exact at half the size.

    >>> half_precision(np.array([1.0001, -3.0], dtype=np.float32)).tolist()
    [1.0, -3.0]
    >>> half_precision(np.array([1e6], dtype=np.float32)).tolist()
    [1000000.0]
    """
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.array_equal(np.isfinite(half), np.isfinite(values)):
        return values
    return half.astype(np.float32)


@dataclass(frozen=True)
class PairScores:
    """Each scoring pair's own scores on a graph's strongest edges.

    A graph's score is the mean over its scoring pairs; bootstraps over the
    pairs, split-half noise ceilings and permutation nulls re-average these
    per-pair scores instead of re-scoring. Only the ``PAIR_EDGES`` edges of
    largest ``|score|`` are kept (a circuit of a few hundred edges re-drawn
    from resampled pairs would need an edge to pass thousands of stronger
    ones to come from outside them); the other edges keep their mean.

    Parameters
    ----------
    edges : numpy.ndarray
        ``[K]`` flat indices into the ``[senders, receivers]`` score matrix,
        strongest first.
    values : numpy.ndarray
        ``[n_pairs, K]`` float32: pair ``i``'s score of edge ``edges[k]``.

    Examples
    --------
    >>> p = PairScores(np.array([5, 2]), np.array([[1.0, -2.0], [3.0, 0.0]]))
    >>> p.n_pairs, p.means().tolist(), p.means(np.array([0.0, 1.0])).tolist()
    (2, [2.0, -1.0], [3.0, 0.0])
    """

    edges: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.int64).ravel()
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != edges.size or values.shape[0] < 1:
            raise InputError(f"pair scores need [n_pairs, {edges.size}] values, not {list(values.shape)}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "values", values)

    @property
    def n_pairs(self) -> int:
        return int(self.values.shape[0])

    def means(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The ``[K]`` scores averaged over the pairs, each weighted by ``weights`` (resample counts)."""
        if weights is None:
            return self.values.astype(np.float64).mean(0)
        w = np.asarray(weights, dtype=np.float64)
        return (w @ self.values.astype(np.float64)) / w.sum()
