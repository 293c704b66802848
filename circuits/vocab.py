"""The shared vocabulary of the engine: errors, node names, option names.

Every module speaks in these words; none defines its own copy.

Node names follow the field's convention (DESIGN.md section 3):

- ``input``: the token (and, where the model has one, position) embedding;
- ``a{layer}.h{head}``: an attention head's output;
- ``m{layer}``: an MLP's output;
- ``logits``: the unembedding's input (the final residual stream).

Receivers are written ``a{layer}.h{head}<q>``, ``<k>``, ``<v>`` for a head's
three inputs, ``m{layer}`` for an MLP's input and ``logits``.  With grouped-query
attention the ``<k>`` and ``<v>`` receivers belong to the *key/value* head, so
``a3.h1<k>`` names key/value head 1 of layer 3, read by query heads
``1 * group .. (1 + 1) * group - 1``.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "INPUT",
    "LOGITS",
    "Ablation",
    "CircuitsError",
    "InputError",
    "Method",
    "Metric",
    "ModelNotAvailableError",
    "NotEnoughFactsError",
    "head_name",
    "mlp_name",
    "parse_node",
    "qkv_name",
]


class CircuitsError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(CircuitsError, ValueError):
    """Bad user input: a file, a field, a value. The message says what is valid."""


class ModelNotAvailableError(CircuitsError, LookupError):
    """A model name that cannot be loaded here (unknown, or the hub is unreachable)."""


class NotEnoughFactsError(InputError):
    """A relation has fewer known facts than an analysis needs."""


class Method(str, Enum):
    """How edges are scored."""

    EAP = "eap"
    EAP_IG = "eap-ig"
    EXACT = "exact"


class Metric(str, Enum):
    """What is measured at the last position of each prompt."""

    LOGIT_DIFF = "logit-diff"
    LOGPROB = "logprob"
    PROB = "prob"
    KL = "kl"


class Ablation(str, Enum):
    """What a removed edge carries instead of its clean value."""

    COUNTERFACTUAL = "counterfactual"
    MEAN = "mean"
    ZERO = "zero"


INPUT = "input"
LOGITS = "logits"

_NODE = re.compile(r"^(?:a(?P<al>\d+)\.h(?P<h>\d+)(?:<(?P<qkv>[qkv])>)?|m(?P<ml>\d+))$")


def head_name(layer: int, head: int) -> str:
    """Name of head ``head`` of layer ``layer``: ``a{layer}.h{head}``."""
    return f"a{layer}.h{head}"


def mlp_name(layer: int) -> str:
    """Name of the MLP of layer ``layer``: ``m{layer}``."""
    return f"m{layer}"


def qkv_name(layer: int, head: int, letter: str) -> str:
    """Name of a head's query, key or value input: ``a{layer}.h{head}<q>``."""
    if letter not in ("q", "k", "v"):
        raise InputError(f"a head input is 'q', 'k' or 'v', not {letter!r}")
    return f"a{layer}.h{head}<{letter}>"


def parse_node(name: str) -> tuple[str, int | None, int | None, str | None]:
    """Split a node name into ``(kind, layer, head, qkv)``.

    ``kind`` is ``"input"``, ``"head"``, ``"mlp"`` or ``"logits"``.

    >>> parse_node("a3.h1<k>")
    ('head', 3, 1, 'k')
    >>> parse_node("m7")
    ('mlp', 7, None, None)
    """
    if name in (INPUT, LOGITS):
        return name, None, None, None
    match = _NODE.match(name)
    if match is None:
        raise InputError(
            f"{name!r} is not a node name; valid names are 'input', 'logits', "
            "'a{layer}.h{head}', 'a{layer}.h{head}<q|k|v>' and 'm{layer}'"
        )
    if match["ml"] is not None:
        return "mlp", int(match["ml"]), None, None
    return "head", int(match["al"]), int(match["h"]), match["qkv"]
