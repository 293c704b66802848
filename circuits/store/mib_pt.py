"""The torch form of EAP-IG's graph files (``Graph.to_pt`` / ``from_pt``); torch is imported on use.

A ``.pt`` file is one ``torch.save``'d dict (what EAP-IG's ``to_pt`` writes):

- ``cfg``: the same config dict as the JSON form (:func:`circuits.store.mib_format.parse_cfg`);
- ``src_nodes``: list of sender names (``input``, per layer its heads and MLP);
  EAP-IG's docstring calls it a dict, its code writes a list; both are read;
- ``dst_nodes``: list of receiver names, ungrouped
  (:func:`circuits.store.mib_format.mib_receiver_names`);
- ``edges_scores``: float32 tensor ``[len(src_nodes), len(dst_nodes)]``, 0 off the edges;
- ``edges_in_graph``: bool tensor of the same shape;
- ``nodes_in_graph``: bool tensor ``[len(src_nodes)]`` (derived from the edges,
  see :mod:`circuits.store.mib_format`; ignored on import);
- ``nodes_scores`` (optional): float tensor ``[len(src_nodes)]``, NaN where a
  node has no score; ``neurons_in_graph`` / ``neurons_scores`` (optional,
  neuron-level graphs: refused on import).

Everything about the mapping (grouped-query attention, sizes, sign,
``d_model``, our metadata block, which this module stores under the same key
as a plain dict) is in :mod:`circuits.store.mib` and the modules it names. Files are written with
``torch.save`` of plain tensors, lists, dicts, strings and numbers only, and
read only with ``torch.load(path, map_location="cpu", weights_only=True)``: a
file holding any other pickled object is refused. Edge scores are stored as
float32, as EAP-IG keeps them; scores that are not float32 values (a
hand-made circuit's) come back rounded to float32. Scores at entries that
are not edges are ignored on import.

Examples
--------
>>> import tempfile, pathlib
>>> from circuits import Circuit, GraphShape
>>> circuit = Circuit(GraphShape(1, 2, 1), {("input", "a0.h0<v>"): -0.5, ("m0", "logits"): 0.25})
>>> path = write_mib_pt(pathlib.Path(tempfile.mkdtemp()) / "c.pt", circuit)
>>> back = read_mib_pt(path)
>>> back.circuit == circuit, back.ours
(True, True)
"""

from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.io import atomic_write_bytes
from circuits.store.mib_format import ENGINE_KEY, check_engine, mib_layout, parse_cfg
from circuits.store.mib_graph import MibGraph, MibImport
from circuits.vocab import InputError

__all__ = ["PT_KEYS", "from_mib_pt", "read_mib_pt", "to_mib_pt", "write_mib_pt"]

PT_KEYS = ("cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph")


def _mib(source: ScoredGraph | Circuit | MibGraph, options: dict[str, Any]) -> MibGraph:
    if isinstance(source, MibGraph):
        if options:
            raise InputError(f"options {sorted(options)} apply to a scored graph or circuit, not a MibGraph")
        return source
    return MibGraph.for_export(source, **options)


def to_mib_pt(source: ScoredGraph | Circuit | MibGraph, **options: Any) -> dict[str, Any]:
    """The dict EAP-IG's ``Graph.from_pt`` reads, of plain tensors, lists and dicts.

    ``options`` are those of :func:`circuits.store.mib_json.to_mib_json`
    (``scored``, ``d_model``, ``fraction``, ``by``, ``provenance``).

    >>> import numpy as np
    >>> from circuits import GraphShape, ScoredGraph
    >>> d = to_mib_pt(ScoredGraph(GraphShape(2, 2, 1), np.ones((7, 11))), fraction=0.1)
    >>> d["edges_scores"].dtype, tuple(d["edges_scores"].shape), int(d["edges_in_graph"].sum())
    (torch.float32, (7, 15), 4)
    >>> d["src_nodes"][:3], d["dst_nodes"][2:4]
    (['input', 'a0.h0', 'a0.h1'], ['a0.h0<k>', 'a0.h1<k>'])
    """
    import torch

    mib = _mib(source, options)
    lay = mib.layout
    data: dict[str, Any] = {
        "cfg": dict(mib.cfg),
        "src_nodes": list(lay.senders),
        "dst_nodes": list(lay.receivers),
        "edges_scores": torch.from_numpy(mib.scores.astype(np.float32)),
        "edges_in_graph": torch.from_numpy(np.array(mib.in_graph, dtype=bool)),
        "nodes_in_graph": torch.from_numpy(mib.nodes_in_graph()),
    }
    if mib.node_scores:
        values = np.full(len(lay.senders), np.nan)
        for i, name in enumerate(lay.senders):
            if name in mib.node_scores:
                values[i] = mib.node_scores[name]
        data["nodes_scores"] = torch.from_numpy(values)
    if mib.engine is not None:
        data[ENGINE_KEY] = mib.engine
    return data


