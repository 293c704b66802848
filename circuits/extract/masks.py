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
lies on some ``input -> logits`` path.

Position-aware circuits keep units ``(edge, role)`` (flat indices into
``[n_roles, senders, receivers]``, :func:`prune_units`). A node then has an
output per role: a unit into a head's ``<q>`` or an MLP's input at role ``r``
reaches the node's output at role ``r``, one into a ``<k>``/``<v>`` input at
role ``r`` reaches the head's output at every role that may attend to ``r``
(:data:`~circuits.relations.roles.READERS`), and ``logits`` are read at the
``last`` role only. This is :func:`circuits.extract.prune`
on masks; the two agree edge for edge (a test checks it). Re-extracting a
circuit hundreds of times (bootstraps, split halves, permutation nulls) relies
on this path.
"""

from __future__ import annotations

import functools

import numpy as np

from circuits.graph import N_ROLES, GraphShape
from circuits.relations.roles import READERS, ROLES

__all__ = ["input_sources", "prune_edges", "prune_mask", "prune_units", "pruned_top_mask"]


def prune_mask(shape: GraphShape, keep: np.ndarray) -> np.ndarray:
    """The edges of ``keep`` (boolean ``[senders, receivers]``) on some ``input -> logits`` path.

    A ``[n_roles, senders, receivers]`` mask is pruned as (edge, role) units (:func:`prune_units`).

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
    out[(prune_units if keep.ndim == 3 else prune_edges)(shape, np.flatnonzero(keep))] = True
    return out.reshape(keep.shape)


def prune_edges(shape: GraphShape, flat: np.ndarray) -> np.ndarray:
    """:func:`prune_mask` on flat edge indices (into ``[senders, receivers]``): the surviving ones.

    >>> shape = GraphShape(1, 1, 1)
    >>> prune_edges(shape, np.array([0, 9, 14])).tolist()  # input->a0.h0<q>, a0.h0->logits, m0->logits
    [0, 9]
    """
    return _prune(shape, flat, 1)


def prune_units(shape: GraphShape, flat: np.ndarray) -> np.ndarray:
    """The units (flat indices into ``[n_roles, senders, receivers]``) on some ``input -> logits`` path.

    >>> shape = GraphShape(1, 1, 1)
    >>> size = shape.n_senders * shape.n_receivers
    >>> subject, last = ROLES.index("subject"), ROLES.index("last")
    >>> kv, head_out = 1, 1 * shape.n_receivers + 4  # input->a0.h0<k>, a0.h0->logits
    >>> units = np.array([subject * size + kv, last * size + head_out, subject * size + head_out])
    >>> prune_units(shape, units).tolist() == sorted([subject * size + kv, last * size + head_out])
    True
    """
    return _prune(shape, flat, N_ROLES)


def _prune(shape: GraphShape, flat: np.ndarray, n_roles: int) -> np.ndarray:
    """The surviving flat indices into ``[n_roles, senders, receivers]`` (one role: summed edges)."""
    targets = _targets(shape, n_roles)
    flat = np.asarray(flat, dtype=np.int64)
    roles, rest = np.divmod(flat, shape.n_senders * shape.n_receivers) if n_roles > 1 else (0, flat)
    rows, cols = np.divmod(rest, shape.n_receivers)
    # receivers, then roles and senders, in forward order; node outputs and receiver inputs are
    # numbered per role: sender * n_roles + role and receiver * n_roles + role
    order = np.lexsort((rows, cols) if n_roles == 1 else (rows, roles, cols))
    outs, ins = (rows * n_roles + roles)[order], (cols * n_roles + roles)[order]
    units = list(zip(outs.tolist(), ins.tolist(), strict=True))
    reached = [False] * (shape.n_senders * n_roles)
    reached[:n_roles] = [True] * n_roles  # input, at every role
    for s, r in units:
        if reached[s]:
            for t in targets[r]:
                reached[t] = True
    useful = [False] * (shape.n_senders * n_roles)
    goal = shape.logits_receiver * n_roles + n_roles - 1  # logits, read at the last role only
    # a receiver's usefulness is settled before any unit into it is seen backwards (its node's
    # outgoing units come later in the forward order), so it is computed once per (receiver, role)
    into_useful: dict[int, bool] = {}
    for s, r in reversed(units):
        ok = into_useful.get(r)
        if ok is None:
            ok = into_useful[r] = r == goal or any(useful[t] for t in targets[r])
        if ok:
            useful[s] = True
    kept = [i for i, (s, r) in zip(order.tolist(), units, strict=True) if reached[s] and into_useful[r]]
    return np.sort(flat[kept])


