"""The shared vocabulary of the engine: errors, node names, option names.

Every module speaks in these words; none defines its own copy.

Node names follow the field's convention (see ``circuits/ARCHITECTURE.md``):

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
    "POSITIONS",
    "ROLE_POSITIONS",
    "SUMMED",
    "Ablation",
    "CircuitsError",
    "ExtractMethod",
    "InputError",
    "Metric",
    "ModelNotAvailableError",
    "NotEnoughFactsError",
    "ScoreMethod",
    "choice",
    "head_name",
    "hook_point",
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


class ScoreMethod(str, Enum):
    """How edges are scored (``--score-method``, metadata key ``score_method``)."""

    EAP = "eap"
    EAP_IG = "eap-ig"
    EXACT = "exact"


class ExtractMethod(str, Enum):
    """How a circuit is chosen from a scored graph (``--extract-method``, key ``extract_method``)."""

    TOP_N = "top-n"
    THRESHOLD = "threshold"
    GREEDY = "greedy"
    PATHS = "paths"
    NODES = "nodes"
    MINIMAL = "minimal"
    CUSTOM = "custom"


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


SUMMED = "summed"
ROLE_POSITIONS = "roles"
POSITIONS = (SUMMED, ROLE_POSITIONS)
"""How edge scores treat positions: summed over every position, or split by position role."""

INPUT = "input"
LOGITS = "logits"

_NODE = re.compile(r"^(?:a(?P<al>\d+)\.h(?P<h>\d+)(?:<(?P<qkv>[qkv])>)?|m(?P<ml>\d+))$")


def choice(enum: type[Enum], value: object, what: str) -> Enum:
    """``enum(value)``, or an :class:`InputError` listing the valid values.

    >>> choice(Metric, "kl", "metric")
    <Metric.KL: 'kl'>
    >>> choice(Metric, "acc", "metric")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown metric 'acc'; valid: logit-diff, logprob, prob, kl
    """
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(str(e.value) for e in enum)
        raise InputError(f"unknown {what} {value!r}; valid: {valid}") from None


# TransformerLens hook points the engine reads and writes, by short name.
_HOOKS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "attn_in": "blocks.{layer}.ln1.hook_in",
    "q": "blocks.{layer}.attn.hook_q",
    "k": "blocks.{layer}.attn.hook_k",
    "v": "blocks.{layer}.attn.hook_v",
    "z": "blocks.{layer}.attn.hook_z",
    "attn_scores": "blocks.{layer}.attn.hook_attn_scores",
    "pattern": "blocks.{layer}.attn.hook_pattern",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_in": "blocks.{layer}.ln2.hook_in",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "resid_post": "blocks.{layer}.hook_resid_post",
    "final_in": "ln_final.hook_in",
}


def hook_point(point: str, layer: int | None = None) -> str:
    """The TransformerLens 4 hook name of ``point`` in ``layer`` (the one place hook names are spelt).

    >>> hook_point("z", 3), hook_point("mlp_in", 0), hook_point("final_in")
    ('blocks.3.attn.hook_z', 'blocks.0.ln2.hook_in', 'ln_final.hook_in')
    """
    if point not in _HOOKS:
        raise InputError(f"unknown hook point {point!r}; valid: {', '.join(_HOOKS)}")
    template = _HOOKS[point]
    if "{layer}" in template and layer is None:
        raise InputError(f"hook point {point!r} needs a layer")
    return template.format(layer=layer)


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
