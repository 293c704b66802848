"""The EAP-IG / MIB graph format itself: names, order, ``cfg``, sizes and checks (torch-free).

What the EAP-IG library (``hannamw/EAP-IG``, ``eap/graph.py``) writes, and
this package follows; :mod:`circuits.store.mib` is the overview.

The JSON form
-------------
One object with three keys::

    {"cfg":   {"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": false, "d_model": 32},
     "nodes": {"input": {"in_graph": true}, "a0.h0": {"in_graph": false, "score": -0.4}, ...,
               "logits": {"in_graph": true}},
     "edges": {"input->a0.h0<q>": {"score": -0.12, "in_graph": false}, ...,
               "m1->logits": {"score": 0.3, "in_graph": true}}}

Node names are ours (``input``, ``a{l}.h{h}``, ``m{l}``, ``logits``) and an
edge is named ``"{sender}->{receiver}"`` with our receiver names
(``a{l}.h{h}<q>``, ``<k>``, ``<v>``, ``m{l}``, ``logits``). What their code
does, and this package follows:

- ``cfg`` is the graph's config dict as is: ``n_layers``, ``n_heads``,
  ``parallel_attn_mlp`` and ``d_model`` are read by their loader (``d_model``
  only sizes neuron-level arrays); further keys are kept and ignored.
- ``to_json`` writes every node and every edge. ``from_json`` starts from an
  empty graph and sets the nodes and edges it finds, so a missing edge has
  score 0 and is not in the graph; it needs ``in_graph`` on every node but
  ``logits``, and both ``score`` and ``in_graph`` on every edge it finds.
- A node's ``score`` is written only when the graph has node scores; a node's
  ``in_graph`` is derived from the edges: a node is in the graph when it sends
  an in-graph edge and receives one (``input`` counts as receiving, ``logits``
  is always in). Their evaluation recomputes it (``Graph.prune``) before it
  runs, so on import node ``in_graph`` is ignored and the circuit is read from
  the edges alone; on export it is computed by that rule.
- Senders are ordered as ours (``input``, then per layer its heads and its
  MLP); receivers are, per layer, ``n_heads`` ``<q>``, ``n_heads`` ``<k>``,
  ``n_heads`` ``<v>`` and the MLP, then ``logits`` (:class:`Layout`). An edge
  exists exactly when it exists in our graph (``parallel_attn_mlp`` is our
  ``parallel``). A ``<k>`` or ``<v>`` receiver per *query* head is what
  :mod:`circuits.store.mib_kv` maps to ours.

Circuit sizes
-------------
:data:`MIB_SIZES` are the ten edge fractions MIB's evaluation code uses
(0.1 % to 100 %; its README's submission notes list 0 % to 50 % instead,
this package follows the code). A size is counted as MIB counts it:
``int(fraction * n)`` with ``n`` the number of edges of the *ungrouped*
graph in the file (:func:`mib_n_edges`), since that is the graph the file is
judged in. The top edges are ranked in that graph (key/value copies carry
their edge's score, so they rank together), and the last key/value group at
the boundary may be cut.

``d_model``
-----------
Their config needs ``d_model``. It is taken from the ``d_model`` argument
(``--d-model``), else the metadata's ``d_model``, else :data:`KNOWN_D_MODEL`
by the metadata's ``model``, else 0 (their loader accepts 0: it only sizes
neuron-level arrays, which these files do not use); see :func:`resolve_d_model`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.checks import is_number, is_whole
from circuits.graph import GraphShape, edge_mask
from circuits.vocab import LOGITS, InputError, mlp_name, qkv_name

__all__ = [
    "ENGINE_FORMAT",
    "ENGINE_KEY",
    "ENGINE_NAME",
    "FORMATS",
    "KNOWN_D_MODEL",
    "KV_MARKER",
    "MIB_SIZES",
    "NEURON_KEYS",
    "Layout",
    "bad_value",
    "check_engine",
    "describe_shape",
    "mib_cfg",
    "mib_layout",
    "mib_n_edges",
    "mib_receiver_names",
    "mib_size",
    "parse_cfg",
    "resolve_d_model",
    "size_label",
    "valid_receivers",
    "valid_senders",
]

# MIB's circuit sizes as fractions of the edges. The same values as
# circuits.evaluate.FRACTIONS, defined again here because that module imports torch.
MIB_SIZES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
FORMATS = ("mib-json", "mib-pt")
ENGINE_KEY = "circuit_graph_engine"
ENGINE_NAME = "circuit-graph-engine"
ENGINE_FORMAT = "circuits.mib/1"
KV_MARKER = "kv_scores_repeated_by"
# d_model of the models circuits.models.catalog lists (the catalog holds no numbers), for
# scored graphs whose metadata has no d_model.
KNOWN_D_MODEL = {"smollm2-135m": 576, "tiny-gpt2": 32, "tiny-llama": 32, "gpt2-small-random": 768}
NEURON_KEYS = ("neurons", "neurons_scores")


# ---------------------------------------------------------------- the ungrouped layout
@dataclass(frozen=True)
class Layout:
    """Our graph seen the way EAP-IG lays it out (k/v receivers per query head)."""

    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    ours: np.ndarray  # [n_mib_receivers]: our column of each of their columns
    mask: np.ndarray  # [senders, n_mib_receivers]: which entries are edges
    inputs: np.ndarray  # [senders, n_mib_receivers]: column c is an input of sender s's node


@functools.lru_cache(maxsize=16)
def mib_layout(shape: GraphShape) -> Layout:
    """The (cached, read-only) :class:`Layout` of ``shape``."""
    n, group = shape.n_heads, shape.group
    names: list[str] = []
    ours: list[int] = []
    inputs = np.zeros((shape.n_senders, shape.n_layers * (3 * n + 1) + 1), dtype=bool)
    for layer in range(shape.n_layers):
        for letter in "qkv":
            for head in range(n):
                inputs[shape.head_sender(layer, head), len(names)] = True
                names.append(qkv_name(layer, head, letter))
                if letter == "q":
                    ours.append(shape.q_receiver(layer, head))
                elif letter == "k":
                    ours.append(shape.k_receiver(layer, head // group))
                else:
                    ours.append(shape.v_receiver(layer, head // group))
        inputs[shape.mlp_sender(layer), len(names)] = True
        names.append(mlp_name(layer))
        ours.append(shape.mlp_receiver(layer))
    names.append(LOGITS)
    ours.append(shape.logits_receiver)
    columns = np.array(ours, dtype=np.intp)
    mask = edge_mask(shape)[:, columns]
    for array in (columns, mask, inputs):
        array.setflags(write=False)
    return Layout(tuple(shape.sender_names()), tuple(names), columns, mask, inputs)


def mib_receiver_names(shape: GraphShape) -> list[str]:
    """The receivers of ``shape`` as EAP-IG orders them (``dst_nodes`` of its ``.pt`` files).

    >>> mib_receiver_names(GraphShape(1, 2, 1))
    ['a0.h0<q>', 'a0.h1<q>', 'a0.h0<k>', 'a0.h1<k>', 'a0.h0<v>', 'a0.h1<v>', 'm0', 'logits']
    """
    return list(mib_layout(shape).receivers)


def mib_n_edges(shape: GraphShape) -> int:
    """Edges of ``shape`` once ungrouped (what MIB counts sizes in).

    >>> shape = GraphShape(30, 9, 3)  # SmolLM2-135M
    >>> mib_n_edges(shape), mib_n_edges(GraphShape(12, 12, 12))
    (123211, 32491)
    """
    return int(mib_layout(shape).mask.sum())


def mib_size(n_edges: int, fraction: float) -> int:
    """Edges in a circuit of ``fraction`` of ``n_edges``, rounded down as MIB does.

    >>> [mib_size(32491, f) for f in MIB_SIZES]
    [32, 64, 162, 324, 649, 1624, 3249, 6498, 16245, 32491]
    """
    if not 0.0 <= fraction <= 1.0:
        raise InputError(f"a circuit size is a fraction of the edges in [0, 1], not {fraction}")
    return int(fraction * n_edges)


def size_label(fraction: float) -> str:
    """A size as a percentage for file names: ``0.1``, ``2``, ``100``.

    >>> [size_label(f) for f in MIB_SIZES]
    ['0.1', '0.2', '0.5', '1', '2', '5', '10', '20', '50', '100']
    """
    return f"{round(fraction * 100, 6):g}"


# ---------------------------------------------------------------- validation helpers
def bad_value(source: str, where: str, value: Any, valid: str) -> InputError:
    """The error for ``value`` at ``where`` in ``source`` (shortened), saying what is ``valid``."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return InputError(f"{source}: {where} is {text}; {valid}")