@functools.cache
def _targets(shape: GraphShape, n_roles: int) -> tuple[tuple[int, ...], ...]:
    """Per receiver input ``column * n_roles + role``, the node outputs
    ``sender * n_roles + role`` it reaches.

    A head's ``<q>`` or an MLP's input reaches its node's output at the same
    role; a ``<k>``/``<v>`` input reaches the outputs of its group's heads at
    every role that reads its role (:data:`~circuits.relations.roles.READERS`).
    """
    feeds = _feeds(shape)
    readers = tuple(tuple(ROLES.index(q) for q in READERS[key]) for key in ROLES)
    H, KV = shape.n_heads, shape.n_kv_heads
    out: list[tuple[int, ...]] = []
    for column in range(shape.n_receivers):
        offset = column % shape.receivers_per_layer
        key_value = n_roles > 1 and column != shape.logits_receiver and H <= offset < H + 2 * KV
        for role in range(n_roles):
            reach = readers[role] if key_value else (role,)
            out.append(tuple(t * n_roles + o for t in feeds[column] for o in reach))
    return tuple(out)


@functools.cache
def input_sources(shape: GraphShape, n_roles: int) -> tuple[tuple[int, ...], ...]:
    """Per node output ``sender * n_roles + role``, the receiver inputs
    ``column * n_roles + role`` leading into it.

    The inverse of the reach used by pruning: what becomes worth growing when
    a node's output joins a circuit (:func:`circuits.extract.greedy`).

    >>> shape = GraphShape(1, 1, 1)
    >>> input_sources(shape, 1)[shape.head_sender(0, 0)], input_sources(shape, 1)[shape.mlp_sender(0)]
    ((0, 1, 2), (3,))
    """
    out: list[list[int]] = [[] for _ in range(shape.n_senders * n_roles)]
    for into, reached in enumerate(_targets(shape, n_roles)):
        for node in reached:
            out[node].append(into)
    return tuple(tuple(x) for x in out)


@functools.cache
def _feeds(shape: GraphShape) -> tuple[tuple[int, ...], ...]:
    """Per receiver column, the senders whose node it is an input of (a key/value input: its whole group)."""
    out: list[tuple[int, ...]] = []
    for layer in range(shape.n_layers):
        out += [(shape.head_sender(layer, h),) for h in range(shape.n_heads)]
        groups = [
            tuple(shape.head_sender(layer, h) for h in range(kv * shape.group, (kv + 1) * shape.group))
            for kv in range(shape.n_kv_heads)
        ]
        out += groups + groups  # <k> then <v>
        out.append((shape.mlp_sender(layer),))
    out.append(())  # logits
    return tuple(out)


def pruned_top_mask(
    shape: GraphShape, order: np.ndarray, n: int, *, start: int | None = None, units: bool = False
) -> tuple[np.ndarray, int]:
    """The largest pruned top-m mask with at most ``n`` edges, and that ``m``.

    ``order`` holds the flat indices of the graph's edges, best first
    (:meth:`~circuits.graph.ScoredGraph.ranked`). The pruned top-m circuit
    only grows with m and has at most m edges, so m is bracketed by doubling
    steps from ``start`` (default ``n``; a good guess, such as the m of a
    similar graph, saves steps) and then bisected. With ``units`` the indices
    are (edge, role) units and the mask is ``[n_roles, senders, receivers]``.

    >>> from circuits.graph import ScoredGraph
    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[1, 4], g.scores[0, 0], g.scores[0, 4] = -3.0, -2.0, -1.0
    >>> mask, m = pruned_top_mask(g.shape, g.ranked(by="signed"), 2)
    >>> int(mask.sum()), m
    (2, 2)
    """
    total = len(order)

    prune = prune_units if units else prune_edges

    def fits(m: int) -> tuple[bool, np.ndarray]:
        kept = prune(shape, order[:m])
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
    dims = (N_ROLES, shape.n_senders, shape.n_receivers) if units else (shape.n_senders, shape.n_receivers)
    mask = np.zeros(int(np.prod(dims)), dtype=bool)
    mask[best_mask] = True
    return mask.reshape(dims), best