def write_mib_pt(path: str | Path, source: ScoredGraph | Circuit | MibGraph, **options: Any) -> Path:
    """``torch.save`` :func:`to_mib_pt` of ``source`` to ``path``, atomically."""
    import torch

    buffer = io.BytesIO()
    torch.save(to_mib_pt(source, **options), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _refusal(error: BaseException) -> str:
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, flags=re.S)
    reason = (match.group(1) if match else text.splitlines()[0] if text else type(error).__name__).strip()
    return reason.split(". ")[0].rstrip(".")


def read_mib_pt(path: str | Path, *, kv_heads: int | None = None) -> MibImport:
    """The scored graph and circuit of a ``.pt`` graph file, loaded with ``weights_only=True``.

    Raises
    ------
    InputError
        The file is missing, is not a torch file, holds objects other than
        tensors and plain containers (``weights_only`` refuses them), or a
        field is missing or malformed (:func:`from_mib_pt`).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such EAP-IG graph .pt file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise InputError(
            f"{path}: refused: torch.load(weights_only=True) reads only tensors and plain "
            f"containers, and this file holds something else ({_refusal(error)}); "
            "an EAP-IG graph file is a dict of tensors, lists and dicts"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: not a readable torch file ({_refusal(error)})") from None
    return from_mib_pt(data, kv_heads=kv_heads, source=str(path))


def _names(data: dict[str, Any], key: str, expected: tuple[str, ...], source: str) -> None:
    names = data[key]
    if isinstance(names, dict):
        names = list(names)
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InputError(
            f"{source}: field {key!r} is a {type(names).__name__}; it must be a list of node names"
        )
    if list(names) != list(expected):
        at = next(
            (i for i, (a, b) in enumerate(zip(names, expected, strict=False)) if a != b),
            min(len(names), len(expected)),
        )
        got = names[at] if at < len(names) else "(end of list)"
        want = expected[at] if at < len(expected) else "(end of list)"
        raise InputError(
            f"{source}: field {key!r} has {len(names)} names and {got!r} at position {at}; "
            f"the cfg's graph has {len(expected)}, with {want!r} there"
        )


def _array(data: dict[str, Any], key: str, shape: tuple[int, ...], source: str, *, flag: bool) -> np.ndarray:
    import torch

    value = data[key]
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{source}: field {key!r} is a {type(value).__name__}; it must be a tensor")
    if tuple(value.shape) != shape:
        raise InputError(
            f"{source}: field {key!r} has shape {tuple(value.shape)}; the cfg's graph needs {shape}"
        )
    if flag:
        if value.dtype != torch.bool:
            if (
                value.is_floating_point()
                or value.is_complex()
                or not bool(((value == 0) | (value == 1)).all())
            ):
                raise InputError(f"{source}: field {key!r} has dtype {value.dtype}; it must be bool (or 0/1)")
            value = value != 0
        return value.numpy().astype(bool)
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
        raise InputError(f"{source}: field {key!r} has dtype {value.dtype}; it must be a float tensor")
    return value.detach().to(torch.float64).numpy()


def from_mib_pt(data: Any, *, kv_heads: int | None = None, source: str = "graph .pt") -> MibImport:
    """The scored graph and circuit of a loaded ``.pt`` dict (see the module docstring).

    Raises
    ------
    InputError
        A key is missing, a name list differs from the cfg's graph, a tensor
        has the wrong type or shape, an entry that is not an edge is marked in
        the graph, an edge's score is not finite, or the graph is neuron-level.

    Examples
    --------
    A file built by hand from plain tensors, as EAP-IG's ``to_pt`` writes it:

    >>> import torch
    >>> from circuits import GraphShape
    >>> from circuits.store.mib_format import mib_receiver_names
    >>> shape = GraphShape(1, 2, 2)
    >>> scores = torch.zeros(4, 8)
    >>> scores[0, 7] = 2.0  # input -> logits
    >>> data = {"cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
    ...         "src_nodes": shape.sender_names(), "dst_nodes": mib_receiver_names(shape),
    ...         "edges_scores": scores, "edges_in_graph": scores != 0,
    ...         "nodes_in_graph": torch.tensor([True, False, False, False])}
    >>> back = from_mib_pt(data)
    >>> back.circuit.edges, float(back.graph.scores[0, shape.logits_receiver])
    ({('input', 'logits'): 2.0}, 2.0)
    >>> del data["dst_nodes"]
    >>> from_mib_pt(data, source="g.pt")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.pt: field 'dst_nodes' is missing; an EAP-IG graph .pt file has
    cfg, src_nodes, dst_nodes, edges_scores, edges_in_graph, nodes_in_graph
    """
    if not isinstance(data, dict):
        raise InputError(f"{source}: holds a {type(data).__name__}; an EAP-IG graph .pt file holds a dict")
    for key in PT_KEYS:
        if key not in data:
            raise InputError(
                f"{source}: field {key!r} is missing; an EAP-IG graph .pt file has {', '.join(PT_KEYS)}"
            )
    for key in ("neurons_in_graph", "neurons_scores"):
        if data.get(key) is not None:
            raise InputError(
                f"{source}: has {key!r}: neuron-level graphs cannot be imported; "
                "this engine reads edge-level graphs"
            )
    shape, repeated = parse_cfg(data["cfg"], kv_heads=kv_heads, source=source)
    lay = mib_layout(shape)
    _names(data, "src_nodes", lay.senders, source)
    _names(data, "dst_nodes", lay.receivers, source)
    full = (len(lay.senders), len(lay.receivers))
    scores = _array(data, "edges_scores", full, source, flag=False)
    in_graph = _array(data, "edges_in_graph", full, source, flag=True)
    _array(data, "nodes_in_graph", (len(lay.senders),), source, flag=True)
    stray = in_graph & ~lay.mask
    if stray.any():
        s, r = (int(i) for i in np.argwhere(stray)[0])
        raise InputError(
            f"{source}: edges_in_graph[{s}, {r}] ({lay.senders[s]}->{lay.receivers[r]}) is true but "
            "is not an edge: a sender must come before its receiver in the forward order"
        )
    bad = lay.mask & ~np.isfinite(scores)
    if bad.any():
        s, r = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{source}: edges_scores[{s}, {r}] ({lay.senders[s]}->{lay.receivers[r]}) is "
            f"{scores[s, r]}; edge scores must be finite"
        )
    node_scores: dict[str, float] = {}
    if data.get("nodes_scores") is not None:
        values = _array(data, "nodes_scores", (len(lay.senders),), source, flag=False)
        if np.isinf(values).any():
            raise InputError(
                f"{source}: field 'nodes_scores' has infinite values; a node score is a number "
                "(NaN: not scored)"
            )
        node_scores = {n: float(v) for n, v in zip(lay.senders, values, strict=True) if not math.isnan(v)}
    engine = check_engine(data.get(ENGINE_KEY), shape, source)
    scores = np.where(lay.mask, scores, 0.0)
    return MibGraph(shape, scores, in_graph, dict(data["cfg"]), node_scores, engine, repeated).to_ours()
