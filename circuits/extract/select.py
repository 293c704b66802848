"""Choosing edges from a scored graph: top-n, threshold, greedy, pruning, minimal and node circuits.

Free functions, the scored graph first, each returning a :class:`~circuits.circuit.Circuit`:

- :func:`top_n` and :func:`threshold`: the best edges by signed score or by ``|score|``;
- :func:`greedy`: grown from the logits backwards, always adding the best edge
  whose receiver is already connected to the logits;
- :func:`prune`: drop dead and dangling edges, keeping only edges on some
  ``input -> logits`` path; :func:`pruned_top_n`: the largest pruned top-m
  circuit with at most ``n`` edges (for comparisons at equal size);
- :func:`minimal_circuit`: the smallest top-n circuit whose faithfulness,
  measured by a real circuit evaluation, reaches a target;
- :func:`node_circuit`: the best heads and MLPs, with every edge among them.

``by`` is always explicit: ``"signed"`` takes the most negative scores first
(the edges a logit-difference circuit relies on, see :mod:`circuits.graph`),
``"abs"`` ranks by ``|score|``.

Under counterfactual ablation :func:`prune` does not change a circuit's
faithfulness: a node none of whose inputs is kept computes its corrupted output,
which is what its ablated edges carry anyway, and an edge into a node that
reaches no kept output changes nothing downstream.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.extract.masks import input_sources, prune_mask, pruned_top_mask
from circuits.graph import N_ROLES, ROLE_POSITIONS, SUMMED, GraphShape, ScoredGraph, check_positions
from circuits.relations.roles import ROLES
from circuits.vocab import INPUT, LOGITS, InputError

__all__ = [
    "as_evaluate",
    "greedy",
    "minimal_circuit",
    "node_circuit",
    "prune",
    "pruned_top_n",
    "threshold",
    "top_n",
]

log = logging.getLogger(__name__)


def _check_by(by: str) -> str:
    if by not in ("signed", "abs"):
        raise InputError(f"select edges 'by' 'signed' (most negative first) or 'abs' (|score|), not {by!r}")
    return by


def _key(scores: np.ndarray, by: str) -> np.ndarray:
    """Larger is better: ``|s|`` for ``abs``, ``-s`` for ``signed``."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.abs(scores) if _check_by(by) == "abs" else -scores


def _count(n: Any, what: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"{what} must be a non-negative integer, not {n!r}")
    return int(n)


def top_n(graph: ScoredGraph, n: int, *, by: str = "signed", positions: str = SUMMED) -> Circuit:
    """The ``n`` best edges (or (edge, role) units with ``positions="roles"``).

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 4], g.scores[1, 4], g.scores[0, 0] = -3.0, 2.0, -1.0
    >>> sorted(top_n(g, 2, by="signed").edges)
    [('input', 'a0.h0<q>'), ('input', 'logits')]
    >>> sorted(top_n(g, 2, by="abs").edges)
    [('a0.h0', 'logits'), ('input', 'logits')]
    """
    n = _count(n)
    mask = graph.top_mask(n, by=_check_by(by), positions=positions)
    return Circuit.from_mask(graph, mask, extract_method="top-n", params={"n": n, "by": by})


def threshold(graph: ScoredGraph, value: float, *, by: str = "signed", positions: str = SUMMED) -> Circuit:
    """Every edge (or unit) with ``-score >= value`` (``signed``) or ``|score| >= value`` (``abs``)."""
    if not math.isfinite(value):
        raise InputError(f"threshold must be a finite number, not {value!r}")
    keep = (_key(graph.unit_scores(positions), by) >= value) & graph.unit_mask(positions)
    return Circuit.from_mask(
        graph, keep, extract_method="threshold", params={"threshold": float(value), "by": by}
    )


def _sender_kind(shape: GraphShape, index: int) -> tuple[str, int, int]:
    if index == 0:
        return "input", -1, -1
    layer, j = divmod(index - 1, shape.n_heads + 1)
    return ("mlp", layer, -1) if j == shape.n_heads else ("head", layer, j)


def _columns_read_by(shape: GraphShape, sender: int) -> list[int]:
    """Receiver columns whose node is ``sender`` (what becomes connected when it is)."""
    kind, layer, head = _sender_kind(shape, sender)
    if kind == "mlp":
        return [shape.mlp_receiver(layer)]
    if kind == "head":
        kv = head // shape.group
        return [shape.q_receiver(layer, head), shape.k_receiver(layer, kv), shape.v_receiver(layer, kv)]
    return []