def describe_shape(shape: GraphShape) -> str:
    """``"{n} layers and {h} heads"``, for error messages."""
    return f"{shape.n_layers} layers and {shape.n_heads} heads"


def valid_senders(shape: GraphShape) -> str:
    """What a sender name may be in a graph of ``shape``, for error messages."""
    return (
        f"senders of a graph with {describe_shape(shape)} are 'input', 'a{{layer}}.h{{head}}' and "
        f"'m{{layer}}' with layer < {shape.n_layers} and head < {shape.n_heads}"
    )


def valid_receivers(shape: GraphShape) -> str:
    """What a receiver name may be in a graph of ``shape``, for error messages."""
    return (
        f"receivers of a graph with {describe_shape(shape)} are 'a{{layer}}.h{{head}}<q|k|v>', "
        f"'m{{layer}}' and 'logits' with layer < {shape.n_layers} and head < {shape.n_heads}"
    )


# ---------------------------------------------------------------- cfg
def parse_cfg(
    cfg: Any, *, kv_heads: int | None = None, source: str = "graph file"
) -> tuple[GraphShape, bool]:
    """The graph shape a file's ``cfg`` describes, and whether its k/v scores are our repeats.

    Parameters
    ----------
    cfg : dict
        The file's config: ``n_layers``, ``n_heads``, ``parallel_attn_mlp``
        (required), ``d_model`` and ``n_key_value_heads`` (optional).
    kv_heads : int, optional
        Key/value heads per layer when ``cfg`` has no ``n_key_value_heads``
        (default ``n_heads``: multi-head attention).
    source : str
        The file, for error messages.

    Raises
    ------
    InputError
        A key is missing or has a wrong type or value, or ``kv_heads``
        contradicts ``cfg``.

    Examples
    --------
    >>> parse_cfg({"n_layers": 2, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 32}, kv_heads=2)
    (GraphShape(n_layers=2, n_heads=4, n_kv_heads=2, parallel=False), False)
    >>> parse_cfg({"n_layers": 2, "n_heads": 4}, source="g.json")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.json: cfg has no 'parallel_attn_mlp';
    EAP-IG's cfg needs n_layers, n_heads, parallel_attn_mlp and d_model
    """
    if not isinstance(cfg, dict):
        raise bad_value(
            source, "cfg", cfg, "it must be an object with n_layers, n_heads, parallel_attn_mlp and d_model"
        )
    for key in ("n_layers", "n_heads", "parallel_attn_mlp"):
        if key not in cfg:
            raise InputError(
                f"{source}: cfg has no {key!r}; EAP-IG's cfg needs n_layers, n_heads, "
                "parallel_attn_mlp and d_model"
            )
    for key in ("n_layers", "n_heads"):
        if not is_whole(cfg[key]) or cfg[key] < 1:
            raise bad_value(source, f"cfg[{key!r}]", cfg[key], "it must be a positive integer")
    if not isinstance(cfg["parallel_attn_mlp"], bool):
        raise bad_value(
            source, "cfg['parallel_attn_mlp']", cfg["parallel_attn_mlp"], "it must be true or false"
        )
    d_model = cfg.get("d_model")
    if d_model is not None and (not is_whole(d_model) or d_model < 0):
        raise bad_value(source, "cfg['d_model']", d_model, "it must be a non-negative integer")
    n_heads = cfg["n_heads"]
    stated = cfg.get("n_key_value_heads")
    if stated is not None:
        if not is_whole(stated) or stated < 1 or n_heads % stated:
            raise bad_value(
                source,
                "cfg['n_key_value_heads']",
                stated,
                f"it must be a positive divisor of n_heads ({n_heads}) or null",
            )
        if kv_heads is not None and kv_heads != stated:
            raise InputError(
                f"{source}: --kv-heads {kv_heads} contradicts cfg['n_key_value_heads'] = {stated}; "
                "leave --kv-heads out"
            )
    elif kv_heads is not None and (not is_whole(kv_heads) or kv_heads < 1 or n_heads % kv_heads):
        raise InputError(f"--kv-heads must be a positive divisor of n_heads ({n_heads}), not {kv_heads}")
    n_kv = stated if stated is not None else (kv_heads if kv_heads is not None else n_heads)
    shape = GraphShape(cfg["n_layers"], n_heads, n_kv, cfg["parallel_attn_mlp"]).check_bounds(
        f"{source}: cfg"
    )
    return shape, cfg.get(KV_MARKER) == ENGINE_NAME


