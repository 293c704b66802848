"""The JSON form of EAP-IG's graph files (``Graph.to_json`` / ``from_json``), torch-free.

The layout is in :mod:`circuits.store.mib_format`; :mod:`circuits.store.mib_pt`
is the torch form of the same content (:class:`~circuits.store.mib_graph.MibGraph`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.io import atomic_write_text, read_json
from circuits.store.mib_graph import MibGraph, MibImport
from circuits.vocab import InputError

__all__ = ["from_mib_json", "read_mib_json", "to_mib_json", "write_mib_json"]


def to_mib_json(
    source: ScoredGraph | Circuit,
    *,
    scored: ScoredGraph | None = None,
    d_model: int | None = None,
    fraction: float | None = None,
    by: str = "abs",
    provenance: bool = True,
) -> dict[str, Any]:
    """The EAP-IG graph JSON of a scored graph or a circuit.

    Parameters
    ----------
    source : ScoredGraph or Circuit
        A scored graph is written with no edge in the graph (an importance
        file) unless ``fraction`` is given; a circuit with its edges in the
        graph.
    scored : ScoredGraph, optional
        With a circuit: the scores of the edges outside it (default 0).
    d_model : int, optional
        Written into ``cfg`` (default: from the metadata, see :mod:`circuits.store.mib_format`).
    fraction : float, optional
        With a scored graph: mark the top ``int(fraction * n)`` edges of the
        ungrouped graph in the graph, ranked ``by``.
    by : {"abs", "signed"}
        ``|score|`` (MIB's default) or most negative first.
    provenance : bool
        Add this engine's metadata block (``"circuit_graph_engine"``).

    Returns
    -------
    dict
        ``{"cfg", "nodes", "edges"}`` (and the metadata block), JSON-ready.

    Examples
    --------
    >>> import numpy as np
    >>> from circuits import GraphShape, ScoredGraph
    >>> shape = GraphShape(1, 1, 1)
    >>> graph = ScoredGraph(shape, np.arange(15.0).reshape(3, 5), {"model": "m"})
    >>> data = to_mib_json(graph, fraction=0.5, provenance=False)
    >>> sorted(data), data["cfg"]  # doctest: +NORMALIZE_WHITESPACE
    (['cfg', 'edges', 'nodes'], {'n_layers': 1, 'n_heads': 1, 'parallel_attn_mlp': False, 'd_model': 0,
     'n_key_value_heads': 1, 'kv_scores_repeated_by': 'circuit-graph-engine'})
    >>> [name for name, e in data["edges"].items() if e["in_graph"]]
    ['input->logits', 'a0.h0->m0', 'a0.h0->logits', 'm0->logits']
    """
    return MibGraph.for_export(
        source, fraction=fraction, by=by, scored=scored, d_model=d_model, provenance=provenance
    ).to_json()


def from_mib_json(data: Any, *, kv_heads: int | None = None, source: str = "graph JSON") -> MibImport:
    """The scored graph and circuit of an EAP-IG graph JSON object.

    Parameters
    ----------
    data : dict
        As ``json.load`` gives it.
    kv_heads : int, optional
        Key/value heads per layer when ``cfg`` has no ``n_key_value_heads``.
    source : str
        The file, for error messages.

    Raises
    ------
    InputError
        A field is missing or malformed, a name is not a node, an edge is not
        an edge of the graph, or the file is neuron-level; the message names
        the file, the field, the value and what is valid.

    Examples
    --------
    A file as EAP-IG writes it, for one layer with two heads (edges left out
    have score 0 and are not in the graph):

    >>> data = {"cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
    ...         "nodes": {"input": {"in_graph": True}, "logits": {"in_graph": True}},
    ...         "edges": {"input->logits": {"score": 0.5, "in_graph": True},
    ...                   "input->a0.h1<k>": {"score": -1.0, "in_graph": False}}}
    >>> back = from_mib_json(data)
    >>> back.graph.shape, back.graph.scores[0, back.graph.shape.k_receiver(0, 1)]
    (GraphShape(n_layers=1, n_heads=2, n_kv_heads=2, parallel=False), np.float32(-1.0))
    >>> back.circuit.edges, back.ours
    ({('input', 'logits'): 0.5}, False)

    Read as grouped-query attention with one key/value head, the two heads'
    ``<k>`` scores are summed into it:

    >>> data["edges"]["input->a0.h0<k>"] = {"score": -0.25, "in_graph": False}
    >>> g = from_mib_json(data, kv_heads=1).graph
    >>> float(g.scores[0, g.shape.k_receiver(0, 0)])
    -1.25
    >>> bad = {"cfg": data["cfg"], "nodes": {}, "edges": {"m0->a0.h0<q>": {}}}
    >>> from_mib_json(bad, source="g.json")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.json: edges['m0->a0.h0<q>'] is not an edge of a graph with 1 layers
    and 2 heads: 'm0' does not come before 'a0.h0<q>' in the forward order
    """
    return MibGraph.from_json(data, kv_heads=kv_heads, source=source).to_ours()


def write_mib_json(path: str | Path, source: ScoredGraph | Circuit | MibGraph, **options: Any) -> Path:
    """Write :func:`to_mib_json` of ``source`` (or a :class:`MibGraph`) to ``path`` atomically."""
    data = source.to_json() if isinstance(source, MibGraph) else to_mib_json(source, **options)
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError as error:
        raise InputError(
            f"{path}: cannot be written as JSON ({error}); metadata and scores must be finite"
        ) from None
    atomic_write_text(path, text)
    return Path(path)


def read_mib_json(path: str | Path, *, kv_heads: int | None = None) -> MibImport:
    """:func:`from_mib_json` of a file; errors name the file."""
    return from_mib_json(read_json(path, what="EAP-IG graph JSON file"), kv_heads=kv_heads, source=str(path))
