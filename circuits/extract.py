"""Extracting circuits from a scored graph.

Free functions, the scored graph first, each returning a :class:`~circuits.circuit.Circuit`:

- :func:`top_n` and :func:`threshold`: the best edges by signed score or by ``|score|``;
- :func:`greedy`: grown from the logits backwards, always adding the best edge
  whose receiver is already connected to the logits;
- :func:`prune`: drop dead and dangling edges, keeping only edges on some
  ``input -> logits`` path; :func:`pruned_top_n`: the largest pruned top-m
  circuit with at most ``n`` edges (for comparisons at equal size);
- :func:`minimal_circuit`: the smallest top-n circuit whose faithfulness,
  measured by a real circuit evaluation, reaches a target;
- :func:`strongest_paths` and :func:`path_circuit`: the ``k`` strongest
  ``input -> logits`` paths, a path's strength being the product of its edges'
  strengths;
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.graph import GraphShape, ScoredGraph
from circuits.vocab import INPUT, LOGITS, InputError

__all__ = [
    "METHODS",
    "Path",
    "as_evaluate",
    "extract",
    "greedy",
    "minimal_circuit",
    "node_circuit",
    "path_circuit",
    "prune",
    "pruned_top_n",
    "strongest_paths",
    "threshold",
    "top_n",
]

log = logging.getLogger(__name__)

METHODS = ("top-n", "threshold", "greedy", "paths", "nodes", "minimal")


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


def top_n(graph: ScoredGraph, n: int, *, by: str = "signed") -> Circuit:
    """The ``n`` best edges.

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 4], g.scores[1, 4], g.scores[0, 0] = -3.0, 2.0, -1.0
    >>> sorted(top_n(g, 2, by="signed").edges)
    [('input', 'a0.h0<q>'), ('input', 'logits')]
    >>> sorted(top_n(g, 2, by="abs").edges)
    [('a0.h0', 'logits'), ('input', 'logits')]
    """
    n = _count(n)
    mask = graph.top_mask(n, by=_check_by(by))
    return Circuit.from_mask(graph, mask, method="top-n", params={"n": n, "by": by})


def threshold(graph: ScoredGraph, value: float, *, by: str = "signed") -> Circuit:
    """Every edge with ``-score >= value`` (``signed``) or ``|score| >= value`` (``abs``)."""
    if not math.isfinite(value):
        raise InputError(f"threshold must be a finite number, not {value!r}")
    keep = (_key(graph.scores, by) >= value) & graph.mask
    return Circuit.from_mask(graph, keep, method="threshold", params={"threshold": float(value), "by": by})


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


def greedy(graph: ScoredGraph, n: int, *, by: str = "signed") -> Circuit:
    """Grow ``n`` edges from the logits backwards.

    Starting with the edges into ``logits``, repeatedly add the best edge whose
    receiver is already connected (``logits``, or a node that sends a chosen
    edge; a key/value input is connected when any head of its group is).

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 0], g.scores[1, 4], g.scores[0, 4] = -5.0, -1.0, -0.5
    >>> sorted(greedy(g, 2).edges)
    [('a0.h0', 'logits'), ('input', 'a0.h0<q>')]
    """
    n, shape = _count(n), graph.shape
    key = _key(graph.scores, by)
    heap: list[tuple[float, int, int]] = []
    pushed: set[int] = set()

    def push(column: int) -> None:
        if column in pushed:
            return
        pushed.add(column)
        for row in np.nonzero(graph.mask[:, column])[0]:
            heapq.heappush(heap, (-key[row, column], int(row), column))

    push(shape.logits_receiver)
    connected: set[int] = set()
    keep = np.zeros_like(graph.mask)
    chosen = 0
    while heap and chosen < n:
        _, row, column = heapq.heappop(heap)
        keep[row, column] = True
        chosen += 1
        if row not in connected:
            connected.add(row)
            for c in _columns_read_by(shape, row):
                push(c)
    return Circuit.from_mask(graph, keep, method="greedy", params={"n": n, "by": by})


def prune(circuit: Circuit) -> Circuit:
    """Keep only the edges on some ``input -> logits`` path of the circuit.

    >>> shape = GraphShape(2, 1, 1)
    >>> c = Circuit(shape, {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): -1.0,
    ...                     ("a1.h0", "logits"): -3.0, ("input", "m1"): -2.0})
    >>> sorted(prune(c).edges)
    [('a0.h0', 'logits'), ('input', 'a0.h0<q>')]
    """
    import networkx as nx

    g = circuit.to_networkx()
    if INPUT not in g or LOGITS not in g:
        keys: set[tuple[str, str]] = set()
    else:
        forward = nx.descendants(g, INPUT) | {INPUT}
        backward = nx.ancestors(g, LOGITS) | {LOGITS}
        keys = {(u, v) for u, v in circuit.edges if u in forward and v in backward}
    params = {**circuit.params, "pruned": True, "n_before_pruning": circuit.n_edges}
    return circuit.with_edges(keys, params=params)


def pruned_top_n(graph: ScoredGraph, n: int, *, by: str = "signed") -> Circuit:
    """The largest pruned top-m circuit with at most ``n`` edges.

    The pruned top-m circuit only grows with m, and has at most m edges, so m
    is found by doubling from ``n`` and then bisecting.
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
    total = graph.n_edges
    low = min(n, total)  # the pruned top-low circuit fits; find the largest m that does
    fits = prune(top_n(graph, low, by=by))
    high = low
    while high < total:
        high = min(2 * high + 1, total)
        candidate = prune(top_n(graph, high, by=by))
        if candidate.n_edges > n:
            high -= 1
            break
        low, fits = high, candidate
    while high > low:
        mid = (low + high + 1) // 2
        candidate = prune(top_n(graph, mid, by=by))
        if candidate.n_edges <= n:
            low, fits = mid, candidate
        else:
            high = mid - 1
    return fits.with_edges(set(fits.edges), params={**fits.params, "max_edges": n})


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
) -> Circuit:
    """The smallest top-n circuit whose measured faithfulness reaches ``target``.

    Every candidate is verified by ``evaluate`` (an Evaluator, or a function of
    a boolean mask returning normalized faithfulness). Without ``sizes`` the
    search doubles ``n`` until the target is met, then bisects between the last
    failing and the first passing size; faithfulness need not grow
    monotonically with size, so the answer is the smallest size found by that
    search. With ``sizes``, they are tried in increasing order. Every measured
    ``(n, F)`` is kept in ``params["search"]``.
    """
    if not math.isfinite(target) or target <= 0:
        raise InputError(f"target faithfulness must be a positive number, not {target!r}")
    run = as_evaluate(evaluate)
    total = graph.n_edges
    seen: dict[int, tuple[float, Circuit]] = {}

    def measure(n: int) -> float:
        if n not in seen:
            circuit = top_n(graph, n, by=by)
            if pruned:
                circuit = prune(circuit)
            seen[n] = (run(circuit.to_mask()), circuit)
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
        raise InputError(f"no circuit reaches faithfulness {target}; the best measured is {best:.4f} "
                         "(targets above 1 are reachable only when the full model is exceeded)")  # fmt: skip
    faith, circuit = seen[found]
    params = {**circuit.params, "target": target, "search": [[k, v[0]] for k, v in sorted(seen.items())]}
    return circuit.with_edges(set(circuit.edges), method="minimal", params=params, faithfulness=faith)