def resolve_d_model(metadata: dict[str, Any], d_model: int | None = None) -> int:
    """``cfg``'s ``d_model``: the argument, else ``metadata["d_model"]``, else by the model's name, else 0.

    >>> resolve_d_model({"model": "tiny-llama", "d_model": 64}), resolve_d_model({"model": "tiny-llama"})
    (64, 32)
    >>> resolve_d_model({"model": "tiny-llama", "d_model": 64}, 99), resolve_d_model({"model": "other"})
    (99, 0)
    """
    if d_model is not None:
        if not is_whole(d_model) or d_model < 0:
            raise InputError(f"--d-model must be a non-negative integer, not {d_model!r}")
        return d_model
    stated = metadata.get("d_model")
    if is_whole(stated) and stated >= 0:
        return int(stated)
    return KNOWN_D_MODEL.get(str(metadata.get("model")), 0)


def mib_cfg(shape: GraphShape, metadata: dict[str, Any], d_model: int | None = None) -> dict[str, Any]:
    """The ``cfg`` this engine writes for ``shape``: EAP-IG's keys, the key/value heads and our marker.

    >>> mib_cfg(GraphShape(1, 2, 1), {"d_model": 8})  # doctest: +NORMALIZE_WHITESPACE
    {'n_layers': 1, 'n_heads': 2, 'parallel_attn_mlp': False, 'd_model': 8, 'n_key_value_heads': 1,
     'kv_scores_repeated_by': 'circuit-graph-engine'}
    """
    return {
        "n_layers": shape.n_layers,
        "n_heads": shape.n_heads,
        "parallel_attn_mlp": shape.parallel,
        "d_model": resolve_d_model(metadata, d_model),
        "n_key_value_heads": shape.n_kv_heads,
        KV_MARKER: ENGINE_NAME,
    }


