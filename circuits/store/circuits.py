"""Circuits on disk: node-link JSON (``circuits.circuit/1``) of a circuit's networkx view, read back exactly.

A circuit file is :func:`networkx.node_link_data` of
:meth:`Circuit.to_networkx <circuits.circuit.Circuit.to_networkx>` with the
format's name as the first graph attribute. :func:`write_circuit` writes it
atomically; :func:`read_circuit` reads it back, and every reader here checks
what a file holds before anything is built from it (the structure, the shape's
bounds, every name against the shape, every number finite, the provenance's
fields), so a careless or hostile file is one :class:`~circuits.vocab.InputError`
naming the file and the field.

>>> from circuits.circuit import Circuit
>>> from circuits.graph import GraphShape
>>> c = Circuit(GraphShape(1, 1, 1), {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): -2.0})
>>> circuit_from_json(circuit_to_json(c)) == c
True
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from circuits.checks import (
    check_metadata,
    check_node_link,
    check_params,
    finite_number,
    is_number,
    name_problem,
    non_finite,
    shape_ranges,
    short,
)
from circuits.circuit import Circuit, Edge, graph_index
from circuits.graph import ROLE_POSITIONS, SUMMED, GraphShape, check_positions, upgrade_metadata
from circuits.io import atomic_write_text
from circuits.vocab import InputError

__all__ = [
    "CIRCUIT_FORMAT",
    "circuit_from_dict",
    "circuit_from_json",
    "circuit_from_networkx",
    "circuit_to_dict",
    "circuit_to_json",
    "read_circuit",
    "write_circuit",
]

CIRCUIT_FORMAT = "circuits.circuit/1"
"""The ``format`` graph attribute of every circuit file."""


def write_circuit(circuit: Circuit, path: str | Path) -> Path:
    """Write ``circuit``'s JSON to ``path`` atomically (folders made as needed); returns the path."""
    atomic_write_text(path, circuit_to_json(circuit))
    return Path(path)


def read_circuit(path: str | Path) -> Circuit:
    """The circuit of a file written by :func:`write_circuit`; any other file is an :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such circuit file (write one with `circuits extract`)")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}: not UTF-8 text (line {line}, byte {error.start} is "
            f"0x{raw[error.start]:02x}); not a circuit file written by `circuits extract`"
        ) from None
    return circuit_from_json(text, source=str(path))


def circuit_to_json(circuit: Circuit, *, indent: int | None = 1) -> str:
    """The JSON text of :func:`circuit_to_dict`; a non-finite faithfulness is an error (JSON has no NaN)."""
    faith = circuit.faithfulness
    if faith is not None and not math.isfinite(faith):
        raise InputError(f"faithfulness {faith} cannot be written to JSON; use None")
    return json.dumps(circuit_to_dict(circuit), indent=indent, allow_nan=False)


def circuit_from_json(text: str, *, source: str = "circuit") -> Circuit:
    """The circuit of JSON written by :func:`circuit_to_json` (a byte-order mark is allowed).

    See :func:`circuit_from_dict`; every error starts with ``source``.
    """
    try:
        data = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: malformed JSON at line {error.lineno}: {error.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: malformed JSON: nested too deeply to be a circuit") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{source}: malformed JSON: {error}") from None
    return circuit_from_dict(data, source=source)


def circuit_to_dict(circuit: Circuit) -> dict[str, Any]:
    """Node-link data of the circuit's networkx view, the format first among its graph attributes."""
    import networkx as nx

    data = nx.node_link_data(circuit.to_networkx(), edges="edges")
    data["graph"] = {"format": CIRCUIT_FORMAT, **data["graph"]}
    return data


def circuit_from_dict(data: Any, *, source: str = "circuit") -> Circuit:
    """The circuit of node-link data written by :func:`circuit_to_dict`; every error starts with ``source``.

    The structure (``graph``, ``nodes`` and ``edges`` and their fields) and
    the format are checked before networkx reads it, and no number anywhere
    may be NaN or infinite (Python writes ``NaN`` into JSON; it is refused,
    naming the field); then :func:`circuit_from_networkx` checks the values.

    >>> from circuits.circuit import Circuit
    >>> data = circuit_to_dict(Circuit(GraphShape(1, 1, 1), {("input", "logits"): -1.0}))
    >>> data["edges"][0]["score"] = float("nan")
    >>> circuit_from_dict(data, source="c.json")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: c.json: edge ('input', 'logits'): 'score' is NaN; numbers must be finite
    >>> data["edges"][0]["score"] = "-1.0"
    >>> circuit_from_dict(data, source="c.json")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: c.json: edge ('input', 'logits'): 'score' is '-1.0'; valid: a finite number
    """
    import networkx as nx

    if not isinstance(data, dict) or "nodes" not in data or "edges" not in data:
        raise InputError(
            f"{source}: not circuit JSON (expected node-link data with 'nodes' "
            "and 'edges', as `circuits extract` and circuits.store.write_circuit write it)"
        )
    try:
        check_node_link(data)
        found = data["graph"].get("format")
        if found != CIRCUIT_FORMAT:
            raise InputError(f"graph attribute 'format' is {found!r}, expected {CIRCUIT_FORMAT!r}")
    except InputError as error:
        raise InputError(f"{source}: {error}") from None
    try:
        g = nx.node_link_graph(data, edges="edges")
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{source}: malformed node-link data: {error!r}") from None
    try:
        return circuit_from_networkx(g)
    except InputError as error:
        raise InputError(f"{source}: {error}") from None


