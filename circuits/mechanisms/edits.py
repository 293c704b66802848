"""Edits of nodes and edges, and the ``--scale``/``--ablate``/``--subspace`` specs that name them.

An :class:`Edit` is one intervention: ``scale`` a node's output (or what an
edge carries) by ``F``; ``ablate`` it (zero, mean or counterfactual); or scale
the part of a node's output in its top-``RANK`` output subspace (``subspace``).
:func:`parse_edits` reads the command line's specs and checks every name
against the model's graph, naming the closest valid names when one is wrong.
:mod:`~circuits.mechanisms.interventions` applies them.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from circuits.graph import GraphShape, edge_mask
from circuits.vocab import INPUT, LOGITS, Ablation, InputError, parse_node

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["FORMS", "Edit", "parse_edits"]

FORMS = {
    "scale": "NODE=F or SRC->DST=F (e.g. a3.h1=0.5, m2=0, a0.h1->m2=2)",
    "ablate": "NODE[:zero|mean|counterfactual] or SRC->DST[:mode] "
    "(e.g. a3.h1, m2:zero, a0.h1->a2.h3<v>:mean)",
    "subspace": "NODE:RANK[=F] (e.g. a3.h1:2, m4:8=0.5)",
}


def _num(x: float) -> str:
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


@dataclass(frozen=True)
class Edit:
    """One intervention: ``op`` (``scale``, ``ablate``, ``subspace``) on a node or an edge.

    ``node`` is a head ``a{l}.h{h}`` or an MLP ``m{l}``; for an edge it is the
    sender and ``receiver`` the receiver (``a{l}.h{h}<q|k|v>``, ``m{l}`` or
    ``logits``). ``factor`` is the scale (``scale``, ``subspace``),
    ``ablation`` the mode of ``ablate``, ``rank`` the subspace's rank.

    >>> str(Edit("ablate", "a3.h1", "m5", ablation=Ablation.ZERO))
    'ablate a3.h1->m5:zero'
    >>> str(Edit("subspace", "a0.h2", rank=2, factor=0.0)), str(Edit("scale", "m1", factor=0.5))
    ('subspace a0.h2:2=0', 'scale m1=0.5')
    """

    op: str
    node: str
    receiver: str | None = None
    factor: float = 0.0
    ablation: Ablation | None = None
    rank: int | None = None

    @property
    def is_edge(self) -> bool:
        return self.receiver is not None

    @property
    def target(self) -> str:
        """``node``, or ``SRC->DST`` for an edge."""
        return f"{self.node}->{self.receiver}" if self.is_edge else self.node

    def __str__(self) -> str:
        if self.op == "scale":
            return f"scale {self.target}={_num(self.factor)}"
        if self.op == "ablate":
            return f"ablate {self.target}:{Ablation(self.ablation).value}"
        return f"subspace {self.node}:{self.rank}={_num(self.factor)}"


# ------------------------------------------------------------------ parsing


def _range_reason(name: str, shape: GraphShape, *, receiver: bool) -> str:
    """Why ``name`` is not a valid node (or receiver) of ``shape``."""
    try:
        kind, layer, head, qkv = parse_node(name)
    except InputError:
        forms = "'a{l}.h{h}<q|k|v>', 'm{l}' or 'logits'" if receiver else "'a{l}.h{h}', 'm{l}' or 'input'"
        return f"{name!r} is not a node name (valid forms: {forms})"
    layers = f"layers 0..{shape.n_layers - 1}"
    if kind in (INPUT, LOGITS):
        return f"{name!r} cannot be used here"
    if layer is not None and layer >= shape.n_layers:
        return f"layer {layer} of {name!r} is out of range (the model has {layers})"
    if kind == "head":
        if qkv is not None and not receiver:
            return f"{name!r} is a head's input, not a node (a node is a{{l}}.h{{h}} or m{{l}})"
        if qkv is None and receiver:
            return f"{name!r} is a head's output; its inputs are {name}<q>, <k> and <v>"
        limit = shape.n_kv_heads if qkv in ("k", "v") else shape.n_heads
        which = "key/value heads" if qkv in ("k", "v") else "heads"
        return f"head {head} of {name!r} is out of range (the model has {which} 0..{limit - 1} per layer)"
    return f"{name!r} is not a node of the model"


def _closest(name: str, pool: Sequence[str], n: int = 4) -> list[str]:
    """``difflib``'s closest names to ``name`` (ratio at least 0.5), ties in the pool's (forward) order."""
    allowed = set(difflib.get_close_matches(name, pool, n=len(pool), cutoff=0.5))
    ratio = {p: difflib.SequenceMatcher(None, name, p).ratio() for p in allowed}
    return sorted(allowed, key=lambda p: (-ratio[p], pool.index(p)))[:n]


def _check_name(
    name: str, pool: Sequence[str], shape: GraphShape, where: str, *, receiver: bool = False
) -> str:
    if name in pool:
        return name
    close = _closest(name, pool)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise InputError(f"{where}: {_range_reason(name, shape, receiver=receiver)}{hint}")


class _Names:
    """The valid names of one model's graph."""

    def __init__(self, model: LoadedModel) -> None:
        self.shape = GraphShape.of(model)
        self.senders = self.shape.sender_names()
        self.receivers = self.shape.receiver_names()
        self.nodes = [n for n in self.senders if n != INPUT]
        self.mask = edge_mask(self.shape)
        self.d_head = int(model.cfg.d_head)
        self.mlp_rank = [min(b.mlp.W_out.shape) for b in model.bridge.blocks]

    def node(self, name: str, where: str) -> str:
        return _check_name(name.strip(), self.nodes, self.shape, where)

    def target(self, text: str, where: str) -> tuple[str, str | None]:
        """``(node, None)`` or, for ``SRC->DST``, ``(sender, receiver)``."""
        if "->" not in text:
            return self.node(text, where), None
        src, _, dst = (t.strip() for t in text.partition("->"))
        src = _check_name(src, self.senders, self.shape, where)
        dst = _check_name(dst, self.receivers, self.shape, where, receiver=True)
        if not self.mask[self.senders.index(src), self.receivers.index(dst)]:
            raise InputError(
                f"{where}: {src}->{dst} is not an edge of the graph: a sender reaches only "
                "receivers later in the forward order"
            )
        return src, dst


