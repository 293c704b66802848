"""The computation graph of a decoder model and its edge scores.

Senders (rows) are ``input``, every head's output ``a{l}.h{h}`` and every MLP's
output ``m{l}``, in forward order. Receivers (columns) are, layer by layer,
every query head's ``<q>`` input, every key/value head's ``<k>`` and ``<v>``
inputs, the MLP's input ``m{l}``, and finally ``logits``. An edge joins a sender
to every receiver later in the forward order: an MLP reads its own layer's heads
unless the block is parallel (attention and MLP read the same residual).

Grouped-query attention is handled natively, not by ungrouping: a layer has
``n_heads`` ``<q>`` receivers but only ``n_kv_heads`` ``<k>`` and ``<v>``
receivers, one per key/value head, because one key/value input is read by a
whole group of query heads. Counting edges: GPT-2 small (12 layers, 12 heads)
has 32,491; SmolLM2-135M (30 layers, 9 query and 3 key/value heads) has 70,651.

Sign convention (used everywhere in the engine): an edge's score is the
estimated change of the metric when that edge alone carries the corrupted
sender's value. With the logit difference as metric, the edges a circuit relies
on have *negative* scores. Selecting edges "by signed score" therefore takes the
most negative first (the largest ``-score``); selecting "by |score|" ignores
the sign. Both are explicit options wherever edges are chosen.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.checks import is_whole, short
from circuits.relations.roles import ROLES
from circuits.vocab import (
    INPUT,
    LOGITS,
    POSITIONS,
    ROLE_POSITIONS,
    SUMMED,
    InputError,
    head_name,
    mlp_name,
    qkv_name,
)

__all__ = [
    "MAX_GRAPH_ENTRIES",
    "MAX_HEADS",
    "MAX_LAYERS",
    "N_ROLES",
    "PAIR_EDGES",
    "POSITIONS",
    "ROLE_POSITIONS",
    "SUMMED",
    "GraphShape",
    "PairScores",
    "ScoredGraph",
    "check_positions",
    "edge_mask",
    "half_precision",
    "to_networkx",
    "upgrade_metadata",
]

PAIR_EDGES = 4096
"""How many of a graph's strongest edges keep each scoring pair's own score (:class:`PairScores`)."""

N_ROLES = len(ROLES)

MAX_LAYERS = 1024
"""The most layers a shape read from a file may have (Llama 3.1 405B has 126, GPT-3 96)."""
MAX_HEADS = 1024
"""The most query heads per layer a shape read from a file may have (Llama 3.1 405B has 128, Falcon 180B 232)."""
MAX_GRAPH_ENTRIES = 2**30
"""The most ``senders x receivers`` entries a shape read from a file may have.

About twice the largest real model's: Megatron-Turing NLG 530B (105 layers,
128 heads, no key/value grouping) has 5.5e8, Llama 3.1 405B (126 layers, 128
query and 8 key/value heads) 3.0e8. A dense float32 score matrix this size
takes 4 GiB; anything larger in a file is a mistake or an attack.
"""


def check_positions(positions: str) -> str:
    """``positions`` if it is ``"summed"`` or ``"roles"``, else an :class:`InputError` naming both."""
    if positions not in POSITIONS:
        raise InputError(
            f"positions must be 'summed' (scores summed over positions) or 'roles' "
            f"(split by position role), not {positions!r}"
        )
    return positions


def upgrade_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata written before version 0.2 called the score method ``method``; rename it in place.

    >>> upgrade_metadata({"method": "eap-ig"})
    {'score_method': 'eap-ig'}
    """
    if "method" in metadata and "score_method" not in metadata:
        metadata["score_method"] = metadata.pop("method")
    return metadata


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
        circuits.vocab.InputError: x.json: a graph of 1000 layers, 100 heads and 100 key/value heads has 3.0e+10 ...
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
    def of(cls, model: Any) -> GraphShape:
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


