"""Edge scores of one model on one relation (:class:`ScoredGraph`), and its networkx view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.graph.pair_scores import PairScores
from circuits.graph.shape import GraphShape, edge_mask
from circuits.relations.roles import ROLES
from circuits.vocab import POSITIONS, ROLE_POSITIONS, SUMMED, InputError, head_name, qkv_name

__all__ = ["N_ROLES", "ScoredGraph", "check_positions", "to_networkx", "upgrade_metadata"]

N_ROLES = len(ROLES)


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