def greedy(graph: ScoredGraph, n: int, *, by: str = "signed", positions: str = SUMMED) -> Circuit:
    """Grow ``n`` edges from the logits backwards.

    Starting with the edges into ``logits``, repeatedly add the best edge whose
    receiver is already connected (``logits``, or a node that sends a chosen
    edge; a key/value input is connected when any head of its group is). With
    ``positions="roles"`` units ``(edge, role)`` grow the same way from the
    logits at the ``last`` role: a node's output at role ``r`` connects its
    ``<q>`` and MLP inputs at ``r`` and its ``<k>``/``<v>`` inputs at every
    role ``r`` may attend to.

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 0], g.scores[1, 4], g.scores[0, 4] = -5.0, -1.0, -0.5
    >>> sorted(greedy(g, 2).edges)
    [('a0.h0', 'logits'), ('input', 'a0.h0<q>')]
    """
    n, shape = _count(n), graph.shape
    units = check_positions(positions) == ROLE_POSITIONS
    n_roles = N_ROLES if units else 1
    key = _key(graph.unit_scores(positions), by).reshape(n_roles, shape.n_senders, shape.n_receivers)
    sources = input_sources(shape, n_roles)
    heap: list[tuple[float, int, int, int]] = []
    pushed: set[int] = set()

    def push(into: int) -> None:
        """Offer every unit into receiver input ``column * n_roles + role``."""
        if into in pushed:
            return
        pushed.add(into)
        column, role = divmod(into, n_roles)
        for row in np.nonzero(graph.mask[:, column])[0]:
            heapq.heappush(heap, (-key[role, row, column], role, int(row), column))

    push(shape.logits_receiver * n_roles + n_roles - 1)
    connected: set[int] = set()
    keep = np.zeros((n_roles, *graph.mask.shape), dtype=bool)
    chosen = 0
    while heap and chosen < n:
        _, role, row, column = heapq.heappop(heap)
        keep[role, row, column] = True
        chosen += 1
        node = row * n_roles + role
        if node not in connected:
            connected.add(node)
            for into in sources[node]:
                push(into)
    return Circuit.from_mask(
        graph, keep if units else keep[0], extract_method="greedy", params={"n": n, "by": by}
    )


def prune(circuit: Circuit) -> Circuit:
    """Keep only the edges on some ``input -> logits`` path of the circuit.

    >>> shape = GraphShape(2, 1, 1)
    >>> c = Circuit(shape, {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): -1.0,
    ...                     ("a1.h0", "logits"): -3.0, ("input", "m1"): -2.0})
    >>> sorted(prune(c).edges)
    [('a0.h0', 'logits'), ('input', 'a0.h0<q>')]

    A position-aware circuit is pruned as units (edge, role)
    (:func:`~circuits.extract.masks.prune_units`).
    """
    import networkx as nx

    params = {**circuit.params, "pruned": True, "n_before_pruning": circuit.n_units}
    if circuit.roles is not None:
        kept = prune_mask(circuit.shape, circuit.to_unit_mask())
        return circuit.with_units(unit_names(circuit.shape, kept), params=params)

    g = circuit.to_networkx()
    if INPUT not in g or LOGITS not in g:
        keys: set[tuple[str, str]] = set()
    else:
        forward = nx.descendants(g, INPUT) | {INPUT}
        backward = nx.ancestors(g, LOGITS) | {LOGITS}
        keys = {(u, v) for u, v in circuit.edges if u in forward and v in backward}
    return circuit.with_edges(keys, params=params)


def pruned_top_n(graph: ScoredGraph, n: int, *, by: str = "signed", positions: str = SUMMED) -> Circuit:
    """The largest pruned top-m circuit with at most ``n`` edges.

    The pruned top-m circuit only grows with m, and has at most m edges, so m
    is found by growing from ``n`` and then bisecting, on edge masks
    (:func:`~circuits.extract.masks.pruned_top_mask`).
    This gives circuits of (nearly) equal size for comparisons; ``params["n"]``
    is the m used and ``params["max_edges"]`` is ``n``.

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[1, 4], g.scores[0, 0], g.scores[0, 4] = -3.0, -2.0, -1.0
    >>> c = pruned_top_n(g, 2)
    >>> sorted(c.edges), c.params["n"]
    ([('a0.h0', 'logits'), ('input', 'a0.h0<q>')], 2)
    >>> pruned_top_n(g, 1).n_edges  # the best edge alone reaches no input
    0
    """
    n = _count(n)
    units = check_positions(positions) == ROLE_POSITIONS
    mask, m = pruned_top_mask(
        graph.shape, graph.ranked(by=_check_by(by), positions=positions), n, units=units
    )
    params = {"n": m, "by": by, "pruned": True, "n_before_pruning": m, "max_edges": n}
    return Circuit.from_mask(graph, mask, extract_method="top-n", params=params)


def as_evaluate(evaluator: Any) -> Callable[[np.ndarray], float]:
    """A mask -> faithfulness function from an :class:`~circuits.evaluate.Evaluator` or a callable."""
    if hasattr(evaluator, "run_mask"):
        return lambda mask: float(evaluator.run_mask(mask).faithfulness)
    if callable(evaluator):
        return evaluator
    raise InputError(f"evaluate must be an Evaluator or a mask -> faithfulness function, not {evaluator!r}")


