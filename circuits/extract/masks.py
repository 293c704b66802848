"""Pruning on boolean edge masks: the fast path of pruned top-n circuits.

A circuit as a ``[senders, receivers]`` mask is pruned by two sweeps over the
forward order, with no graph object built:

- forward: a sender is *reached* when it is ``input``, or when a kept edge
  from a reached sender enters one of its inputs (a head's ``<q>``, or the
  ``<k>``/``<v>`` of its key/value group; an MLP's input);
- backward: a receiver is *useful* when it is ``logits``, or belongs to a
  node with a kept edge into a useful receiver (a ``<k>``/``<v>`` input is
  useful when any head of its group is).

An edge survives when its sender is reached and its receiver is useful: it
lies on some ``input -> logits`` path. This is :func:`circuits.extract.prune`
on masks; the two agree edge for edge (a test checks it). Re-extracting a
circuit hundreds of times (bootstraps, split halves, permutation nulls) relies
on this path.
"""

from __future__ import annotations

import numpy as np

from circuits.graph import GraphShape

__all__ = ["prune_mask", "pruned_top_mask"]


def prune_mask(shape: GraphShape, keep: np.ndarray) -> np.ndarray:
    """The edges of ``keep`` (boolean ``[senders, receivers]``) on some ``input -> logits`` path.

    >>> shape = GraphShape(1, 1, 1)
    >>> keep = np.zeros((shape.n_senders, shape.n_receivers), dtype=bool)
    >>> keep[0, shape.q_receiver(0, 0)] = keep[shape.head_sender(0, 0), shape.logits_receiver] = True
    >>> keep[shape.mlp_sender(0), shape.logits_receiver] = True  # m0 reads nothing kept: dangling
    >>> np.argwhere(prune_mask(shape, keep)).tolist()
    [[0, 0], [1, 4]]
    """
    H, KV, g = shape.n_heads, shape.n_kv_heads, shape.group
    reached = np.zeros(shape.n_senders, dtype=bool)
    reached[0] = True
    for layer in range(shape.n_layers):
        before = shape.senders_before(layer)
        cols = shape.attn_receivers(layer)
        fed = (keep[:before, cols] & reached[:before, None]).any(0)  # [H + 2 KV]
        kv_fed = fed[H : H + KV] | fed[H + KV :]
        reached[before : before + H] = fed[:H] | np.repeat(kv_fed, g)
        reads = before if shape.parallel else before + H
        reached[shape.mlp_sender(layer)] = (keep[:reads, shape.mlp_receiver(layer)] & reached[:reads]).any()
    useful = np.zeros(shape.n_receivers, dtype=bool)
    useful[shape.logits_receiver] = True
    for layer in reversed(range(shape.n_layers)):
        mlp = shape.mlp_sender(layer)
        useful[shape.mlp_receiver(layer)] = (keep[mlp] & useful).any()
        first = shape.head_sender(layer, 0)
        heads = (keep[first : first + H] & useful).any(1)
        start = shape.q_receiver(layer, 0)
        useful[start : start + H] = heads
        group_useful = heads.reshape(KV, g).any(1)
        useful[start + H : start + H + KV] = group_useful
        useful[start + H + KV : start + H + 2 * KV] = group_useful
    return keep & reached[:, None] & useful[None, :]


def pruned_top_mask(
    shape: GraphShape, order: np.ndarray, n: int, *, start: int | None = None
) -> tuple[np.ndarray, int]:
    """The largest pruned top-m mask with at most ``n`` edges, and that ``m``.

    ``order`` holds the flat indices of the graph's edges, best first
    (:meth:`~circuits.graph.ScoredGraph.ranked`). The pruned top-m circuit
    only grows with m and has at most m edges, so m is bracketed by doubling
    steps from ``start`` (default ``n``; a good guess, such as the m of a
    similar graph, saves steps) and then bisected.

    >>> from circuits.graph import ScoredGraph
    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[1, 4], g.scores[0, 0], g.scores[0, 4] = -3.0, -2.0, -1.0
    >>> mask, m = pruned_top_mask(g.shape, g.ranked(by="signed"), 2)
    >>> int(mask.sum()), m
    (2, 2)
    """
    total = len(order)
    size = (shape.n_senders, shape.n_receivers)

    def pruned(m: int) -> np.ndarray:
        keep = np.zeros(size[0] * size[1], dtype=bool)
        keep[order[:m]] = True
        return prune_mask(shape, keep.reshape(size))

    def fits(m: int) -> tuple[bool, np.ndarray]:
        mask = pruned(m)
        return int(mask.sum()) <= n, mask

    low = min(n, total)  # the pruned top-n circuit always fits: it has at most n edges
    guess = min(max(start if start is not None else low, low), total)
    ok, mask = fits(guess)
    if ok:
        best, best_mask, step = guess, mask, max(1, guess // 8)
        high = guess
        while high < total:  # grow until a circuit no longer fits
            high = min(high + step, total)
            ok, mask = fits(high)
            if not ok:
                high -= 1
                break
            best, best_mask, step = high, mask, 2 * step
        low = best
    else:  # the guess is too large: shrink towards low, which fits
        high = guess - 1
        best, best_mask = low, pruned(low)
    while high > low:
        mid = (low + high + 1) // 2
        ok, mask = fits(mid)
        if ok:
            low, best, best_mask = mid, mid, mask
        else:
            high = mid - 1
    return best_mask, best
