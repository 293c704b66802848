"""The networkx view of a circuit: its components, its scored edges, and head inputs leading into their heads.

A view, not a file: :mod:`circuits.store.circuits` writes this graph as
node-link JSON and reads it back, checking every field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuits.vocab import head_name, parse_node

if TYPE_CHECKING:
    from circuits.circuit.circuit import Circuit

__all__ = ["circuit_networkx"]


def circuit_networkx(circuit: Circuit) -> Any:
    """A networkx ``DiGraph`` of ``circuit``, laid out like :func:`circuits.graph.to_networkx`.

    Nodes carry ``kind`` (``input``, ``head``, ``mlp``, ``logits`` or
    ``head_input``), ``layer``, ``head``, ``qkv`` and ``score``. Scored edges
    carry ``score``, ``weight`` (``|score|``), ``qkv`` (the head input they
    enter, or ``""``), ``internal=False`` and, in a position-aware circuit,
    ``roles``. A head input leads into its head by an ``internal=True`` edge; a
    key/value input leads into those heads of its group that are in the
    circuit. The circuit's own fields (``name``, ``extract_method``,
    ``params``, ``provenance``, ``shape``, ``faithfulness``, ``positions``) are
    in ``G.graph``.

    >>> from circuits.circuit import Circuit
    >>> from circuits.graph import GraphShape
    >>> g = circuit_networkx(Circuit(GraphShape(1, 1, 1), {("input", "a0.h0<q>"): -1.0}))
    >>> sorted(g.edges), g.graph["positions"]
    ([('a0.h0<q>', 'a0.h0'), ('input', 'a0.h0<q>')], 'summed')
    """
    import networkx as nx

    g = nx.DiGraph()
    g.graph.update(
        {
            "name": circuit.name,
            "extract_method": circuit.extract_method,
            "params": circuit.params,
            "provenance": circuit.provenance,
            "shape": circuit.shape.as_dict(),
            "faithfulness": circuit.faithfulness,
            "positions": circuit.positions,
        }
    )
    components = circuit.nodes()
    for sender, receiver in circuit.edges:
        for name in (sender, receiver):
            if name not in g:
                g.add_node(name, **_node_attrs(circuit, name))
    for name in components:
        if name not in g:
            g.add_node(name, **_node_attrs(circuit, name))
    for (sender, receiver), score in circuit.edges.items():
        edge_qkv = receiver[-2] if receiver.endswith(">") else ""
        extra = {} if circuit.roles is None else {"roles": dict(circuit.roles[(sender, receiver)])}
        g.add_edge(sender, receiver, score=score, weight=abs(score), qkv=edge_qkv, internal=False, **extra)
    group = circuit.shape.group
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


def _node_attrs(circuit: Circuit, name: str) -> dict[str, Any]:
    kind, layer, head, qkv = parse_node(name)
    if qkv is not None:
        kind = "head_input"
    return {"kind": kind, "layer": layer, "head": head, "qkv": qkv, "score": circuit.node_scores.get(name)}