@dataclass(frozen=True)
class Path:
    """One ``input -> logits`` path: its nodes, scored edges and strength."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    log_strength: float

    @property
    def strength(self) -> float:
        """Product of the edges' strengths (``|score|``, or ``-score`` for ``signed``)."""
        return math.exp(self.log_strength)


def strongest_paths(graph: ScoredGraph, k: int, *, by: str = "signed") -> list[Path]:
    """The ``k`` strongest ``input -> logits`` paths, strongest first.

    A path's strength is the product of its scored edges' strengths (``|score|``
    for ``abs``; ``-score`` for ``signed``, where edges with ``score >= 0``
    cannot be used). A head input leads into its head (a key/value input into
    every head of its group) at no cost. Exact k-best dynamic programming over
    the forward order, with no loop over paths.

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 4], g.scores[0, 0], g.scores[1, 4] = -0.5, -2.0, -1.0
    >>> [(p.nodes, round(p.strength, 3)) for p in strongest_paths(g, 2)]
    [(('input', 'a0.h0<q>', 'a0.h0', 'logits'), 2.0), (('input', 'logits'), 0.5)]
    """
    k, shape = max(1, _count(k, "k")), graph.shape
    key = _key(graph.scores, by)
    with np.errstate(divide="ignore"):
        weight = np.where(graph.mask & (key > 0), np.log(np.where(key > 0, key, 1.0)), -np.inf)
    neg = -np.inf
    s_val = np.full((shape.n_senders, k), neg)  # best log-strengths reaching each sender's output
    s_back = np.full((shape.n_senders, k, 2), -1)  # (receiver column, rank) or (-1, -1) for input
    r_val = np.full((shape.n_receivers, k), neg)
    r_back = np.full((shape.n_receivers, k, 2), -1)  # (sender row, rank)
    s_val[0, 0] = 0.0

    def best(values: np.ndarray) -> np.ndarray:
        order = np.argsort(-values, kind="stable")[:k]
        return order[np.isfinite(values[order])]

    def fill_receiver(column: int, rows: int) -> None:
        cand = s_val[:rows] + weight[:rows, column, None]
        flat = cand.ravel()
        top = best(flat)
        r_val[column, : len(top)] = flat[top]
        r_back[column, : len(top)] = np.stack(np.divmod(top, k), axis=1)

    def fill_sender(sender: int, columns: list[int]) -> None:
        cand = r_val[columns].ravel()
        top = best(cand)
        s_val[sender, : len(top)] = cand[top]
        col_idx, rank = np.divmod(top, k)
        s_back[sender, : len(top)] = np.stack([np.asarray(columns)[col_idx], rank], axis=1)

    for layer in range(shape.n_layers):
        before = shape.senders_before(layer)
        cols = shape.attn_receivers(layer)
        for column in range(cols.start, cols.stop):
            fill_receiver(column, before)
        for head in range(shape.n_heads):
            fill_sender(
                shape.head_sender(layer, head), _columns_read_by(shape, shape.head_sender(layer, head))
            )
        mlp_col = shape.mlp_receiver(layer)
        fill_receiver(mlp_col, before + (0 if shape.parallel else shape.n_heads))
        fill_sender(shape.mlp_sender(layer), [mlp_col])
    fill_receiver(shape.logits_receiver, shape.n_senders)

    s_names, r_names = shape.sender_names(), shape.receiver_names()
    paths = []
    for rank in range(k):
        if not np.isfinite(r_val[shape.logits_receiver, rank]):
            break
        nodes, edges = [LOGITS], []
        column, r = shape.logits_receiver, rank
        while True:
            sender, s_rank = (int(x) for x in r_back[column, r])
            edges.append((s_names[sender], r_names[column]))
            if sender == 0:
                nodes.append(INPUT)
                break
            next_column, r = (int(x) for x in s_back[sender, s_rank])
            nodes.append(s_names[sender])
            if r_names[next_column] != s_names[sender]:  # a head input, not an MLP's own input
                nodes.append(r_names[next_column])
            column = next_column
        paths.append(Path(tuple(reversed(nodes)), tuple(reversed(edges)),
                          float(r_val[shape.logits_receiver, rank])))  # fmt: skip
    return paths


