"""A circuit's keys: a shape's row and column maps, the node a receiver belongs to, units by edge."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from circuits.graph import GraphShape, edge_mask
from circuits.vocab import head_name, parse_node

__all__ = ["Edge", "component_of", "graph_index", "group_units", "plain"]


Edge = tuple[str, str]


@functools.lru_cache(maxsize=16)
def graph_index(shape: GraphShape) -> tuple[dict[str, int], dict[str, int], np.ndarray]:
    """Name-to-row and name-to-column maps of ``shape`` and its edge mask (cached)."""
    senders = {name: i for i, name in enumerate(shape.sender_names())}
    receivers = {name: i for i, name in enumerate(shape.receiver_names())}
    mask = edge_mask(shape)
    mask.setflags(write=False)
    return senders, receivers, mask


@functools.lru_cache(maxsize=65536)
def component_of(receiver: str) -> str | None:
    """The node a receiver belongs to: a head for ``<q>``, itself for MLPs and logits (cached: it is hot).

    >>> component_of("a2.h3<q>"), component_of("m1"), component_of("a2.h0<k>")
    ('a2.h3', 'm1', None)
    """
    kind, layer, head, qkv = parse_node(receiver)
    if kind == "head":
        return head_name(layer, head) if qkv == "q" else None  # type: ignore[arg-type]
    return receiver


def group_units(units: dict[tuple[str, str, str], float]) -> dict[Edge, dict[str, float]]:
    """``{(sender, receiver, role): score}`` grouped by edge, as :attr:`Circuit.roles` holds them.

    >>> group_units({("input", "logits", "last"): -1.0, ("input", "logits", "subject"): 0.5})
    {('input', 'logits'): {'last': -1.0, 'subject': 0.5}}
    """
    out: dict[Edge, dict[str, float]] = {}
    for (sender, receiver, role), score in units.items():
        out.setdefault((sender, receiver), {})[role] = score
    return out


def plain(value: Any) -> Any:
    """``value`` as it comes back from JSON (tuples become lists), so round trips are exact."""
    return json.loads(json.dumps(value))
