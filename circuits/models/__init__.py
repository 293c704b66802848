"""Models: the catalog (torch-free), loading, the embedded SmolLM2 and tiny test models.

``from circuits.models import list_models`` costs no torch import; the names
that need torch (:func:`load_model`, :class:`LoadedModel`, the tiny builders)
are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from circuits.models.catalog import DEFAULT_MODEL, EMBEDDED_MODELS, TINY_MODELS, cache_dir, list_models

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel, hf_module, load_model
    from circuits.models.tiny import build_tiny_model, tiny_tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "TINY_MODELS",
    "LoadedModel",
    "build_tiny_model",
    "cache_dir",
    "hf_module",
    "list_models",
    "load_model",
    "tiny_tokenizer",
]

_LAZY = {
    "LoadedModel": "circuits.models.load",
    "load_model": "circuits.models.load",
    "hf_module": "circuits.models.load",
    "build_tiny_model": "circuits.models.tiny",
    "tiny_tokenizer": "circuits.models.tiny",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'circuits.models' has no attribute {name!r}")