# ---------------------------------------------------------------- our metadata block
def check_engine(block: Any, shape: GraphShape, source: str) -> dict[str, Any] | None:
    """Our metadata block (``ENGINE_KEY``), checked against the file's shape (``None`` when absent)."""
    if block is None:
        return None
    where = f"{ENGINE_KEY!r}"
    if not isinstance(block, dict) or block.get("format") != ENGINE_FORMAT:
        raise bad_value(
            source,
            where,
            block,
            f"this engine writes an object with format {ENGINE_FORMAT!r}; "
            "remove the key to read the file as a foreign graph",
        )
    if block.get("shape") != shape.as_dict():
        raise bad_value(
            source, f"{where}['shape']", block.get("shape"), f"the file's cfg describes {shape.as_dict()}"
        )
    if not isinstance(block.get("metadata"), dict):
        raise bad_value(source, f"{where}['metadata']", block.get("metadata"), "it must be an object")
    info = block.get("circuit")
    if info is not None:
        need = {"name": str, "extract_method": str, "params": dict, "provenance": dict}
        if not isinstance(info, dict):
            raise bad_value(source, f"{where}['circuit']", info, "it must be an object or null")
        for key, kind in need.items():
            if not isinstance(info.get(key), kind):
                raise bad_value(
                    source, f"{where}['circuit'][{key!r}]", info.get(key), f"it must be a {kind.__name__}"
                )
        faith = info.get("faithfulness")
        if faith is not None and not is_number(faith):
            raise bad_value(
                source, f"{where}['circuit']['faithfulness']", faith, "it must be a number or null"
            )
    return block