def minimal_circuit(
    graph: ScoredGraph,
    evaluate: Any,
    target: float,
    *,
    by: str = "signed",
    pruned: bool = True,
    sizes: Sequence[int] | None = None,
    max_size: int | None = None,
    positions: str = SUMMED,
) -> Circuit:
    """The smallest top-n circuit whose measured faithfulness reaches ``target``.

    Every candidate is verified by ``evaluate`` (an Evaluator, or a function of
    a boolean mask returning normalized faithfulness). Without ``sizes`` the
    search doubles ``n`` until the target is met, then bisects between the last
    failing and the first passing size; faithfulness need not grow
    monotonically with size, so the answer is the smallest size found by that
    search. With ``sizes``, they are tried in increasing order. No candidate
    has more than ``max_size`` edges (default: all of them). Every measured
    ``(n, F)`` is kept in ``params["search"]``. With ``positions="roles"``
    the candidates are top-n (edge, role) units, evaluated as such.
    """
    if not math.isfinite(target) or target <= 0:
        raise InputError(f"target faithfulness must be a positive number, not {target!r}")
    run = as_evaluate(evaluate)
    n_units = graph.n_units(positions)
    total = n_units if max_size is None else min(n_units, _count(max_size, "max_size"))
    seen: dict[int, tuple[float, Circuit]] = {}

    def measure(n: int) -> float:
        if n not in seen:
            circuit = top_n(graph, n, by=by, positions=positions)
            if pruned:
                circuit = prune(circuit)
            seen[n] = (run(circuit.to_unit_mask()), circuit)
            log.info("minimal circuit: %d edges -> F = %.4f", n, seen[n][0])
        return seen[n][0]

    found: int | None = None
    if sizes is not None:
        for n in sorted({min(_count(s, "size"), total) for s in sizes}):
            if measure(n) >= target:
                found = n
                break
    else:
        low, n = 0, 1
        while n < total and measure(n) < target:
            low, n = n, min(2 * n, total)
        if measure(n) >= target:
            high = n
            while high - low > 1:
                mid = (low + high) // 2
                if measure(mid) >= target:
                    high = mid
                else:
                    low = mid
            found = high
    if found is None:
        best = max(f for f, _ in seen.values())
        within = (
            f" within {total} {'units' if positions == ROLE_POSITIONS else 'edges'}"
            if total < n_units
            else ""
        )
        raise InputError(
            f"no circuit reaches faithfulness {target}{within}; the best measured is {best:.4f} "
            "(targets above 1 are reachable only when the full model is exceeded)"
        )
    faith, circuit = seen[found]
    params = {**circuit.params, "target": target, "search": [[k, v[0]] for k, v in sorted(seen.items())]}
    return circuit.with_units(circuit.units(), extract_method="minimal", params=params, faithfulness=faith)


def unit_names(shape: GraphShape, keep: np.ndarray) -> set[tuple[str, str, str]]:
    """The ``(sender, receiver, role)`` names of a ``[n_roles, senders, receivers]`` unit mask."""
    senders, receivers = shape.sender_names(), shape.receiver_names()
    return {(senders[s], receivers[r], ROLES[role]) for role, s, r in zip(*np.nonzero(keep), strict=True)}


def node_circuit(graph: ScoredGraph, n: int, *, by: str = "signed") -> Circuit:
    """The ``n`` best heads and MLPs (by node score) with every edge among them, ``input`` and ``logits``.

    A node's score is the sum of its outgoing edge scores
    (:meth:`~circuits.graph.ScoredGraph.node_scores`). A key/value input is
    kept when any head of its group is chosen.

    >>> g = ScoredGraph(GraphShape(1, 2, 1), np.zeros((4, 6)))
    >>> g.scores[1, 5], g.scores[2, 5], g.scores[3, 5] = -1.0, -4.0, 0.5
    >>> c = node_circuit(g, 1)
    >>> c.params["nodes"], sorted(c.edges)[:3]
    (['a0.h1'], [('a0.h1', 'logits'), ('input', 'a0.h0<k>'), ('input', 'a0.h0<v>')])
    """
    n, shape = _count(n), graph.shape
    s_names = shape.sender_names()
    candidates = np.arange(1, shape.n_senders)
    key = _key(graph.scores.sum(axis=1)[candidates], by)
    chosen = candidates[np.argsort(-key, kind="stable")[:n]]
    send = np.zeros(shape.n_senders, dtype=bool)
    send[0] = True
    send[chosen] = True
    receive = np.zeros(shape.n_receivers, dtype=bool)
    receive[shape.logits_receiver] = True
    for sender in chosen:
        receive[_columns_read_by(shape, int(sender))] = True
    keep = graph.mask & send[:, None] & receive[None, :]
    names = [s_names[i] for i in sorted(chosen)]
    return Circuit.from_mask(graph, keep, extract_method="nodes", params={"n": n, "by": by, "nodes": names})
