"""A graph file's content in EAP-IG's ungrouped layout, and the way to and from our objects (torch-free).

:class:`MibGraph` is what both file forms hold (:mod:`circuits.store.mib_json`,
:mod:`circuits.store.mib_pt`): scores and ``in_graph`` per sender and
ungrouped receiver (:mod:`circuits.store.mib_format`), the ``cfg``, node
scores and our metadata block. It is built from a scored graph or a circuit
(key/value scores repeated, :mod:`circuits.store.mib_kv`), selects MIB-sized
circuits (:meth:`MibGraph.top`) and reads back as a :class:`MibImport`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.checks import is_number, is_whole
from circuits.circuit import Circuit
from circuits.graph import GraphShape, ScoredGraph
from circuits.store.mib_format import (
    ENGINE_FORMAT,
    ENGINE_KEY,
    NEURON_KEYS,
    Layout,
    bad_value,
    check_engine,
    describe_shape,
    mib_cfg,
    mib_layout,
    mib_size,
    parse_cfg,
    size_label,
    valid_receivers,
    valid_senders,
)
from circuits.store.mib_kv import fold_kv, repeat_kv
from circuits.vocab import LOGITS, InputError

__all__ = ["MibGraph", "MibImport"]


@dataclass
class MibImport:
    """What a graph file holds, in this engine's terms.

    Attributes
    ----------
    graph : ScoredGraph
        Every edge's score (0 for edges the file leaves out).
    circuit : Circuit or None
        The edges the file marks ``in_graph``; ``None`` when it marks none.
    ours : bool
        Whether the file's cfg carries this engine's marker (its k/v scores
        are repeats, read back as one value instead of summed).
    """

    graph: ScoredGraph
    circuit: Circuit | None
    ours: bool


@dataclass
class MibGraph:
    """A graph file's content in EAP-IG's (ungrouped) layout, torch-free.

    Parameters
    ----------
    shape : GraphShape
        Our shape of the graph (``n_kv_heads`` included).
    scores, in_graph : numpy.ndarray
        ``[senders, mib receivers]`` float64 scores and booleans, columns in
        :func:`~circuits.store.mib_format.mib_receiver_names` order; non-edges are 0 and false.
    cfg : dict
        The file's ``cfg``.
    node_scores : dict
        Node scores the file carries (written as nodes' ``score``).
    engine : dict or None
        This engine's metadata block (see :mod:`circuits.store.mib`).
    kv_repeated : bool
        Whether the k/v columns are repeats of one key/value score (our files).

    Examples
    --------
    >>> from circuits import ScoredGraph
    >>> shape = GraphShape(1, 2, 1)
    >>> scores = np.zeros((shape.n_senders, shape.n_receivers))
    >>> scores[0, shape.k_receiver(0, 0)] = -3.0
    >>> scores[shape.head_sender(0, 1), shape.logits_receiver] = 1.0
    >>> mib = MibGraph.from_ours(ScoredGraph(shape, scores, {"model": "tiny-llama"}))
    >>> mib.n_edges, mib.cfg["d_model"], int(mib.top(2).in_graph.sum())
    (13, 32, 2)
    >>> [name for name, v in mib.top(2).edge_items() if v[1]]
    ['input->a0.h0<k>', 'input->a0.h1<k>']
    """

    shape: GraphShape
    scores: np.ndarray
    in_graph: np.ndarray
    cfg: dict[str, Any]
    node_scores: dict[str, float] = field(default_factory=dict)
    engine: dict[str, Any] | None = None
    kv_repeated: bool = True

    @property
    def layout(self) -> Layout:
        return mib_layout(self.shape)

    @property
    def n_edges(self) -> int:
        """Edges of the ungrouped graph."""
        return int(self.layout.mask.sum())

    # ------------------------------------------------------------ from our objects
    @classmethod
    def from_ours(
        cls,
        source: ScoredGraph | Circuit,
        *,
        scored: ScoredGraph | None = None,
        d_model: int | None = None,
        provenance: bool = True,
    ) -> MibGraph:
        """The file content of a scored graph (nothing in the graph) or of a circuit.

        A circuit's edges are in the graph with their scores; the other edges
        carry ``scored``'s scores when it is given, else 0. Node scores are
        the circuit's, or every sender's (:meth:`ScoredGraph.node_scores`).
        """
        if isinstance(source, Circuit):
            shape = source.shape
            if source.roles is not None:
                raise InputError(
                    f"{source.label()}: the MIB and EAP-IG graph formats have no position roles, so a "
                    "position-aware circuit would lose them; export a circuit extracted with "
                    "--positions summed"
                )
            if scored is not None and scored.shape != shape:
                raise InputError(
                    f"the circuit's graph is {shape} but the scored graph given is {scored.shape}"
                )
            base = (
                np.zeros((shape.n_senders, shape.n_receivers))
                if scored is None
                else scored.scores.astype(np.float64)
            )
            keep = source.to_mask()
            senders, receivers = shape.sender_names(), shape.receiver_names()
            row, col = {n: i for i, n in enumerate(senders)}, {n: i for i, n in enumerate(receivers)}
            for (sender, receiver), score in source.edges.items():
                base[row[sender], col[receiver]] = score
            node_scores = dict(source.node_scores)
            metadata = scored.metadata if scored is not None else source.provenance
            info: dict[str, Any] | None = {
                "name": source.name,
                "extract_method": source.extract_method,
                "params": source.params,
                "faithfulness": source.faithfulness,
                "provenance": source.provenance,
            }
        elif isinstance(source, ScoredGraph):
            if scored is not None:
                raise InputError(
                    "a scored graph is exported with its own scores; give scored= only with a circuit"
                )
            shape, base = source.shape, source.scores.astype(np.float64)
            keep = np.zeros(base.shape, dtype=bool)
            node_scores, metadata, info = source.node_scores(), source.metadata, None
        else:
            raise InputError(f"export a ScoredGraph or a Circuit, not {type(source).__name__}")
        if not np.isfinite(base).all():
            raise InputError("scores must be finite to be written; this graph has NaN or infinite scores")
        scores, in_graph = repeat_kv(shape, base, keep)
        engine = None
        if provenance:
            engine = json.loads(
                json.dumps(
                    {"format": ENGINE_FORMAT, "shape": shape.as_dict(), "metadata": metadata, "circuit": info}
                )
            )
        return cls(shape, scores, in_graph, mib_cfg(shape, metadata, d_model), node_scores, engine, True)

    @classmethod
    def for_export(
        cls,
        source: ScoredGraph | Circuit,
        *,
        fraction: float | None = None,
        by: str = "abs",
        **options: Any,
    ) -> MibGraph:
        """:meth:`from_ours` (``options``: ``scored``, ``d_model``, ``provenance``), with a scored
        graph's top ``fraction`` of the ungrouped edges in the graph when ``fraction`` is given."""
        mib = cls.from_ours(source, **options)
        if fraction is not None:
            if not isinstance(source, ScoredGraph):
                raise InputError(
                    "a size (fraction) selects edges of a scored graph; a circuit keeps its own edges"
                )
            mib = mib.top(mib_size(mib.n_edges, fraction), by=by, fraction=fraction)
        return mib

    def top(self, n: int, *, by: str = "abs", fraction: float | None = None) -> MibGraph:
        """A copy whose ``in_graph`` marks the ``n`` best edges of the ungrouped graph.

        ``by="abs"`` ranks by ``|score|`` (MIB's default); ``by="signed"`` by
        ``-score``, most negative first (this engine's relied-on edges). Ties
        keep the file's row-major order, so a key/value edge's copies stay
        together. The engine block records the selection as a top-n circuit
        named ``mib-<percent>`` when ``fraction`` (the size ``n`` came from)
        is given, else ``top-<n>``.
        """
        if by not in ("abs", "signed"):
            raise InputError(f"rank edges by 'abs' or 'signed', not {by!r}")
        if not is_whole(n) or not 0 <= n <= self.n_edges:
            raise InputError(f"a circuit of this graph has 0 to {self.n_edges} edges, not {n}")
        idx = np.flatnonzero(self.layout.mask.ravel())
        values = self.scores.ravel()[idx]
        order = idx[np.argsort(-np.abs(values) if by == "abs" else values, kind="stable")]
        keep = np.zeros(self.scores.size, dtype=bool)
        keep[order[:n]] = True
        engine = self.engine
        if engine is not None:
            name = f"mib-{size_label(fraction)}" if fraction is not None else f"top-{n}"
            params: dict[str, Any] = {"n_mib_edges": n, "by": by}
            if fraction is not None:
                params["fraction"] = fraction
            engine = {
                **engine,
                "circuit": {
                    "name": name,
                    "extract_method": "top-n",
                    "params": params,
                    "faithfulness": None,
                    "provenance": engine["metadata"],
                },
            }
        return MibGraph(
            self.shape,
            self.scores,
            keep.reshape(self.scores.shape),
            self.cfg,
            self.node_scores,
            engine,
            self.kv_repeated,
        )

    # ------------------------------------------------------------ queries
    def nodes_in_graph(self) -> np.ndarray:
        """Boolean per sender: sends an in-graph edge and receives one (``input`` always receives)."""
        sends = self.in_graph.any(axis=1)
        receives = (self.layout.inputs & self.in_graph.any(axis=0)[None, :]).any(axis=1)
        receives[0] = True
        return sends & receives

    def edge_items(self) -> list[tuple[str, tuple[float, bool]]]:
        """``("sender->receiver", (score, in_graph))`` for every edge, row-major."""
        lay = self.layout
        rows, cols = np.nonzero(lay.mask)
        return [
            (f"{lay.senders[s]}->{lay.receivers[r]}", (float(self.scores[s, r]), bool(self.in_graph[s, r])))
            for s, r in zip(rows.tolist(), cols.tolist(), strict=True)
        ]

    # ------------------------------------------------------------ JSON
    def to_json(self) -> dict[str, Any]:
        """The JSON object EAP-IG's ``Graph.from_json`` reads (plus our metadata block)."""
        nodes: dict[str, Any] = {}
        for name, inside in zip(self.layout.senders, self.nodes_in_graph().tolist(), strict=True):
            nodes[name] = {"in_graph": inside}
            if name in self.node_scores:
                nodes[name]["score"] = float(self.node_scores[name])
        nodes[LOGITS] = {"in_graph": True}
        edges = {name: {"score": score, "in_graph": inside} for name, (score, inside) in self.edge_items()}
        data: dict[str, Any] = {"cfg": dict(self.cfg), "nodes": nodes, "edges": edges}
        if self.engine is not None:
            data[ENGINE_KEY] = self.engine
        return data

    @classmethod
    def from_json(cls, data: Any, *, kv_heads: int | None = None, source: str = "graph JSON") -> MibGraph:
        """Parse and check a JSON object written by EAP-IG's ``Graph.to_json`` (or by this engine)."""
        if not isinstance(data, dict):
            raise bad_value(
                source,
                "the top level",
                type(data).__name__,
                "an EAP-IG graph is an object with 'cfg', 'nodes' and 'edges'",
            )
        for key in ("cfg", "nodes", "edges"):
            if key not in data:
                raise InputError(
                    f"{source}: field {key!r} is missing; an EAP-IG graph file has 'cfg', 'nodes' and 'edges'"
                )
            if not isinstance(data[key], dict):
                raise bad_value(source, f"field {key!r}", type(data[key]).__name__, "it must be an object")
        shape, repeated = parse_cfg(data["cfg"], kv_heads=kv_heads, source=source)
        lay = mib_layout(shape)
        row = {n: i for i, n in enumerate(lay.senders)}
        col = {n: i for i, n in enumerate(lay.receivers)}
        scores = np.zeros(lay.mask.shape)
        in_graph = np.zeros(lay.mask.shape, dtype=bool)
        for name, entry in data["edges"].items():
            where = f"edges[{name!r}]"
            parts = name.split("->")
            if len(parts) != 2:
                raise bad_value(source, "an edge name", name, "edges are named 'sender->receiver'")
            s, r = row.get(parts[0]), col.get(parts[1])
            if s is None:
                raise bad_value(source, f"the sender of {where}", parts[0], valid_senders(shape))
            if r is None:
                raise bad_value(source, f"the receiver of {where}", parts[1], valid_receivers(shape))
            if not lay.mask[s, r]:
                raise InputError(
                    f"{source}: {where} is not an edge of a graph with {describe_shape(shape)}: "
                    f"{parts[0]!r} does not come before {parts[1]!r} in the forward order"
                )
            if not isinstance(entry, dict):
                raise bad_value(source, where, entry, "an edge is an object with 'score' and 'in_graph'")
            score, inside = entry.get("score"), entry.get("in_graph")
            if not is_number(score) or not math.isfinite(score):
                raise bad_value(source, f"{where}['score']", score, "it must be a finite number")
            if not isinstance(inside, bool):
                raise bad_value(source, f"{where}['in_graph']", inside, "it must be true or false")
            scores[s, r], in_graph[s, r] = float(score), inside
        node_scores: dict[str, float] = {}
        for name, entry in data["nodes"].items():
            where = f"nodes[{name!r}]"
            if name != LOGITS and name not in row:
                raise bad_value(source, "a node name", name, valid_senders(shape) + " and 'logits'")
            if not isinstance(entry, dict):
                raise bad_value(source, where, entry, "a node is an object with 'in_graph' (and 'score')")
            for key in NEURON_KEYS:
                if entry.get(key) is not None:
                    raise InputError(
                        f"{source}: {where} has {key!r}: neuron-level graphs cannot be imported; "
                        "this engine reads edge-level graphs"
                    )
            if name == LOGITS:
                continue
            if not isinstance(entry.get("in_graph"), bool):
                raise bad_value(
                    source, f"{where}['in_graph']", entry.get("in_graph"), "it must be true or false"
                )
            score = entry.get("score")
            if score is not None:
                if not is_number(score) or math.isinf(score):
                    raise bad_value(
                        source, f"{where}['score']", score, "it must be a number (NaN: not scored)"
                    )
                if not math.isnan(score):
                    node_scores[name] = float(score)
        engine = check_engine(data.get(ENGINE_KEY), shape, source)
        return cls(shape, scores, in_graph, dict(data["cfg"]), node_scores, engine, repeated)

    # ------------------------------------------------------------ back to our objects
    def to_ours(self) -> MibImport:
        """Fold the k/v copies back (mean for our files, sum and or otherwise) into a scored graph
        and circuit."""
        shape = self.shape
        total, keep = fold_kv(shape, self.scores, self.in_graph, repeated=self.kv_repeated)
        engine = self.engine
        if engine is not None:
            metadata = dict(engine["metadata"])
        else:
            metadata = {
                "score_method": "imported",
                "source_format": "eap-ig",
                "d_model": self.cfg.get("d_model"),
            }
        graph = ScoredGraph(shape, total, metadata)
        circuit = None
        info = engine.get("circuit") if engine is not None else None
        if keep.any() and info is not None:
            # our own file: the circuit exactly as it was written (its scores, node scores and fields)
            senders, receivers = shape.sender_names(), shape.receiver_names()
            rows, cols = np.nonzero(keep)
            edges = {(senders[s], receivers[r]): float(total[s, r]) for s, r in zip(rows, cols, strict=True)}
            present = {s for s, _ in edges}
            nodes = {n: v for n, v in self.node_scores.items() if n in present}
            circuit = Circuit(
                shape,
                edges,
                nodes,
                info["provenance"],
                info["extract_method"],
                info["params"],
                info.get("faithfulness"),
                info["name"],
            )
        elif keep.any():
            # a foreign file: the edges it marks, scored and node-scored as this engine does
            circuit = Circuit.from_mask(
                graph, keep, extract_method="custom", params={"source_format": "eap-ig"}, name="imported"
            )
        return MibImport(graph, circuit, self.kv_repeated)
