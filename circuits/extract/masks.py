"""Pruning on boolean edge masks: the fast path of pruned top-n circuits.

A circuit as a ``[senders, receivers]`` mask is pruned by two passes over its
edges in forward order, with no graph object built:

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

import functools

import numpy as np

from circuits.graph import GraphShape

__all__ = ["prune_edges", "prune_mask", "pruned_top_mask"]


def prune_mask(shape: GraphShape, keep: np.ndarray) -> np.ndarray:
    """The edges of ``keep`` (boolean ``[senders, receivers]``) on some ``input -> logits`` path.

    Receivers (columns) and senders (rows) are both in forward order, so one
    pass over the kept edges by receiver marks every reached node (all edges
    into a node come before any edge out of it), and one pass backwards marks
    every useful one. A circuit has a few hundred edges, so walking them beats
    array sweeps over all layers.

    >>> shape = GraphShape(1, 1, 1)
    >>> keep = np.zeros((shape.n_senders, shape.n_receivers), dtype=bool)
    >>> keep[0, shape.q_receiver(0, 0)] = keep[shape.head_sender(0, 0), shape.logits_receiver] = True
    >>> keep[shape.mlp_sender(0), shape.logits_receiver] = True  # m0 reads nothing kept: dangling
    >>> np.argwhere(prune_mask(shape, keep)).tolist()
    [[0, 0], [1, 4]]
    """
    out = np.zeros(keep.size, dtype=bool)
    out[prune_edges(shape, np.flatnonzero(keep))] = True
    return out.reshape(keep.shape)


def prune_edges(shape: GraphShape, flat: np.ndarray) -> np.ndarray:
    """:func:`prune_mask` on flat edge indices (into ``[senders, receivers]``): the surviving ones.

    >>> shape = GraphShape(1, 1, 1)
    >>> prune_edges(shape, np.array([0, 9, 14])).tolist()  # input->a0.h0<q>, a0.h0->logits, m0->logits
    [0, 9]
    """
    feeds = _feeds(shape)
    logits = shape.logits_receiver
    flat = np.asarray(flat, dtype=np.int64)
    rows, cols = np.divmod(flat, shape.n_receivers)
    by_receiver = np.lexsort((rows, cols))  # receivers, then senders, in forward order
    edges = list(zip(rows[by_receiver].tolist(), cols[by_receiver].tolist(), strict=True))
    reached = [False] * shape.n_senders
    reached[0] = True
    for s, r in edges:
        if reached[s]:
            for t in feeds[r]:
                reached[t] = True
    useful = [False] * shape.n_senders
    # a receiver's usefulness is settled before any edge into it is seen backwards (its node's
    # outgoing edges come later in the forward order), so it is computed once per receiver
    into_useful: dict[int, bool] = {}
    for s, r in reversed(edges):
        ok = into_useful.get(r)
        if ok is None:
            ok = into_useful[r] = r == logits or any(useful[t] for t in feeds[r])
        if ok:
            useful[s] = True
    kept = [i for i, (s, r) in zip(by_receiver.tolist(), edges, strict=True) if reached[s] and into_useful[r]]
    return np.sort(flat[kept])


@functools.cache
def _feeds(shape: GraphShape) -> tuple[tuple[int, ...], ...]:
    """Per receiver column, the senders whose node it is an input of (a key/value input: its whole group)."""
    out: list[tuple[int, ...]] = []
    for layer in range(shape.n_layers):
        out += [(shape.head_sender(layer, h),) for h in range(shape.n_heads)]
        groups = [tuple(shape.head_sender(layer, h) for h in range(kv * shape.group, (kv + 1) * shape.group))
                  for kv in range(shape.n_kv_heads)]  # fmt: skip
        out += groups + groups  # <k> then <v>
        out.append((shape.mlp_sender(layer),))
    out.append(())  # logits
    return tuple(out)


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

    def fits(m: int) -> tuple[bool, np.ndarray]:
        kept = prune_edges(shape, order[:m])
        return kept.size <= n, kept

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
        best, best_mask = low, fits(low)[1]
    while high > low:
        mid = (low + high + 1) // 2
        ok, mask = fits(mid)
        if ok:
            low, best, best_mask = mid, mid, mask
        else:
            high = mid - 1
    mask = np.zeros(shape.n_senders * shape.n_receivers, dtype=bool)
    mask[best_mask] = True
    return mask.reshape(shape.n_senders, shape.n_receivers), best
