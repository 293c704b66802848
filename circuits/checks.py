"""Checks of what files hold, before anything is built from it (torch-free).

Scored graphs, circuits and their metadata come from files someone else may
have written or cut short. These functions refuse, with one line naming the
file, the field, the value and what is valid, anything the engine could not
use safely: a count that is not a whole number, a score that is a string,
NaN or infinite, a node name outside the graph's layers and heads, a field of
the wrong type. :meth:`~circuits.graph.GraphShape.from_dict` bounds a shape's
size in the same spirit, before anything of that size is allocated.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from circuits.vocab import (
    INPUT,
    LOGITS,
    POSITIONS,
    Ablation,
    InputError,
    Metric,
    head_name,
    mlp_name,
    parse_node,
    qkv_name,
)

if TYPE_CHECKING:
    from circuits.graph import GraphShape

__all__ = [
    "REQUIRED_METADATA",
    "check_metadata",
    "check_node_link",
    "check_params",
    "finite_number",
    "is_number",
    "is_whole",
    "name_problem",
    "non_finite",
    "shape_ranges",
    "shape_size",
    "short",
]

REQUIRED_METADATA = (
    "model",
    "relation",
    "score_method",
    "metric",
    "ablation",
    "split_seed",
    "n_pairs_scoring",
)
"""Metadata every graph written by ``circuits score`` has (in every version), and evaluation reads."""

_TEXT = ("relation_source", "processing", "package_version", "source_format")
_NAMES = ("model", "relation", "score_method")
_COUNTS = (
    "ig_steps",
    "exact_refined_edges",
    "n_pairs_scoring",
    "n_pairs_heldout",
    "n_facts",
    "n_known",
    "n_no_counterfactual",
    "split_seed",
    "seed",
    "pair_edges",
)


def check_metadata(
    metadata: dict[str, Any], source: str, *, required: tuple[str, ...] = (), names_may_be_null: bool = False
) -> dict[str, Any]:
    """``metadata`` (a scored graph's, or a circuit's provenance) if each field the engine reads is valid.

    Fields the engine reads must have their type when present (``model`` and
    ``relation`` non-empty strings, or null with ``names_may_be_null``;
    ``metric`` and ``ablation`` known names; counts and seeds whole numbers
    of at least 0; ``template`` a string with one ``{}``; ...); no number
    anywhere may be NaN or infinite; every field of ``required`` must be
    there. Other fields are kept as they are. Messages start with
    ``source`` (the file) and name the field, its value and what is valid.

    >>> check_metadata({"model": "gpt2", "metric": "kl", "seed": 0, "note": [1]}, "g.json")["metric"]
    'kl'
    >>> check_metadata({"model": "gpt2", "metric": "acc"}, "g.json")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.json: field 'metric' is 'acc'; valid: logit-diff, logprob, prob, kl
    >>> check_metadata({"seconds": float("nan")}, "g.json")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.json: field 'seconds' is NaN; numbers must be finite
    >>> check_metadata({"model": "gpt2"}, "g.json", required=("model", "split_seed"))
    ... # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: g.json: field 'split_seed' is missing;
    a graph written by `circuits score` has ...
    """
    if not isinstance(metadata, dict):
        raise InputError(f"{source}: metadata must be an object, not {short(metadata)}")
    where = non_finite(metadata)
    if where is not None:
        path, value = where
        raise InputError(f"{source}: field {path!r} is {value}; numbers must be finite")

    def bad(key: str, valid: str) -> InputError:
        return InputError(f"{source}: field {key!r} is {short(metadata[key])}; valid: {valid}")

    for key in REQUIRED_METADATA:
        if key in required and metadata.get(key) is None:
            listed = ", ".join(REQUIRED_METADATA[:-1]) + f" and {REQUIRED_METADATA[-1]}"
            raise InputError(
                f"{source}: field {key!r} is missing; a graph written by `circuits score` has "
                f"{listed}; score it again"
            )
    for key in _NAMES:
        value, nullable = metadata.get(key, ""), names_may_be_null and key != "score_method"
        valid = (isinstance(value, str) and value.strip()) or (value is None and nullable)
        if key in metadata and not valid:
            raise bad(key, "a non-empty string" + (", or null" if nullable else ""))
    for key in _TEXT:
        if key in metadata and not isinstance(metadata[key], str):
            raise bad(key, "a string")
    for key, enum in (("metric", Metric), ("ablation", Ablation)):
        if key in metadata and metadata[key] not in [e.value for e in enum]:
            raise bad(key, ", ".join(e.value for e in enum))
    if "positions" in metadata and metadata["positions"] not in POSITIONS:
        raise bad("positions", " or ".join(repr(p) for p in POSITIONS))
    template = metadata.get("template")
    if template is not None and not (isinstance(template, str) and template.count("{}") == 1):
        raise bad("template", "a string with exactly one '{}' where the subject goes")
    for key in _COUNTS:
        if key in metadata and not (is_whole(metadata[key]) and metadata[key] >= 0):
            raise bad(key, "a whole number of at least 0")
    for key, low in (("max_pairs", 1), ("d_model", 0)):
        if metadata.get(key) is not None and not (is_whole(metadata[key]) and metadata[key] >= low):
            raise bad(key, f"a whole number of at least {low}, or null")
    if "seconds" in metadata and not (is_number(metadata["seconds"]) and metadata["seconds"] >= 0):
        raise bad("seconds", "a number of at least 0")
    known = metadata.get("known_filter", {})
    if not isinstance(known, dict):
        raise bad("known_filter", "an object with max_rank, min_prob and heldout_fraction")

    def fraction(v: Any) -> bool:
        return is_number(v) and 0 <= v < 1

    checks = (
        ("heldout_fraction", metadata, "a number in [0, 1)", fraction),
        ("max_rank", known, "a whole number of at least 1", lambda v: is_whole(v) and v >= 1),
        ("min_prob", known, "a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1),
        ("heldout_fraction", known, "a number in [0, 1)", fraction),
    )
    for key, holder, valid, ok in checks:
        if key in holder and not ok(holder[key]):
            name = key if holder is metadata else f"known_filter.{key}"
            raise InputError(f"{source}: field {name!r} is {short(holder[key])}; valid: {valid}")
    if "imported_from" in metadata and not isinstance(metadata["imported_from"], dict):
        raise bad("imported_from", "an object")
    return metadata


def non_finite(value: Any, path: str = "") -> tuple[str, str] | None:
    """Where in ``value`` (nested dicts and lists, as JSON gives them) a number is NaN or infinite,
    if anywhere.

    Returns the field's path (``'a.b[2]'``) and ``"NaN"``, ``"Infinity"`` or
    ``"-Infinity"`` (as Python writes them into JSON), or None when every
    number is finite. Works without recursion, however deep the data.

    >>> non_finite({"a": [1.0, {"b": float("-inf")}]}), non_finite({"a": [1, 2.5, "x"]})
    (('a[1].b', '-Infinity'), None)
    """
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, float | np.floating) and not math.isfinite(item):
            return where, "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
        if isinstance(item, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(item))))
    return None


def is_whole(value: Any) -> bool:
    """A whole number that is not a boolean (JSON's ``true`` is not a count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def is_number(value: Any) -> bool:
    """A finite real number that is not a boolean (nor an integer too large for a float)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np.bool_):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters, for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def name_problem(name: Any, shape: GraphShape, side: str = "node") -> str | None:
    """Why ``name`` is not a ``side`` (``"sender"``, ``"receiver"`` or ``"node"``) of ``shape``;
    None if it is.

    The reason names the valid range (layers, heads, key/value heads) or spelling.

    >>> from circuits.graph import GraphShape
    >>> shape = GraphShape(2, 4, 2)
    >>> name_problem("a1.h3", shape, "sender") is None, name_problem("a1.h1<v>", shape, "receiver") is None
    (True, True)
    >>> name_problem("a2.h0", shape, "sender")
    'it names layer 2; the graph has layers 0 to 1'
    >>> name_problem("a0.h2<k>", shape, "receiver")
    'it names key/value head 2; the graph has key/value heads 0 to 1 per layer'
    >>> name_problem("a0.h0<q>", shape, "sender")
    "it is a head's input; senders are 'input', 'a{layer}.h{head}' and 'm{layer}'"
    """
    if not isinstance(name, str):
        return "node names are strings such as 'a0.h1' or 'logits'"
    try:
        kind, layer, head, qkv = parse_node(name)
    except InputError:
        return (
            "valid names are 'input', 'logits', 'a{layer}.h{head}', 'a{layer}.h{head}<q|k|v>' and 'm{layer}'"
        )
    senders = "senders are 'input', 'a{layer}.h{head}' and 'm{layer}'"
    receivers = "receivers are 'a{layer}.h{head}<q>', 'a{layer}.h{kv_head}<k|v>', 'm{layer}' and 'logits'"
    if side == "sender" and kind == LOGITS:
        return f"'logits' sends nothing; {senders}"
    if side == "sender" and qkv is not None:
        return f"it is a head's input; {senders}"
    if side == "receiver" and kind == INPUT:
        return f"'input' receives nothing; {receivers}"
    if side == "receiver" and kind == "head" and qkv is None:
        return f"it is a head's output; {receivers}"
    if layer is not None and layer >= shape.n_layers:
        return f"it names layer {layer}; the graph has layers 0 to {shape.n_layers - 1}"
    if head is not None:
        count, what = (shape.n_kv_heads, "key/value head") if qkv in ("k", "v") else (shape.n_heads, "head")
        if head >= count:
            return f"it names {what} {head}; the graph has {what}s 0 to {count - 1} per layer"
    if kind == "head":
        canonical = head_name(layer, head) if qkv is None else qkv_name(layer, head, qkv)  # type: ignore[arg-type]
    else:
        canonical = mlp_name(layer) if kind == "mlp" else kind  # type: ignore[arg-type]
    return None if name == canonical else f"the engine spells it {canonical!r}"


def shape_size(shape: GraphShape) -> str:
    """A graph's size for messages.

    >>> from circuits.graph import GraphShape
    >>> shape_size(GraphShape(30, 9, 3))
    '30 layers, 9 heads, 3 key/value heads'
    """
    return f"{shape.n_layers} layers, {shape.n_heads} heads, {shape.n_kv_heads} key/value heads"


def shape_ranges(shape: GraphShape) -> str:
    """A graph's valid names for messages: its layers, heads and key/value heads, with their ranges."""
    return (
        f"layers 0 to {shape.n_layers - 1}, heads 0 to {shape.n_heads - 1}, key/value heads 0 to "
        f"{shape.n_kv_heads - 1}{', parallel blocks' if shape.parallel else ''}"
    )


_PARAM_COUNTS = ("n", "k", "core_k", "max_edges", "n_before_pruning")
_PARAM_NUMBERS = ("threshold", "target", "fraction", "search_faithfulness")


def finite_number(value: Any, where: str, valid: str = "a finite number") -> float:
    """``value`` as a float, or an :class:`InputError` saying ``where`` it was and what is valid."""
    if not is_number(value):
        raise InputError(f"{where} is {short(value)}; valid: {valid}")
    return float(value)


def check_params(params: dict[str, Any]) -> None:
    """An :class:`InputError` unless the extraction parameters the engine reads have their types."""

    def bad(key: str, valid: str) -> InputError:
        return InputError(f"graph attribute 'params': field {key!r} is {short(params[key])}; valid: {valid}")

    for key in _PARAM_COUNTS:
        if key in params and not (is_whole(params[key]) and params[key] >= 0):
            raise bad(key, "a whole number of at least 0")
    for key in _PARAM_NUMBERS:
        if params.get(key) is not None and not is_number(params[key]):
            raise bad(key, "a finite number or null")
    if "by" in params and params["by"] not in ("signed", "abs"):
        raise bad("by", "'signed' or 'abs'")
    if "pruned" in params and not isinstance(params["pruned"], bool):
        raise bad("pruned", "true or false")
    interval = params.get("faithfulness_interval")
    if interval is not None:
        valid = "an object of numbers: value, low and high (each a number or null), n_boot and n_pairs"
        if not isinstance(interval, dict):
            raise bad("faithfulness_interval", valid)
        for key, value in interval.items():
            counts = key in ("n_boot", "n_pairs")
            if value is not None and not (is_number(value) and (not counts or float(value).is_integer())):
                kind = "a whole number" if counts else "a number or null"
                raise InputError(
                    f"graph attribute 'params': field 'faithfulness_interval.{key}' is "
                    f"{short(value)}; valid: {kind}"
                )
    search = params.get("search")
    if search is not None and not (
        isinstance(search, list)
        and all(
            isinstance(p, list) and len(p) == 2 and all(x is None or is_number(x) for x in p) for p in search
        )
    ):
        raise bad("search", "a list of [size, faithfulness] pairs of numbers")


def check_node_link(data: dict[str, Any]) -> None:
    """An :class:`InputError` unless ``data`` has the structure of
    :func:`~circuits.store.circuits.circuit_to_dict`'s node-link data."""
    if data.get("directed", True) is not True or data.get("multigraph", False) is not False:
        raise InputError(
            f"a circuit is a directed graph without parallel edges; 'directed' is "
            f"{data.get('directed')!r} and 'multigraph' {data.get('multigraph')!r}, expected "
            "true and false"
        )
    if not isinstance(data.get("graph"), dict):
        raise InputError(
            f"field 'graph' must be an object of the circuit's attributes (format, shape, params, "
            f"provenance, ...), not {short(data.get('graph'))}"
        )
    for key in ("nodes", "edges"):
        if not isinstance(data[key], list):
            raise InputError(f"field {key!r} must be a list of objects, not {short(data[key])}")
    ids = set()
    for index, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            raise InputError(f"nodes[{index}] must be an object whose 'id' is a node name, not {short(node)}")
        if node["id"] in ids:
            raise InputError(f"nodes[{index}]: node {node['id']!r} appears twice")
        ids.add(node["id"])
    pairs = set()
    for index, edge in enumerate(data["edges"]):
        if not isinstance(edge, dict) or not all(isinstance(edge.get(k), str) for k in ("source", "target")):
            raise InputError(
                f"edges[{index}] must be an object whose 'source' and 'target' are node names, "
                f"not {short(edge)}"
            )
        pair = (edge["source"], edge["target"])
        if pair in pairs:
            raise InputError(f"edges[{index}]: edge {pair!r} appears twice")
        pairs.add(pair)
    where = non_finite(data)
    if where is not None:
        path, value = where
        match = re.match(r"(nodes|edges)\[(\d+)\]\.(.*)", path)
        if match is not None:
            item = data[match[1]][int(match[2])]
            label = (
                f"node {item['id']!r}"
                if match[1] == "nodes"
                else f"edge ({item['source']!r}, {item['target']!r})"
            )
            raise InputError(f"{label}: {match[3]!r} is {value}; numbers must be finite")
        raise InputError(f"field {path!r} is {value}; numbers must be finite")
