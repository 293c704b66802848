"""The :class:`Circuit`: chosen edges (or (edge, role) units) of a scored graph, their scores, provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.checks import name_problem, shape_ranges
from circuits.circuit.index import Edge, component_of, graph_index, group_units, plain
from circuits.circuit.view import circuit_networkx
from circuits.graph import ROLE_POSITIONS, SUMMED, GraphShape, ScoredGraph
from circuits.relations.roles import ROLES
from circuits.vocab import InputError, parse_node

__all__ = ["Circuit"]


@dataclass
class Circuit:
    """Selected edges of a scored graph, their scores, and where they came from.

    Usually made by :func:`circuits.extract.extract` from a
    :class:`~circuits.graph.ScoredGraph`; :meth:`to_mask` gives the boolean
    ``[senders, receivers]`` mask an evaluator runs
    (:func:`circuits.heldout_evaluator`). Edge scores keep the scored graph's
    sign convention: the estimated change of the metric when that edge alone
    is corrupted, so with logit difference the edges a circuit relies on are
    negative. Two circuits are equal when every field is equal; a circuit
    written and read back (:func:`circuits.store.write_circuit`,
    :func:`circuits.store.read_circuit`: node-link JSON) equals itself exactly.

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
    >>> c.to_networkx().has_edge("a0.h0<q>", "a0.h0")  # a head input leads into its head
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
        self.provenance = plain(self.provenance)
        self.params = plain(self.params)
        if self.faithfulness is not None:
            self.faithfulness = float(self.faithfulness)

    def _check_roles(self, roles: dict[Edge, dict[str, float]]) -> dict[Edge, dict[str, float]]:
        """Role scores in :data:`ROLES` order: every edge needs one role or more, no other edge any."""
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
        """Each unit's score, keyed ``(sender, receiver, role)`` if position-aware, else by the edge."""
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
        """``[n_roles, senders, receivers]`` mask of a position-aware circuit (else :meth:`to_mask`)."""
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
        """A circuit of ``graph``'s edges (a list: scores from ``graph``); ``roles``: see the class."""
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
        """A networkx ``DiGraph`` of the circuit (:func:`~circuits.circuit.view.circuit_networkx`).

        Its nodes are the circuit's components and head inputs, its edges the
        scored edges plus ``internal=True`` edges from a head input into its
        heads; the circuit's fields are in ``G.graph``.
        """
        return circuit_networkx(self)
