"""Where a position-aware circuit carries its score: per layer, the share of each position role (torch-free).

A unit ``(edge, role)`` is counted at the layer of its receiver (``logits``
after the last layer), so a layer's profile says at which positions that
layer's heads and MLP *read* what the circuit relies on. Shares are of
``|score|``; the dominant role of a layer is its largest share.
"""

from __future__ import annotations

from typing import Any

from circuits.circuit import Circuit
from circuits.relations.roles import ROLES
from circuits.vocab import InputError, parse_node

__all__ = ["role_profile"]


def role_profile(circuit: Circuit) -> dict[str, Any]:
    """Per receiver layer and over the whole circuit, each role's share of the units' ``|score|``.

    Returns ``{"layers": [{"layer", "total", "shares": {role: share}, "top"}], "totals": {role: share},
    "units": {role: count}}``; layers without units are left out.

    >>> from circuits.graph import GraphShape
    >>> c = Circuit(GraphShape(2, 1, 1), {("input", "a1.h0<q>"): 0.0, ("a1.h0", "logits"): 0.0},
    ...             roles={("input", "a1.h0<q>"): {"subject": -3.0, "last": -1.0},
    ...                    ("a1.h0", "logits"): {"last": -2.0}})
    >>> p = role_profile(c)
    >>> [(row["layer"], row["top"], row["shares"]["subject"]) for row in p["layers"]]
    [(1, 'subject', 0.75), (2, 'last', 0.0)]
    >>> p["totals"]["subject"], p["units"]["last"]
    (0.5, 2)
    """
    if circuit.roles is None:
        raise InputError(
            f"{circuit.label()}: a role profile needs a position-aware circuit "
            "(extract it from a graph scored with --positions roles)"
        )
    n_layers = circuit.shape.n_layers
    by_layer: dict[int, dict[str, float]] = {}
    totals = dict.fromkeys(ROLES, 0.0)
    counts = dict.fromkeys(ROLES, 0)
    for (_, receiver), kept in circuit.roles.items():
        layer = n_layers if receiver == "logits" else parse_node(receiver)[1]
        row = by_layer.setdefault(int(layer), dict.fromkeys(ROLES, 0.0))  # type: ignore[arg-type]
        for role, score in kept.items():
            row[role] += abs(score)
            totals[role] += abs(score)
            counts[role] += 1
    layers = []
    for layer in sorted(by_layer):
        row = by_layer[layer]
        total = sum(row.values())
        shares = {r: (v / total if total else 0.0) for r, v in row.items()}
        layers.append(
            {"layer": layer, "total": total, "shares": shares, "top": max(ROLES, key=lambda r: row[r])}
        )
    grand = sum(totals.values())
    return {
        "layers": layers,
        "totals": {r: (v / grand if grand else 0.0) for r, v in totals.items()},
        "units": counts,
    }
