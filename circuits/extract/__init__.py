"""Extracting circuits from a scored graph (torch-free).

- :mod:`~circuits.extract.select`: top-n, threshold, greedy growth, pruning to
  ``input -> logits`` paths, pruned top-n at a fixed size, node circuits and
  the minimal circuit reaching a target faithfulness;
- :mod:`~circuits.extract.paths`: the ``k`` strongest paths and their union.

:func:`extract` is the one entry point the command line and the pipeline call.
"""

from __future__ import annotations

from typing import Any

from circuits.circuit import Circuit
from circuits.extract.paths import Path, path_circuit, strongest_paths
from circuits.extract.select import (
    as_evaluate,
    greedy,
    minimal_circuit,
    node_circuit,
    prune,
    pruned_top_n,
    threshold,
    top_n,
)
from circuits.graph import ROLE_POSITIONS, ScoredGraph, check_positions
from circuits.vocab import ExtractMethod, InputError

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

METHODS = tuple(m.value for m in ExtractMethod if m is not ExtractMethod.CUSTOM)


def extract(
    graph: ScoredGraph,
    extract_method: str = "top-n",
    *,
    size: int | None = None,
    fraction: float | None = None,
    value: float | None = None,
    target: float | None = None,
    evaluate: Any = None,
    by: str = "signed",
    pruned: bool = True,
    positions: str | None = None,
) -> Circuit:
    """Choose a circuit from a scored graph by any extraction method (what the command line calls).

    Parameters
    ----------
    graph : ScoredGraph
        The edge scores (:func:`circuits.score_relation`).
    extract_method : {"top-n", "threshold", "greedy", "paths", "nodes", "minimal"}
        ``"top-n"``: the ``size`` best edges; ``"threshold"``: every edge whose
        ranking key (``-score`` for ``by="signed"``, ``|score|`` for ``"abs"``)
        is at least ``value``; ``"greedy"``: ``size`` edges grown from the
        logits backwards, each the best edge whose receiver is already
        connected; ``"paths"``: the union of the ``size`` strongest
        ``input -> logits`` paths; ``"nodes"``: the ``size`` best heads and
        MLPs with every edge among them; ``"minimal"``: the smallest top-n
        circuit whose *measured* faithfulness reaches ``target``.
    size : int, optional
        The edge count for ``top-n`` and ``greedy``, the path count for
        ``paths``, the node count for ``nodes``, the largest edge count
        ``minimal`` may try (default: all).
    fraction : float, optional
        ``size`` as a fraction of all edges, in ``(0, 1]``.
    value : float, optional
        The threshold of ``threshold``.
    target : float, optional
        The faithfulness ``minimal`` must reach.
    evaluate : Evaluator or callable, optional
        For ``minimal``: an :class:`~circuits.evaluate.Evaluator`
        (:func:`circuits.heldout_evaluator`) or a function of a boolean mask
        returning normalized faithfulness.
    by : {"signed", "abs"}
        Rank edges by signed score, most negative first (the edges a
        logit-difference circuit relies on), or by ``|score|``.
    pruned : bool
        Keep only the edges on some ``input -> logits`` path of the result
        (dangling edges change nothing under counterfactual ablation), so a
        pruned circuit may have fewer than ``size`` edges.
    positions : {"summed", "roles"}, optional
        ``"roles"`` chooses units (edge, role) from a graph scored with
        position roles (``size`` then counts units; ``top-n``, ``threshold``,
        ``greedy`` and ``minimal`` support it); ``"summed"`` chooses edges.
        Default: the graph's own (:attr:`~circuits.graph.ScoredGraph.positions`).

    Returns
    -------
    Circuit
        The chosen edges with their scores; ``extract_method`` and ``params``
        record how they were chosen, ``provenance`` is the graph's metadata.
        Only ``minimal`` sets ``faithfulness``.

    Raises
    ------
    InputError
        An unknown method, or the size, threshold, target or evaluator the
        method needs is missing.

    Examples
    --------
    >>> import numpy as np
    >>> from circuits.graph import GraphShape
    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5)))
    >>> g.scores[0, 4], g.scores[1, 4] = -2.0, -1.0
    >>> sorted(extract(g, "top-n", size=1).edges)
    [('input', 'logits')]

    On a tiny model, with the smallest circuit whose held-out faithfulness
    reaches one half:

    >>> from circuits import ScoreSettings, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> top = extract(graph, "top-n", size=30)
    >>> top.extract_method, top.params["n"], top.params["by"], top.n_edges <= 30
    ('top-n', 30, 'signed', True)
    >>> minimal = extract(graph, "minimal", target=0.5, evaluate=heldout_evaluator(model, graph, pairs))
    >>> minimal.faithfulness >= 0.5, minimal.params["target"]
    (True, 0.5)
    """
    if extract_method not in METHODS:
        raise InputError(f"unknown extraction method {extract_method!r}; valid: {', '.join(METHODS)}")
    positions = graph.positions if positions is None else check_positions(positions)
    if positions == ROLE_POSITIONS and extract_method in ("paths", "nodes"):
        raise InputError(
            f"extraction method {extract_method!r} chooses edges summed over positions; with "
            "positions 'roles' use top-n, threshold, greedy or minimal"
        )
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise InputError(f"fraction must lie in (0, 1], not {fraction}")
        size = max(1, round(fraction * graph.n_units(positions)))
    if extract_method == ExtractMethod.MINIMAL.value:
        if target is None or evaluate is None:
            raise InputError("extraction method 'minimal' needs a target faithfulness and an evaluator")
        return minimal_circuit(
            graph, evaluate, target, by=by, pruned=pruned, max_size=size, positions=positions
        )
    if extract_method == ExtractMethod.THRESHOLD.value:
        if value is None:
            raise InputError("extraction method 'threshold' needs a threshold value")
        circuit = threshold(graph, value, by=by, positions=positions)
    elif size is None:
        raise InputError(f"extraction method {extract_method!r} needs a size (or a fraction)")
    elif extract_method in ("paths", "nodes"):
        _check_size(graph, extract_method, size, positions)
        circuit = (path_circuit if extract_method == "paths" else node_circuit)(graph, size, by=by)
    else:
        _check_size(graph, extract_method, size, positions)
        circuit = (top_n if extract_method == "top-n" else greedy)(graph, size, by=by, positions=positions)
    return prune(circuit) if pruned else circuit


def _check_size(graph: ScoredGraph, extract_method: str, size: int, positions: str) -> None:
    """A size of at least one, and no more edges (units, nodes) than the graph has: never clamped silently."""
    if size < 1:
        raise InputError(f"extraction method {extract_method!r}: size must be at least 1, not {size}")
    if extract_method == "paths":
        return
    if extract_method == "nodes":
        n, what = graph.shape.n_layers * (graph.shape.n_heads + 1), "heads and MLPs"
    else:
        n, what = graph.n_units(positions), "(edge, role) units" if positions == ROLE_POSITIONS else "edges"
    if size > n:
        raise InputError(
            f"extraction method {extract_method!r}: size {size} is larger than the graph, which has "
            f"{n} {what}; a size is from 1 to {n} (a fraction of 1 keeps them all)"
        )
