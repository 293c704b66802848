"""The ``k`` strongest ``input -> logits`` paths of a scored graph, a path's strength being the
product of its edges' strengths, and the circuit of their union."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from circuits.circuit import Circuit
from circuits.extract.select import _columns_read_by, _count, _key
from circuits.graph import GraphShape, ScoredGraph  # noqa: F401 (GraphShape: used by the doctests)
from circuits.vocab import INPUT, LOGITS

__all__ = ["Path", "path_circuit", "strongest_paths"]


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
        paths.append(
            Path(tuple(reversed(nodes)), tuple(reversed(edges)), float(r_val[shape.logits_receiver, rank]))
        )
    return paths


def path_circuit(graph: ScoredGraph, k: int, *, by: str = "signed") -> Circuit:
    """The union of the ``k`` strongest paths' edges; the paths are listed in ``params``."""
    paths = strongest_paths(graph, k, by=by)
    edges = list(dict.fromkeys(e for p in paths for e in p.edges))
    listing = [{"nodes": list(p.nodes), "log_strength": p.log_strength} for p in paths]
    return Circuit.from_edges(
        graph, edges, extract_method="paths", params={"k": k, "by": by, "paths": listing}
    )
