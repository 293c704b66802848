"""Relations: the schema (torch-free), the bundled LRE files, and prompt pairs for a model.

``from circuits.relations import load_relation`` costs no torch import; the
prompt-pair names (:func:`make_pairs`, :func:`batch_pairs`, ...) are imported
from :mod:`circuits.relations.pairs` on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from circuits.relations.schema import (
    Fact,
    Relation,
    bundled_relations,
    load_relation,
    relation_from_csv,
    relation_to_json,
)

if TYPE_CHECKING:
    from circuits.relations.pairs import (
        FactCheck,
        PairBatch,
        PairSet,
        PromptPair,
        Roles,
        batch_pairs,
        check_facts,
        make_pairs,
    )

__all__ = [
    "Fact",
    "FactCheck",
    "PairBatch",
    "PairSet",
    "PromptPair",
    "Relation",
    "Roles",
    "batch_pairs",
    "bundled_relations",
    "check_facts",
    "load_relation",
    "make_pairs",
    "relation_from_csv",
    "relation_to_json",
]

_PAIRS = {
    "FactCheck",
    "PairBatch",
    "PairSet",
    "PromptPair",
    "Roles",
    "batch_pairs",
    "check_facts",
    "make_pairs",
}


def __getattr__(name: str) -> Any:
    if name in _PAIRS:  # pairs re-exports FactCheck and check_facts from circuits.relations.facts
        return getattr(importlib.import_module("circuits.relations.pairs"), name)
    raise AttributeError(f"module 'circuits.relations' has no attribute {name!r}")
