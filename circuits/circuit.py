"""A circuit: the edges chosen from a scored graph, with their scores and provenance.

A :class:`Circuit` holds ``(sender, receiver)`` name pairs in the vocabulary of
:mod:`circuits.graph` (receivers such as ``a3.h1<q>``, ``a3.h0<k>``, ``m3``,
``logits``), each with its score, plus the metadata of the scored graph it came
from and how it was extracted. It converts

- to and from a boolean ``[senders, receivers]`` mask (for
  :meth:`circuits.evaluate.Evaluator.run_mask`);
- to and from a networkx ``DiGraph`` laid out like :func:`circuits.graph.to_networkx`;
- to and from JSON (networkx node-link data), exactly.

A *position-aware* circuit (from a graph scored with position roles) keeps
units ``(edge, role)``: :attr:`Circuit.roles` maps each kept edge to the roles
it is kept at and their scores, ``edges`` holds each edge's summed score over
those roles, and :meth:`Circuit.to_unit_mask` gives the ``[n_roles, senders,
receivers]`` mask an evaluator runs. In JSON each edge carries its ``roles``.

Which nodes a circuit contains: every sender of one of its edges, plus the
component each receiver belongs to (a head for ``<q>``, the MLP, ``logits``).
A ``<k>`` or ``<v>`` receiver names a *key/value* head, which under grouped-query
attention is shared by a group of query heads, so it adds no node by itself.
A head whose output no kept edge carries has no effect on the metric (every
reader sees its ablated value), so :meth:`Circuit.heads` counts a head when the
circuit keeps one of its outgoing edges or its query input.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuits.checks import (
    check_metadata,
    check_node_link,
    check_params,
    finite_number,
    is_number,
    name_problem,
    non_finite,
    shape_ranges,
    short,
)
from circuits.graph import (
    ROLE_POSITIONS,
    SUMMED,
    GraphShape,
    ScoredGraph,
    check_positions,
    edge_mask,
    upgrade_metadata,
)
from circuits.relations.roles import ROLES
from circuits.vocab import InputError, head_name, parse_node

__all__ = ["FORMAT", "Circuit", "component_of", "graph_index", "group_units"]

FORMAT = "circuits.circuit/1"

Edge = tuple[str, str]


@functools.lru_cache(maxsize=16)
def graph_index(shape: GraphShape) -> tuple[dict[str, int], dict[str, int], np.ndarray]:
    """Name-to-row and name-to-column maps of ``shape`` and its edge mask (cached)."""
    senders = {name: i for i, name in enumerate(shape.sender_names())}
    receivers = {name: i for i, name in enumerate(shape.receiver_names())}
    mask = edge_mask(shape)
    mask.setflags(write=False)
    return senders, receivers, mask


@functools.lru_cache(maxsize=65536)
def component_of(receiver: str) -> str | None:
    """The node a receiver belongs to: a head for ``<q>``, itself for MLPs and logits (cached: it is hot).

    >>> component_of("a2.h3<q>"), component_of("m1"), component_of("a2.h0<k>")
    ('a2.h3', 'm1', None)
    """
    kind, layer, head, qkv = parse_node(receiver)
    if kind == "head":
        return head_name(layer, head) if qkv == "q" else None  # type: ignore[arg-type]
    return receiver


def group_units(units: dict[tuple[str, str, str], float]) -> dict[Edge, dict[str, float]]:
    """``{(sender, receiver, role): score}`` grouped by edge, as :attr:`Circuit.roles` holds them.

    >>> group_units({("input", "logits", "last"): -1.0, ("input", "logits", "subject"): 0.5})
    {('input', 'logits'): {'last': -1.0, 'subject': 0.5}}
    """
    out: dict[Edge, dict[str, float]] = {}
    for (sender, receiver, role), score in units.items():
        out.setdefault((sender, receiver), {})[role] = score
    return out


def _plain(value: Any) -> Any:
    """``value`` as it comes back from JSON (tuples become lists), so round trips are exact."""
    return json.loads(json.dumps(value))


@dataclass
class Circuit:
    """Selected edges of a scored graph, their scores, and where they came from.

    Usually made by :func:`circuits.extract.extract` from a
    :class:`~circuits.graph.ScoredGraph`; :meth:`to_mask` gives the boolean
    ``[senders, receivers]`` mask an evaluator runs
    (:func:`circuits.heldout_evaluator`). Edge scores keep the scored graph's
    sign convention: the estimated change of the metric when that edge alone
    is corrupted, so with logit difference the edges a circuit relies on are
    negative. Two circuits are equal when every field is equal; the JSON round
    trip (:meth:`to_json`, :meth:`from_json`, :meth:`save`, :meth:`load`) is exact.

    Parameters
    ----------
    shape : GraphShape
        The computation graph the edges belong to.
    edges : dict
        ``{(sender, receiver): score}``; every pair must be an edge of ``shape``.
    node_scores : dict
        Scores of the circuit's sender nodes (the scored graph's node scores).
    provenance : dict
        The scored graph's metadata (model, relation, method, metric, ...).
    extract_method, params
        How the edges were chosen (``"top-n"``, ``{"n": 20, "by": "signed"}``);
        the scoring method is ``provenance["score_method"]``.
    faithfulness : float, optional
        Normalized faithfulness measured by a real circuit evaluation.
    name : str
        A short name for files and tables.
    roles : dict, optional
        Position-aware circuits only: ``{(sender, receiver): {role: score}}``,
        the roles (:data:`~circuits.relations.roles.ROLES`) each edge is kept
        at; ``edges`` then holds the sum of those scores. ``None`` for a
        circuit of edges summed over positions.

    Raises
    ------
    InputError
        A pair is not an edge of ``shape`` (unknown name, or a sender that does
        not come before its receiver), or ``node_scores`` names a node that
        sends no circuit edge.

    Examples
    --------
    >>> shape = GraphShape(1, 1, 1)
    >>> c = Circuit(shape, {("input", "a0.h0<q>"): -1.0, ("a0.h0", "logits"): -2.0})
    >>> c.n_edges, sorted(c.nodes()), c.heads()
    (2, ['a0.h0', 'input', 'logits'], ['a0.h0'])
    >>> Circuit.from_json(c.to_json()) == c
    True

    The 10 most relied-on edges of a tiny model's scored graph:

    >>> import numpy as np
    >>> from circuits import ScoreSettings, load_model, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, _ = score_relation(load_model("tiny-gpt2"), "country_capital_city", settings, progress=False)
    >>> top = Circuit.from_mask(graph, graph.top_mask(10, by="signed"), extract_method="top-n",
    ...                         params={"n": 10, "by": "signed"})
    >>> top.n_edges, top.model, top.relation, top.provenance["metric"]
    (10, 'tiny-gpt2', 'country_capital_city', 'logit-diff')
    >>> bool(np.array_equal(top.to_mask(), graph.top_mask(10, by="signed")))
    True
    """

    shape: GraphShape
    edges: dict[Edge, float]
    node_scores: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    extract_method: str = "custom"
    params: dict[str, Any] = field(default_factory=dict)
    faithfulness: float | None = None
    name: str = ""
    roles: dict[Edge, dict[str, float]] | None = None

    def __post_init__(self) -> None:
        senders, receivers, mask = graph_index(self.shape)
        clean: dict[Edge, float] = {}
        for key, score in self.edges.items():
            sender, receiver = key
            s, r = senders.get(sender), receivers.get(receiver)
            for name, index, side in ((sender, s, "sender"), (receiver, r, "receiver")):
                if index is None:
                    why = name_problem(name, self.shape, side) or "unknown name"
                    raise InputError(
                        f"edge ({sender!r}, {receiver!r}): {name!r} is not a {side} of the graph "
                        f"({shape_ranges(self.shape)}): {why}"
                    )
            if not mask[s, r]:
                raise InputError(
                    f"edge ({sender!r}, {receiver!r}) is not an edge of the graph "
                    f"({shape_ranges(self.shape)}): a sender must come before its receiver in the "
                    "forward order (a head or MLP "
                    "of layer l feeds later layers and logits; an MLP reads its own layer's heads "
                    "unless the block is parallel)"
                )
            clean[(str(sender), str(receiver))] = float(score)
        self.edges = clean
        if self.roles is not None:
            self.roles = self._check_roles(self.roles)
            self.edges = {e: float(sum(self.roles[e].values())) for e in clean}
        present = {s for s, _ in clean}
        unknown = set(self.node_scores) - present
        if unknown:
            raise InputError(f"node_scores name nodes that send no circuit edge: {sorted(unknown)}")
        self.node_scores = {k: float(v) for k, v in self.node_scores.items()}
        self.provenance = _plain(self.provenance)
        self.params = _plain(self.params)
        if self.faithfulness is not None:
            self.faithfulness = float(self.faithfulness)

    def _check_roles(self, roles: dict[Edge, dict[str, float]]) -> dict[Edge, dict[str, float]]:
        """Per-edge role scores in :data:`ROLES` order; every edge needs one role or more, no other edge any."""
        out: dict[Edge, dict[str, float]] = {}
        for edge in self.edges:
            kept = roles.get(edge) or roles.get((str(edge[0]), str(edge[1])))
            if not kept:
                raise InputError(
                    f"position-aware edge {edge!r} is kept at no role; give it one or more of "
                    f"{', '.join(ROLES)}"
                )
            unknown = set(kept) - set(ROLES)
            if unknown:
                raise InputError(f"edge {edge!r}: unknown roles {sorted(unknown)}; valid: {', '.join(ROLES)}")
            out[edge] = {r: float(kept[r]) for r in ROLES if r in kept}
        extra = {(str(s), str(r)) for s, r in roles} - set(self.edges)
        if extra:
            raise InputError(f"roles name edges the circuit does not keep: {sorted(extra)[:3]}")
        return out

    # ------------------------------------------------------------- queries
    @property
    def n_edges(self) -> int:
        """Number of edges."""
        return len(self.edges)

    @property
    def positions(self) -> str:
        """``"roles"`` for a position-aware circuit, else ``"summed"``."""
        return ROLE_POSITIONS if self.roles is not None else SUMMED

    @property
    def n_units(self) -> int:
        """Number of (edge, role) units of a position-aware circuit; the edge count otherwise."""
        return self.n_edges if self.roles is None else sum(len(r) for r in self.roles.values())

    def unit_scores(self) -> dict[tuple[str, ...], float]:
        """Each unit's score: ``(sender, receiver, role)`` when position-aware, else the edges ``(sender, receiver)``."""
        if self.roles is None:
            return dict(self.edges)
        return {(s, r, role): v for (s, r), kept in self.roles.items() for role, v in kept.items()}

    def units(self) -> set[tuple[str, ...]]:
        """The circuit's units (the keys of :meth:`unit_scores`)."""
        return set(self.unit_scores())

    def role_counts(self) -> dict[str, int]:
        """How many units each role keeps (every edge at ``"all"`` for a summed circuit)."""
        if self.roles is None:
            return {"all": self.n_edges}
        return {role: sum(role in kept for kept in self.roles.values()) for role in ROLES}

    @property
    def model(self) -> str | None:
        """Name of the model the scored graph came from (``provenance["model"]``)."""
        return self.provenance.get("model")

    @property
    def relation(self) -> str | None:
        """Name of the relation the scored graph came from (``provenance["relation"]``)."""
        return self.provenance.get("relation")

    def label(self) -> str:
        """The name, else the relation, else the extraction method."""
        return self.name or self.relation or self.extract_method

    def senders(self) -> set[str]:
        return {s for s, _ in self.edges}

    def nodes(self) -> frozenset[str]:
        """Component names: senders of edges and the components receivers belong to."""
        out = set(self.senders())
        for _, receiver in self.edges:
            component = component_of(receiver)
            if component is not None:
                out.add(component)
        return frozenset(out)

    def heads(self) -> list[str]:
        """Heads whose output or query input the circuit keeps, in forward order."""
        heads = {n for n in self.nodes() if n.startswith("a")}
        return sorted(heads, key=lambda n: parse_node(n)[1:3])  # type: ignore[arg-type,return-value]

    def mlps(self) -> list[str]:
        return sorted((n for n in self.nodes() if n.startswith("m")), key=lambda n: int(n[1:]))

    def summary(self) -> dict[str, Any]:
        """One row of facts about the circuit (for tables and manifests)."""
        return {
            "name": self.name,
            "model": self.model,
            "relation": self.relation,
            "extract_method": self.extract_method,
            "params": self.params,
            "n_edges": self.n_edges,
            "n_nodes": len(self.nodes()),
            "n_heads": len(self.heads()),
            "n_mlps": len(self.mlps()),
            "faithfulness": self.faithfulness,
            "positions": self.positions,
            "n_units": self.n_units,
        }

    # ------------------------------------------------------------- masks
    def to_mask(self) -> np.ndarray:
        """Boolean ``[senders, receivers]`` mask of the circuit's edges."""
        senders, receivers, mask = graph_index(self.shape)
        keep = np.zeros(mask.shape, dtype=bool)
        for sender, receiver in self.edges:
            keep[senders[sender], receivers[receiver]] = True
        return keep

    def to_unit_mask(self) -> np.ndarray:
        """Boolean ``[n_roles, senders, receivers]`` mask of a position-aware circuit (else :meth:`to_mask`)."""
        if self.roles is None:
            return self.to_mask()
        senders, receivers, mask = graph_index(self.shape)
        keep = np.zeros((len(ROLES), *mask.shape), dtype=bool)
        for (sender, receiver), kept in self.roles.items():
            for role in kept:
                keep[ROLES.index(role), senders[sender], receivers[receiver]] = True
        return keep

    @classmethod
    def from_mask(
        cls,
        graph: ScoredGraph,
        keep: np.ndarray,
        *,
        extract_method: str = "custom",
        params: dict[str, Any] | None = None,
        name: str = "",
    ) -> Circuit:
        """The circuit of the edges of ``graph`` where ``keep`` is true (non-edges are ignored).

        A ``[n_roles, senders, receivers]`` mask of a position-aware graph gives
        a position-aware circuit of those (edge, role) units.
        """
        keep = np.asarray(keep, dtype=bool)
        names_s, names_r = graph.shape.sender_names(), graph.shape.receiver_names()
        if keep.ndim == 3:
            role_scores = graph.unit_scores(ROLE_POSITIONS)
            if keep.shape != role_scores.shape:
                raise InputError(
                    f"a position-aware circuit mask has shape {role_scores.shape}, not {keep.shape}"
                )
            roles = group_units(
                {
                    (names_s[s], names_r[r], ROLES[role]): float(role_scores[role, s, r])
                    for role, s, r in zip(*np.nonzero(keep & graph.mask), strict=True)
                }
            )
            return cls.from_edges(
                graph,
                {e: 0.0 for e in roles},
                extract_method=extract_method,
                params=params,
                name=name,
                roles=roles,
            )
        if keep.shape != graph.mask.shape:
            raise InputError(f"a circuit mask has shape {graph.mask.shape}, not {keep.shape}")
        rows, cols = np.nonzero(keep & graph.mask)
        edges = {(names_s[s], names_r[r]): float(graph.scores[s, r]) for s, r in zip(rows, cols, strict=True)}
        return cls.from_edges(graph, edges, extract_method=extract_method, params=params, name=name)

    @classmethod
    def from_edges(
        cls,
        graph: ScoredGraph,
        edges: dict[Edge, float] | list[Edge],
        *,
        extract_method: str = "custom",
        params: dict[str, Any] | None = None,
        name: str = "",
        roles: dict[Edge, dict[str, float]] | None = None,
    ) -> Circuit:
        """A circuit of ``graph``'s edges (a list takes the scores from ``graph``); ``roles`` as in the class."""
        if not isinstance(edges, dict):
            senders, receivers, _ = graph_index(graph.shape)
            edges = {e: float(graph.scores[senders[e[0]], receivers[e[1]]]) for e in edges}
        nodes = graph.node_scores()
        present = {s for s, _ in edges}
        return cls(
            graph.shape,
            dict(edges),
            {n: nodes[n] for n in present},
            dict(graph.metadata),
            extract_method,
            dict(params or {}),
            None,
            name,
            roles,
        )

    def with_edges(self, keys: list[Edge] | set[Edge], **changes: Any) -> Circuit:
        """A copy keeping only ``keys`` (a subset of the edges, at all their roles), with fields changed."""
        wanted = set(keys)
        if self.roles is not None:
            return self.with_units({u for u in self.units() if u[:2] in wanted}, **changes)
        return self._with(set(self.edges) & wanted, None, changes)

    def with_units(self, keys: set[tuple[str, ...]], **changes: Any) -> Circuit:
        """A copy keeping only the units ``keys`` (a subset of :meth:`units`), with fields changed."""
        if self.roles is None:
            return self._with(set(self.edges) & {(k[0], k[1]) for k in keys}, None, changes)
        roles = group_units({u: v for u, v in self.unit_scores().items() if u in keys})  # type: ignore[misc]
        return self._with(set(roles), roles, changes)

    def _with(
        self, kept: set[Edge], roles: dict[Edge, dict[str, float]] | None, changes: dict[str, Any]
    ) -> Circuit:
        edges = {k: v for k, v in self.edges.items() if k in kept}
        present = {s for s, _ in edges}
        fields: dict[str, Any] = {
            "shape": self.shape,
            "edges": edges,
            "node_scores": {n: v for n, v in self.node_scores.items() if n in present},
            "provenance": self.provenance,
            "extract_method": self.extract_method,
            "params": self.params,
            "faithfulness": None,
            "name": self.name,
            "roles": roles,
        }
        fields.update(changes)
        return Circuit(**fields)

    # ------------------------------------------------------------- networkx
    def to_networkx(self) -> Any:
        """A networkx ``DiGraph`` of the circuit.

        Nodes carry ``kind`` (``input``, ``head``, ``mlp``, ``logits`` or
        ``head_input``), ``layer``, ``head``, ``qkv`` and ``score``. Scored edges
        carry ``score``, ``weight`` (``|score|``), ``qkv`` (the head input they
        enter, or ``""``) and ``internal=False``. A head input leads into its
        head by an ``internal=True`` edge; a key/value input leads into those
        heads of its group that are in the circuit. The circuit's own fields are
        in ``G.graph``.
        """
        import networkx as nx

        g = nx.DiGraph()
        g.graph.update(
            {
                "format": FORMAT,
                "name": self.name,
                "extract_method": self.extract_method,
                "params": self.params,
                "provenance": self.provenance,
                "shape": self.shape.as_dict(),
                "faithfulness": self.faithfulness,
                "positions": self.positions,
            }
        )
        components = self.nodes()
        for sender, receiver in self.edges:
            for name in (sender, receiver):
                if name not in g:
                    g.add_node(name, **self._node_attrs(name))
        for name in components:
            if name not in g:
                g.add_node(name, **self._node_attrs(name))
        for (sender, receiver), score in self.edges.items():
            edge_qkv = receiver[-2] if receiver.endswith(">") else ""
            extra = {} if self.roles is None else {"roles": dict(self.roles[(sender, receiver)])}
            g.add_edge(
                sender, receiver, score=score, weight=abs(score), qkv=edge_qkv, internal=False, **extra
            )
        group = self.shape.group
        for name in list(g.nodes):
            _, layer, index, qkv = parse_node(name)
            if qkv is None:
                continue
            targets = [index] if qkv == "q" else range(index * group, (index + 1) * group)  # type: ignore[operator]
            for head in targets:
                target = head_name(layer, head)  # type: ignore[arg-type]
                if target in components:
                    g.add_edge(name, target, internal=True, qkv=qkv)
        return g

    def _node_attrs(self, name: str) -> dict[str, Any]:
        kind, layer, head, qkv = parse_node(name)
        if qkv is not None:
            kind = "head_input"
        return {"kind": kind, "layer": layer, "head": head, "qkv": qkv, "score": self.node_scores.get(name)}

    @classmethod
    def from_networkx(cls, g: Any) -> Circuit:
        """The circuit of a ``DiGraph`` made by :meth:`to_networkx` (internal edges are skipped).

        Every field is checked before it is used: the shape against sane
        bounds (:meth:`GraphShape.from_dict`) before anything of its size is
        allocated, every node's name against the shape, every score (edge,
        node, role, faithfulness, numbers in ``params``) is a finite number,
        and the provenance's fields the engine reads have their types
        (:func:`~circuits.checks.check_metadata`).
        """
        meta = g.graph
        if not isinstance(meta, dict):
            raise InputError(f"the graph attributes must be an object, not {type(meta).__name__}")
        if meta.get("format") != FORMAT:
            raise InputError(f"graph attribute 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
        if "shape" not in meta:
            raise InputError(
                "graph attribute 'shape' is missing; it holds n_layers, n_heads, n_kv_heads, parallel"
            )
        shape = GraphShape.from_dict(meta["shape"], source="graph attribute 'shape' is invalid")
        size = shape_ranges(shape)
        for u, v, data in g.edges(data=True):
            for name, side in ((u, "sender"), (v, "receiver")):
                why = None if data.get("internal") else name_problem(name, shape, side)
                if why is not None:
                    raise InputError(
                        f"edge ({u!r}, {v!r}): {name!r} is not a {side} of the graph ({size}): {why}"
                    )
        senders, receivers, _ = graph_index(shape)
        for node in g.nodes:
            if not isinstance(node, str) or (node not in senders and node not in receivers):
                raise InputError(
                    f"node {node!r} is not a node of the graph ({size}): "
                    f"{name_problem(node, shape) or 'unknown name'}"
                )
        edges = {}
        position_aware = check_positions(meta.get("positions", SUMMED)) == ROLE_POSITIONS
        roles: dict[Edge, dict[str, float]] | None = {} if position_aware else None
        for u, v, data in g.edges(data=True):
            if data.get("internal"):
                continue
            if "score" not in data:
                raise InputError(f"edge ({u!r}, {v!r}) has no 'score' attribute")
            edges[(u, v)] = finite_number(data["score"], f"edge ({u!r}, {v!r}): 'score'")
            if roles is not None:
                kept = data.get("roles")
                if not isinstance(kept, dict) or not all(is_number(x) for x in kept.values()):
                    raise InputError(
                        f"position-aware edge ({u!r}, {v!r}) needs 'roles': {{role: score}} with "
                        f"finite numbers as scores, not {short(kept)}"
                    )
                roles[(u, v)] = kept
        node_scores = {
            n: finite_number(d["score"], f"node {n!r}: 'score'")
            for n, d in g.nodes(data=True)
            if d.get("score") is not None
        }
        provenance = meta.get("provenance")
        if not isinstance(provenance, dict | None):
            raise InputError(f"graph attribute 'provenance' must be an object, not {short(provenance)}")
        provenance = upgrade_metadata(dict(provenance or {}))
        check_metadata(provenance, "graph attribute 'provenance'", names_may_be_null=True)
        extract_method = meta.get("extract_method", meta.get("method", "custom"))  # "method" before 0.2
        name = meta.get("name", "")
        for key, value in (("extract_method", extract_method), ("name", name)):
            if not isinstance(value, str):
                raise InputError(f"graph attribute {key!r} must be a string, not {short(value)}")
        params = meta.get("params") or {}
        if not isinstance(params, dict):
            raise InputError(f"graph attribute 'params' must be an object, not {short(params)}")
        where = non_finite(params)
        if where is not None:
            raise InputError(
                f"graph attribute 'params': field {where[0]!r} is {where[1]}; numbers must be finite"
            )
        check_params(params)
        faithfulness = meta.get("faithfulness")
        if faithfulness is not None:
            faithfulness = finite_number(faithfulness, "graph attribute 'faithfulness'", "a number or null")
        return cls(
            shape, edges, node_scores, provenance, str(extract_method), params, faithfulness, str(name), roles
        )

    # ------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """Node-link data of :meth:`to_networkx` (JSON-ready)."""
        import networkx as nx

        return nx.node_link_data(self.to_networkx(), edges="edges")

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "circuit") -> Circuit:
        """The circuit of node-link data written by :meth:`to_dict`; every error starts with ``source``.

        The structure (``graph``, ``nodes`` and ``edges`` and their fields) is
        checked before networkx reads it, and no number anywhere may be NaN
        or infinite (Python writes ``NaN`` into JSON; it is refused, naming
        the field); then :meth:`from_networkx` checks the values.

        >>> data = Circuit(GraphShape(1, 1, 1), {("input", "logits"): -1.0}).to_dict()
        >>> data["edges"][0]["score"] = float("nan")
        >>> Circuit.from_dict(data, source="c.json")
        Traceback (most recent call last):
        ...
        circuits.vocab.InputError: c.json: edge ('input', 'logits'): 'score' is NaN; numbers must be finite
        >>> data["edges"][0]["score"] = "-1.0"
        >>> Circuit.from_dict(data, source="c.json")
        Traceback (most recent call last):
        ...
        circuits.vocab.InputError: c.json: edge ('input', 'logits'): 'score' is '-1.0'; valid: a finite number
        """
        import networkx as nx

        if not isinstance(data, dict) or "nodes" not in data or "edges" not in data:
            raise InputError(
                f"{source}: not circuit JSON (expected node-link data with 'nodes' "
                "and 'edges', as written by Circuit.to_json)"
            )
        try:
            check_node_link(data)
        except InputError as error:
            raise InputError(f"{source}: {error}") from None
        try:
            g = nx.node_link_graph(data, edges="edges")
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"{source}: malformed node-link data: {error!r}") from None
        try:
            return cls.from_networkx(g)
        except InputError as error:
            raise InputError(f"{source}: {error}") from None

    def to_json(self, *, indent: int | None = 1) -> str:
        faith = self.faithfulness
        if faith is not None and not math.isfinite(faith):
            raise InputError(f"faithfulness {faith} cannot be written to JSON; use None")
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "circuit") -> Circuit:
        """The circuit of JSON written by :meth:`to_json` (a byte-order mark is allowed); see :meth:`from_dict`."""
        try:
            data = json.loads(text.removeprefix("\ufeff"))
        except json.JSONDecodeError as error:
            raise InputError(f"{source}: malformed JSON at line {error.lineno}: {error.msg}") from None
        except RecursionError:
            raise InputError(f"{source}: malformed JSON: nested too deeply to be a circuit") from None
        except ValueError as error:  # e.g. an integer of more digits than Python converts
            raise InputError(f"{source}: malformed JSON: {error}") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> Path:
        """Write the JSON atomically."""
        from circuits.io import atomic_write_text

        atomic_write_text(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Circuit:
        """The circuit of a JSON file written by :meth:`save`; a file that is not one is an :class:`InputError`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such circuit file (write one with `circuits extract`)")
        try:
            raw = path.read_bytes()
        except OSError as error:
            raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise InputError(
                f"{path}: not UTF-8 text (line {line}, byte {error.start} is "
                f"0x{raw[error.start]:02x}); not a circuit file written by `circuits extract`"
            ) from None
        return cls.from_json(text, source=str(path))
