"""The sizes that fix a model's computation graph, its edges, and the bounds a shape read from a file keeps.

See :mod:`circuits.graph` for the order of senders and receivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from circuits.checks import is_whole, short
from circuits.vocab import INPUT, LOGITS, InputError, head_name, mlp_name, qkv_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["MAX_GRAPH_ENTRIES", "MAX_HEADS", "MAX_LAYERS", "GraphShape", "edge_mask"]

MAX_LAYERS = 1024
"""The most layers a shape read from a file may have (Llama 3.1 405B has 126, GPT-3 96)."""
MAX_HEADS = 1024
"""The most query heads per layer a shape read from a file may have.

Llama 3.1 405B has 128, Falcon 180B 232.
"""
MAX_GRAPH_ENTRIES = 2**30
"""The most ``senders x receivers`` entries a shape read from a file may have.

About twice the largest real model's: Megatron-Turing NLG 530B (105 layers,
128 heads, no key/value grouping) has 5.5e8, Llama 3.1 405B (126 layers, 128
query and 8 key/value heads) 3.0e8. A dense float32 score matrix this size
takes 4 GiB; anything larger in a file is a mistake or an attack.
"""


@dataclass(frozen=True)
class GraphShape:
    """The sizes that fix a model's computation graph.

    The graph's senders (rows) are ``input``, then per layer every head's
    output ``a{l}.h{h}`` and the MLP's output ``m{l}``; its receivers (columns)
    are, per layer, every query head's ``<q>`` input, every key/value head's
    ``<k>`` and ``<v>`` inputs and the MLP's input ``m{l}``, then ``logits``.
    A sender feeds every receiver later in the forward order (see the module
    docstring). The index methods (``head_sender``, ``q_receiver``, ...) give
    a node's row or column in a ``[senders, receivers]`` score matrix.

    Parameters
    ----------
    n_layers : int
        Transformer blocks.
    n_heads : int
        Query heads per layer.
    n_kv_heads : int
        Key/value heads per layer; ``n_heads`` must be a multiple of it
        (equal for multi-head attention, fewer under grouped-query attention).
    parallel : bool
        Whether attention and MLP read the same residual stream (then an MLP
        does not read its own layer's heads).

    Examples
    --------
    >>> from circuits import GraphShape, load_model
    >>> shape = GraphShape.of(load_model("tiny-llama"))
    >>> shape
    GraphShape(n_layers=3, n_heads=4, n_kv_heads=2, parallel=False)
    >>> shape.n_senders, shape.n_receivers, shape.group
    (16, 28, 2)
    >>> shape.sender_names()[:3], shape.receiver_names()[3:7]
    (['input', 'a0.h0', 'a0.h1'], ['a0.h3<q>', 'a0.h0<k>', 'a0.h1<k>', 'a0.h0<v>'])
    >>> shape.receiver_names()[shape.k_receiver(2, 1)]
    'a2.h1<k>'
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    parallel: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "n_kv_heads"):
            value = getattr(self, name)
            if not is_whole(value):
                raise InputError(f"{name} must be a whole number, not {value!r}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.parallel, (bool, np.bool_)):
            raise InputError(f"parallel must be true or false, not {self.parallel!r}")
        object.__setattr__(self, "parallel", bool(self.parallel))
        if min(self.n_layers, self.n_heads, self.n_kv_heads) < 1:
            raise InputError(f"a graph needs at least one layer and head, not {self}")
        if self.n_heads % self.n_kv_heads:
            raise InputError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "shape") -> GraphShape:
        """The shape of a file's ``{"n_layers", "n_heads", "n_kv_heads", "parallel"}``, checked and bounded.

        Every field must have its type (whole numbers; ``parallel`` true or
        false, false when left out) and the shape must stay within
        :data:`MAX_LAYERS`, :data:`MAX_HEADS` and :data:`MAX_GRAPH_ENTRIES`, so a
        careless or hostile file is refused before anything of its size is
        allocated. ``source`` starts every message (the file and the field).

        >>> GraphShape.from_dict({"n_layers": 2, "n_heads": 4, "n_kv_heads": 2})
        GraphShape(n_layers=2, n_heads=4, n_kv_heads=2, parallel=False)
        >>> GraphShape.from_dict({"n_layers": 10**7, "n_heads": 4, "n_kv_heads": 4}, source="c.json: shape")
        Traceback (most recent call last):
        ...
        circuits.vocab.InputError: c.json: shape: n_layers is 10000000; valid: 1 to 1024
        >>> GraphShape.from_dict({"n_layers": 2, "n_heads": "4", "n_kv_heads": 4}, source="g.json: shape")
        Traceback (most recent call last):
        ...
        circuits.vocab.InputError: g.json: shape: n_heads must be a whole number, not '4'
        """
        names = ("n_layers", "n_heads", "n_kv_heads")
        if not isinstance(data, dict):
            raise InputError(
                f"{source}: must be an object with {', '.join(names)} and parallel, not {short(data)}"
            )
        missing = [n for n in names if n not in data]
        unknown = sorted(str(k) for k in data if k not in (*names, "parallel"))
        if missing or unknown:
            what = f"misses {', '.join(missing)}" if missing else f"has unknown fields {', '.join(unknown)}"
            raise InputError(f"{source}: {what}; a shape has {', '.join(names)} and parallel")
        for name, top in (("n_layers", MAX_LAYERS), ("n_heads", MAX_HEADS), ("n_kv_heads", MAX_HEADS)):
            value = data[name]
            if is_whole(value) and not 1 <= value <= top:
                raise InputError(f"{source}: {name} is {value}; valid: 1 to {top}")
        try:
            shape = cls(data["n_layers"], data["n_heads"], data["n_kv_heads"], data.get("parallel", False))
        except InputError as error:
            raise InputError(f"{source}: {error}") from None
        return shape.check_bounds(source)

    def check_bounds(self, source: str = "shape") -> GraphShape:
        """``self`` when it is no larger than any real model's graph (see :data:`MAX_GRAPH_ENTRIES`).

        Call it on a shape read from a file before allocating anything of its size.

        >>> GraphShape(126, 128, 8).check_bounds().n_edges  # Llama 3.1 405B
        147352528
        >>> GraphShape(1000, 100, 100).check_bounds("x.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        circuits.vocab.InputError: x.json: a graph of 1000 layers, 100 heads and 100 key/value heads has ...
        """
        if self.n_layers > MAX_LAYERS or self.n_heads > MAX_HEADS:
            raise InputError(
                f"{source}: a graph of {self.n_layers} layers and {self.n_heads} heads is larger "
                f"than any model; valid: at most {MAX_LAYERS} layers and {MAX_HEADS} heads"
            )
        entries = self.n_senders * self.n_receivers
        if entries > MAX_GRAPH_ENTRIES:
            raise InputError(
                f"{source}: a graph of {self.n_layers} layers, {self.n_heads} heads and "
                f"{self.n_kv_heads} key/value heads has {entries:.1e} senders x receivers "
                f"entries; valid: at most {MAX_GRAPH_ENTRIES:.1e} (twice the largest real "
                "model's)"
            )
        return self

    @property
    def n_edges(self) -> int:
        """Number of edges, counted without building the mask (:func:`edge_mask` has this many true entries).

        >>> GraphShape(12, 12, 12).n_edges, GraphShape(30, 9, 3).n_edges  # GPT-2 small, SmolLM2-135M
        (32491, 70651)
        """
        before = self.n_layers + (self.n_heads + 1) * self.n_layers * (self.n_layers - 1) // 2
        own_heads = 0 if self.parallel else self.n_layers * self.n_heads
        return (self.n_heads + 2 * self.n_kv_heads + 1) * before + own_heads + self.n_senders

    @classmethod
    def of(cls, model: LoadedModel) -> GraphShape:
        """The shape of a :class:`~circuits.models.LoadedModel`."""
        return cls(model.n_layers, model.n_heads, model.n_kv_heads, model.parallel)

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    # ---- senders: input, then per layer its heads and its MLP
    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    def head_sender(self, layer: int, head: int) -> int:
        return 1 + layer * (self.n_heads + 1) + head

    def mlp_sender(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    def senders_before(self, layer: int) -> int:
        """Number of senders that write before layer ``layer``'s attention reads."""
        return 1 + layer * (self.n_heads + 1)

    # ---- receivers: per layer q (n_heads), k, v (n_kv_heads each), MLP; then logits
    @property
    def receivers_per_layer(self) -> int:
        return self.n_heads + 2 * self.n_kv_heads + 1

    @property
    def n_receivers(self) -> int:
        return self.n_layers * self.receivers_per_layer + 1

    def q_receiver(self, layer: int, head: int) -> int:
        return layer * self.receivers_per_layer + head

    def k_receiver(self, layer: int, kv_head: int) -> int:
        return layer * self.receivers_per_layer + self.n_heads + kv_head

    def v_receiver(self, layer: int, kv_head: int) -> int:
        return layer * self.receivers_per_layer + self.n_heads + self.n_kv_heads + kv_head

    def mlp_receiver(self, layer: int) -> int:
        return layer * self.receivers_per_layer + self.receivers_per_layer - 1

    @property
    def logits_receiver(self) -> int:
        return self.n_receivers - 1

    def attn_receivers(self, layer: int) -> slice:
        """Columns of layer ``layer``'s q, k and v receivers (in that order)."""
        start = layer * self.receivers_per_layer
        return slice(start, start + self.receivers_per_layer - 1)

    def sender_names(self) -> list[str]:
        names = [INPUT]
        for layer in range(self.n_layers):
            names += [head_name(layer, h) for h in range(self.n_heads)]
            names.append(mlp_name(layer))
        return names

    def receiver_names(self) -> list[str]:
        names = []
        for layer in range(self.n_layers):
            names += [qkv_name(layer, h, "q") for h in range(self.n_heads)]
            names += [qkv_name(layer, h, "k") for h in range(self.n_kv_heads)]
            names += [qkv_name(layer, h, "v") for h in range(self.n_kv_heads)]
            names.append(mlp_name(layer))
        return [*names, LOGITS]

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "parallel": self.parallel,
        }


def edge_mask(shape: GraphShape) -> np.ndarray:
    """Boolean ``[senders, receivers]`` matrix of the edges that exist."""
    mask = np.zeros((shape.n_senders, shape.n_receivers), dtype=bool)
    for layer in range(shape.n_layers):
        before = shape.senders_before(layer)
        mask[:before, shape.attn_receivers(layer)] = True
        mlp_reads = before if shape.parallel else before + shape.n_heads
        mask[:mlp_reads, shape.mlp_receiver(layer)] = True
    mask[:, shape.logits_receiver] = True
    return mask