def _factor(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: F must be a number, not {text.strip()!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: F must be a finite number, not {text.strip()!r}")
    return value


def parse_edits(
    model: LoadedModel, *, scale: Iterable[str] = (), ablate: Iterable[str] = (), subspace: Iterable[str] = ()
) -> list[Edit]:
    """The edits of ``--scale``, ``--ablate`` and ``--subspace`` specs, checked against ``model``.

    ``scale``: ``NODE=F`` or ``SRC->DST=F``; ``ablate``: ``NODE[:mode]`` or
    ``SRC->DST[:mode]`` (mode ``zero``, ``mean`` (default) or
    ``counterfactual``); ``subspace``: ``NODE:RANK[=F]`` (``F`` default 0,
    ``RANK`` in ``1..d_head`` for a head, ``1..min(d_mlp, d_model)`` for an
    MLP). A node is a head ``a{l}.h{h}`` or an MLP ``m{l}``. A node or edge
    may be edited once. Errors are :class:`~circuits.vocab.InputError` with
    one line naming the spec, what is wrong and the closest valid names.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> edits = parse_edits(model, scale=["m1=0.5"], ablate=["a0.h1->a2.h0<v>"], subspace=["a1.h2:3"])
    >>> [str(e) for e in edits]
    ['scale m1=0.5', 'ablate a0.h1->a2.h0<v>:mean', 'subspace a1.h2:3=0']
    >>> parse_edits(model, scale=["a1.h9=0"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: --scale 'a1.h9=0': head 9 of 'a1.h9' is out of range (the model has heads \
0..3 per layer); closest: a1.h0, ..., a1.h3
    """
    names = _Names(model)
    edits: list[Edit] = []
    for spec in scale:
        where = f"--scale {spec!r}"
        target, eq, value = spec.rpartition("=")
        if not eq or not target.strip():
            raise InputError(f"{where}: malformed; --scale takes {FORMS['scale']}")
        node, receiver = names.target(target, where)
        edits.append(Edit("scale", node, receiver, factor=_factor(value, where)))
    for spec in ablate:
        where = f"--ablate {spec!r}"
        target, colon, mode = spec.rpartition(":") if ":" in spec else (spec, "", "mean")
        if "=" in spec or not target.strip():
            raise InputError(f"{where}: malformed; --ablate takes {FORMS['ablate']}")
        try:
            ablation = Ablation(mode.strip())
        except ValueError:
            raise InputError(
                f"{where}: unknown ablation mode {mode.strip()!r}; valid: "
                f"{', '.join(a.value for a in Ablation)}"
            ) from None
        node, receiver = names.target(target, where)
        edits.append(Edit("ablate", node, receiver, ablation=ablation))
    for spec in subspace:
        where = f"--subspace {spec!r}"
        target, colon, rest = spec.partition(":")
        rank_text, eq, value = rest.partition("=")
        if not colon or not target.strip() or not rank_text.strip() or (eq and not value.strip()):
            raise InputError(f"{where}: malformed; --subspace takes {FORMS['subspace']}")
        if "->" in target:
            raise InputError(
                f"{where}: --subspace edits a node's output, not an edge; it takes {FORMS['subspace']}"
            )
        node = names.node(target, where)
        try:
            rank = int(rank_text)
        except ValueError:
            raise InputError(f"{where}: RANK must be a whole number, not {rank_text.strip()!r}") from None
        kind, layer, _, _ = parse_node(node)
        top = names.d_head if kind == "head" else names.mlp_rank[layer]  # type: ignore[index]
        if not 1 <= rank <= top:
            what = "d_head" if kind == "head" else "the rank of W_out"
            raise InputError(f"{where}: RANK must lie in 1..{top} ({what} of {node}), not {rank}")
        edits.append(Edit("subspace", node, rank=rank, factor=_factor(value, where) if eq else 0.0))
    seen: dict[str, Edit] = {}
    for edit in edits:
        if edit.target in seen:
            raise InputError(
                f"{edit.target} is edited twice ({seen[edit.target]}; {edit}); give one edit per node or edge"
            )
        seen[edit.target] = edit
    return edits