def path_circuit(graph: ScoredGraph, k: int, *, by: str = "signed") -> Circuit:
    """The union of the ``k`` strongest paths' edges; the paths are listed in ``params``."""
    paths = strongest_paths(graph, k, by=by)
    edges = list(dict.fromkeys(e for p in paths for e in p.edges))
    listing = [{"nodes": list(p.nodes), "log_strength": p.log_strength} for p in paths]
    return Circuit.from_edges(graph, edges, method="paths", params={"k": k, "by": by, "paths": listing})


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
    return Circuit.from_mask(graph, keep, method="nodes", params={"n": n, "by": by, "nodes": names})


def extract(
    graph: ScoredGraph,
    method: str = "top-n",
    *,
    size: int | None = None,
    fraction: float | None = None,
    value: float | None = None,
    target: float | None = None,
    evaluate: Any = None,
    by: str = "signed",
    pruned: bool = True,
) -> Circuit:
    """One entry point for every method (what the command line calls).

    ``size`` (or ``fraction`` of all edges) is the edge count for ``top-n`` and
    ``greedy``, the path count for ``paths`` and the node count for ``nodes``;
    ``value`` is the ``threshold``; ``target`` and ``evaluate`` drive ``minimal``.
    """
    if method not in METHODS:
        raise InputError(f"unknown extraction method {method!r}; valid: {', '.join(METHODS)}")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise InputError(f"fraction must lie in (0, 1], not {fraction}")
        size = max(1, round(fraction * graph.n_edges))
    if method == "minimal":
        if target is None or evaluate is None:
            raise InputError("method 'minimal' needs a target faithfulness and an evaluator")
        return minimal_circuit(graph, evaluate, target, by=by, pruned=pruned)
    if method == "threshold":
        if value is None:
            raise InputError("method 'threshold' needs a threshold value")
        circuit = threshold(graph, value, by=by)
    else:
        if size is None:
            raise InputError(f"method {method!r} needs a size (or a fraction)")
        functions = {"top-n": top_n, "greedy": greedy, "paths": path_circuit, "nodes": node_circuit}
        circuit = functions[method](graph, size, by=by)
    return prune(circuit) if pruned else circuit