def circuit_from_networkx(g: Any) -> Circuit:
    """The circuit of a ``DiGraph`` made by :meth:`Circuit.to_networkx` (internal edges are skipped).

    Every field is checked before it is used: the shape against sane
    bounds (:meth:`GraphShape.from_dict`) before anything of its size is
    allocated, every node's name against the shape, every score (edge,
    node, role, faithfulness, numbers in ``params``) is a finite number,
    and the provenance's fields the engine reads have their types
    (:func:`~circuits.checks.check_metadata`).
    """
    meta = g.graph
    if not isinstance(meta, dict):
        raise InputError(f"the graph attributes must be an object, not {type(meta).__name__}")
    if "shape" not in meta:
        raise InputError(
            "graph attribute 'shape' is missing; it holds n_layers, n_heads, n_kv_heads, parallel"
        )
    shape = GraphShape.from_dict(meta["shape"], source="graph attribute 'shape' is invalid")
    size = shape_ranges(shape)
    for u, v, data in g.edges(data=True):
        for name, side in ((u, "sender"), (v, "receiver")):
            why = None if data.get("internal") else name_problem(name, shape, side)
            if why is not None:
                raise InputError(
                    f"edge ({u!r}, {v!r}): {name!r} is not a {side} of the graph ({size}): {why}"
                )
    senders, receivers, _ = graph_index(shape)
    for node in g.nodes:
        if not isinstance(node, str) or (node not in senders and node not in receivers):
            raise InputError(
                f"node {node!r} is not a node of the graph ({size}): "
                f"{name_problem(node, shape) or 'unknown name'}"
            )
    edges = {}
    position_aware = check_positions(meta.get("positions", SUMMED)) == ROLE_POSITIONS
    roles: dict[Edge, dict[str, float]] | None = {} if position_aware else None
    for u, v, data in g.edges(data=True):
        if data.get("internal"):
            continue
        if "score" not in data:
            raise InputError(f"edge ({u!r}, {v!r}) has no 'score' attribute")
        edges[(u, v)] = finite_number(data["score"], f"edge ({u!r}, {v!r}): 'score'")
        if roles is not None:
            kept = data.get("roles")
            if not isinstance(kept, dict) or not all(is_number(x) for x in kept.values()):
                raise InputError(
                    f"position-aware edge ({u!r}, {v!r}) needs 'roles': {{role: score}} with "
                    f"finite numbers as scores, not {short(kept)}"
                )
            roles[(u, v)] = kept
    node_scores = {
        n: finite_number(d["score"], f"node {n!r}: 'score'")
        for n, d in g.nodes(data=True)
        if d.get("score") is not None
    }
    provenance = meta.get("provenance")
    if not isinstance(provenance, dict | None):
        raise InputError(f"graph attribute 'provenance' must be an object, not {short(provenance)}")
    provenance = upgrade_metadata(dict(provenance or {}))
    check_metadata(provenance, "graph attribute 'provenance'", names_may_be_null=True)
    extract_method = meta.get("extract_method", meta.get("method", "custom"))  # "method" before 0.2
    name = meta.get("name", "")
    for key, value in (("extract_method", extract_method), ("name", name)):
        if not isinstance(value, str):
            raise InputError(f"graph attribute {key!r} must be a string, not {short(value)}")
    params = meta.get("params") or {}
    if not isinstance(params, dict):
        raise InputError(f"graph attribute 'params' must be an object, not {short(params)}")
    where = non_finite(params)
    if where is not None:
        raise InputError(
            f"graph attribute 'params': field {where[0]!r} is {where[1]}; numbers must be finite"
        )
    check_params(params)
    faithfulness = meta.get("faithfulness")
    if faithfulness is not None:
        faithfulness = finite_number(faithfulness, "graph attribute 'faithfulness'", "a number or null")
    return Circuit(
        shape, edges, node_scores, provenance, str(extract_method), params, faithfulness, str(name), roles
    )
