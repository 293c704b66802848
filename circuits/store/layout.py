"""The gallery's names: its files and folders, and folder names made from model, relation and circuit names.

See :mod:`circuits.store.gallery` for the layout these names build.
"""

from __future__ import annotations

import re
from typing import Any

from circuits.vocab import InputError

__all__ = [
    "CIRCUIT_FILE",
    "EVALUATION",
    "MANIFEST",
    "MECHANISMS",
    "SCORED",
    "circuit_name",
    "safe_name",
]

MANIFEST = "manifest.json"
"""The gallery's list of its units, at its root."""
CIRCUIT_FILE = "circuit.json"
"""A circuit folder's node-link JSON; its diagram, when drawn, is ``circuit.svg`` beside it."""
SCORED = "scored"
MECHANISMS = "mechanisms"
EVALUATION = "evaluation"
"""A relation's held-out evaluation of its graph and circuit: ``evaluation.json``, ``evaluation.svg``."""


def safe_name(name: str) -> str:
    """A folder name for a model, relation or circuit name.

    >>> safe_name("HuggingFaceTB/SmolLM2-135M")
    'HuggingFaceTB__SmolLM2-135M'
    """
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__")).strip("._")
    if not text:
        raise InputError(f"{name!r} cannot name a folder; use letters, digits, '.', '_' or '-'")
    return text


def circuit_name(circuit: Any) -> str:
    """The circuit's name, else ``{extract_method}-{by}-{size}`` from its extraction (``-roles``: units)."""
    if circuit.name:
        return safe_name(circuit.name)
    p = circuit.params
    size = p.get("max_edges", p.get("n", p.get("k", p.get("threshold", circuit.n_edges))))
    roles = "roles" if circuit.roles is not None else None
    parts = (circuit.extract_method, p.get("by"), size, roles)
    return safe_name("-".join(str(x) for x in parts if x is not None))