def half_precision(values: np.ndarray) -> np.ndarray:
    """``values`` (float32) rounded to float16's 11 significant bits, unless some would not fit float16.

    Per-pair scores are kept this way: resampling needs two or three digits,
    and the stored file is then exact at half the size.

    >>> half_precision(np.array([1.0001, -3.0], dtype=np.float32)).tolist()
    [1.0, -3.0]
    >>> half_precision(np.array([1e6], dtype=np.float32)).tolist()
    [1000000.0]
    """
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    if not np.array_equal(np.isfinite(half), np.isfinite(values)):
        return values
    return half.astype(np.float32)


@dataclass(frozen=True)
class PairScores:
    """Each scoring pair's own scores on a graph's strongest edges.

    A graph's score is the mean over its scoring pairs; bootstraps over the
    pairs, split-half noise ceilings and permutation nulls re-average these
    per-pair scores instead of re-scoring. Only the ``PAIR_EDGES`` edges of
    largest ``|score|`` are kept (a circuit of a few hundred edges re-drawn
    from resampled pairs would need an edge to pass thousands of stronger
    ones to come from outside them); the other edges keep their mean.

    Parameters
    ----------
    edges : numpy.ndarray
        ``[K]`` flat indices into the ``[senders, receivers]`` score matrix,
        strongest first.
    values : numpy.ndarray
        ``[n_pairs, K]`` float32: pair ``i``'s score of edge ``edges[k]``.

    Examples
    --------
    >>> p = PairScores(np.array([5, 2]), np.array([[1.0, -2.0], [3.0, 0.0]]))
    >>> p.n_pairs, p.means().tolist(), p.means(np.array([0.0, 1.0])).tolist()
    (2, [2.0, -1.0], [3.0, 0.0])
    """

    edges: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.int64).ravel()
        values = np.asarray(self.values, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != edges.size or values.shape[0] < 1:
            raise InputError(f"pair scores need [n_pairs, {edges.size}] values, not {list(values.shape)}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "values", values)

    @property
    def n_pairs(self) -> int:
        return int(self.values.shape[0])

    def means(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The ``[K]`` scores averaged over the pairs, each weighted by ``weights`` (resample counts)."""
        if weights is None:
            return self.values.astype(np.float64).mean(0)
        w = np.asarray(weights, dtype=np.float64)
        return (w @ self.values.astype(np.float64)) / w.sum()


@dataclass
class ScoredGraph:
    """Edge scores of one model on one relation, with how they were made.

    Usually made by :func:`circuits.score_relation` and stored with
    :func:`circuits.save_scored`. An edge's score is the estimated change of
    the metric (mean over the scoring pairs) when that edge alone carries the
    corrupted sender's value instead of the clean one. With the logit
    difference as metric, the edges a circuit relies on have *negative*
    scores; rank them with ``by="signed"`` (most negative first) or by
    ``|score|`` with ``by="abs"``.

    Parameters
    ----------
    shape : GraphShape
        The model's computation graph.
    scores : numpy.ndarray
        Dense ``[shape.n_senders, shape.n_receivers]`` scores. Stored as
        float32; entries that are not edges are set to 0.
    metadata : dict
        How the scores were made: model, relation, template, score method,
        metric, ablation, IG steps, prompt counts, split seed, known-fact
        filter, package version (see :func:`circuits.score_pairs`).
    pair_scores : PairScores, optional
        Each scoring pair's own scores of the strongest edges, for intervals
        and noise ceilings (:mod:`circuits.compare.noise`); graphs scored
        before version 0.3 have none. In a position-aware graph they are the
        scores of the strongest *units* (flat indices into ``role_scores``).
    role_scores : numpy.ndarray, optional
        Position-aware scores ``[n_roles, senders, receivers]``: an edge's
        score summed over the positions of one role only
        (:data:`~circuits.relations.roles.ROLES`). They add up over roles to
        ``scores``. A circuit of such a graph keeps *units* ``(edge, role)``;
        ``positions="roles"`` in :meth:`ranked` and :meth:`top_mask` ranks them.

    Attributes
    ----------
    mask : numpy.ndarray
        Boolean ``[senders, receivers]``: which entries are edges.

    Examples
    --------
    A hand-made graph of one layer with one head:

    >>> import numpy as np
    >>> from circuits import GraphShape, ScoredGraph
    >>> shape = GraphShape(1, 1, 1)
    >>> graph = ScoredGraph(shape, np.zeros((shape.n_senders, shape.n_receivers)))
    >>> graph.n_edges
    8
    >>> graph.scores[0, shape.logits_receiver] = -2.0  # input -> logits
    >>> graph.scores[shape.mlp_sender(0), shape.logits_receiver] = -1.0  # m0 -> logits
    >>> graph.scores[shape.head_sender(0, 0), shape.logits_receiver] = 0.5  # a0.h0 -> logits
    >>> senders, receivers = shape.sender_names(), shape.receiver_names()
    >>> best = [divmod(int(i), shape.n_receivers) for i in graph.ranked(by="signed")[:2]]
    >>> [(senders[s], receivers[r]) for s, r in best]
    [('input', 'logits'), ('m0', 'logits')]
    >>> int(graph.top_mask(3, by="abs").sum()), graph.node_scores()["a0.h0"]
    (3, 0.5)

    Scores of a tiny model on a relation:

    >>> from circuits import ScoreSettings, load_model, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> model = load_model("tiny-gpt2")
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> graph.shape, graph.scores.shape, graph.n_edges
    (GraphShape(n_layers=2, n_heads=4, n_kv_heads=4, parallel=False), (11, 27), 110)
    >>> graph.metadata["score_method"], graph.metadata["metric"], graph.metadata["n_pairs_scoring"]
    ('eap-ig', 'logit-diff', 3)
    """

    shape: GraphShape
    scores: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    pair_scores: PairScores | None = None
    role_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        expected = (self.shape.n_senders, self.shape.n_receivers)
        if self.scores.shape != expected:
            raise InputError(f"scores have shape {self.scores.shape}, the graph needs {expected}")
        self.mask = edge_mask(self.shape)
        self.scores = np.where(self.mask, self.scores, 0.0).astype(np.float32)
        if self.role_scores is not None:
            if self.role_scores.shape != (N_ROLES, *expected):
                raise InputError(
                    f"role scores have shape {self.role_scores.shape}, the graph needs "
                    f"{(N_ROLES, *expected)} (roles: {', '.join(ROLES)})"
                )
            self.role_scores = np.where(self.mask, self.role_scores, 0.0).astype(np.float32)
        if self.pair_scores is not None:
            edges = self.pair_scores.edges
            valid = self.unit_mask(self.positions).ravel()
            if edges.size and (edges.min() < 0 or edges.max() >= valid.size or not valid[edges].all()):
                raise InputError("pair scores name entries that are not edges of this graph")

    @property
    def positions(self) -> str:
        """``"roles"`` when the graph has position-aware scores, else ``"summed"``."""
        return ROLE_POSITIONS if self.role_scores is not None else SUMMED

    def unit_scores(self, positions: str = SUMMED) -> np.ndarray:
        """The scores circuits choose from: ``scores`` ([S, R]) or ``role_scores`` ([n_roles, S, R])."""
        if check_positions(positions) == SUMMED:
            return self.scores
        if self.role_scores is None:
            relation = self.metadata.get("relation", "this graph")
            raise InputError(
                f"{relation}: the graph has no per-role scores; score it with "
                "`circuits score ... --positions roles`"
            )
        return self.role_scores

    def unit_mask(self, positions: str = SUMMED) -> np.ndarray:
        """Which entries of :meth:`unit_scores` are real (edge, or (edge, role)) units."""
        if check_positions(positions) == SUMMED:
            return self.mask
        return np.broadcast_to(self.mask, (N_ROLES, *self.mask.shape))

    def n_units(self, positions: str = SUMMED) -> int:
        """Number of edges, or of (edge, role) units with ``positions="roles"``."""
        return self.n_edges * (N_ROLES if check_positions(positions) == ROLE_POSITIONS else 1)

    @property
    def n_edges(self) -> int:
        """Number of edges of the graph (the true entries of :attr:`mask`)."""
        return int(self.mask.sum())

    def edges(self) -> Iterator[tuple[str, str, float]]:
        """Every edge as ``(sender, receiver, score)`` in row-major order."""
        senders, receivers = self.shape.sender_names(), self.shape.receiver_names()
        for s, r in zip(*np.nonzero(self.mask), strict=True):
            yield senders[s], receivers[r], float(self.scores[s, r])

    def ranked(self, *, by: str = "abs", positions: str = SUMMED) -> np.ndarray:
        """Flat indices of the real edges, best first.

        ``by="abs"`` ranks by ``|score|``; ``by="signed"`` by ``-score`` (the
        most negative, i.e. most relied-on, first; see the module docstring).
        With ``positions="roles"`` the (edge, role) units are ranked, as flat
        indices into ``[n_roles, senders, receivers]``.
        """
        if by not in ("abs", "signed"):
            raise InputError(f"rank edges by 'abs' or 'signed', not {by!r}")
        flat = self.unit_scores(positions).ravel()
        key = -np.abs(flat) if by == "abs" else flat
        idx = np.nonzero(self.unit_mask(positions).ravel())[0]
        return idx[np.argsort(key[idx], kind="stable")]

    def top_mask(self, n: int, *, by: str = "abs", positions: str = SUMMED) -> np.ndarray:
        """Boolean mask of the ``n`` best edges (``[senders, receivers]``) or units (``[n_roles, S, R]``)."""
        shape = self.unit_mask(positions).shape
        keep = np.zeros(int(np.prod(shape)), dtype=bool)
        keep[self.ranked(by=by, positions=positions)[: max(0, n)]] = True
        return keep.reshape(shape)

    def node_scores(self) -> dict[str, float]:
        """Each sender's score: the sum of its outgoing edge scores.

        For attribution scores this equals the node's own attribution, because
        a sender's output enters every later receiver's input additively.
        """
        sums = self.scores.sum(axis=1)
        return {name: float(v) for name, v in zip(self.shape.sender_names(), sums, strict=True)}

    def metadata_json(self) -> str:
        return json.dumps({**self.metadata, "shape": self.shape.as_dict()}, indent=2, sort_keys=True)


def to_networkx(graph: ScoredGraph, *, edges: np.ndarray | None = None) -> Any:
    """A networkx DiGraph of the scored graph.

    Nodes are the senders and receivers by name (an MLP's input and output are
    one node ``m{l}``). A head's ``<q>``, ``<k>`` and ``<v>`` input nodes lead
    into the head by structural edges (``internal=True``); with grouped-query
    attention a key/value input leads into every query head of its group. Scored
    edges carry ``score``, ``weight`` (``|score|``) and ``qkv`` (the letter of
    the head input they enter, or ``""``). ``edges`` is an optional boolean
    mask selecting a subset.

    >>> g = ScoredGraph(GraphShape(1, 1, 1), np.ones((3, 5)))
    >>> nxg = to_networkx(g)
    >>> sorted(nxg.successors("input"))
    ['a0.h0<k>', 'a0.h0<q>', 'a0.h0<v>', 'logits', 'm0']
    >>> nxg.has_edge("a0.h0<q>", "a0.h0")
    True
    """
    import networkx as nx

    shape = graph.shape
    keep = graph.mask if edges is None else (edges & graph.mask)
    senders, receivers = shape.sender_names(), shape.receiver_names()
    out = nx.DiGraph()
    for s, r in zip(*np.nonzero(keep), strict=True):
        name = receivers[r]
        qkv = name[-2] if name.endswith(">") else ""
        score = float(graph.scores[s, r])
        out.add_edge(senders[s], name, score=score, weight=abs(score), qkv=qkv, internal=False)
    for layer in range(shape.n_layers):
        for head in range(shape.n_heads):
            target = head_name(layer, head)
            kv = head // shape.group
            for letter, index in (("q", head), ("k", kv), ("v", kv)):
                source = qkv_name(layer, index, letter)
                if source in out:
                    out.add_edge(source, target, internal=True, qkv=letter)
    return out
