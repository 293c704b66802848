"""A circuit: the edges chosen from a scored graph, with their scores and provenance.

A :class:`Circuit` holds ``(sender, receiver)`` name pairs in the vocabulary of
:mod:`circuits.graph` (receivers such as ``a3.h1<q>``, ``a3.h0<k>``, ``m3``,
``logits``), each with its score, plus the metadata of the scored graph it came
from and how it was extracted. It converts

- to and from a boolean ``[senders, receivers]`` mask (for
  :meth:`circuits.evaluate.Evaluator.run_mask`);
- to a networkx ``DiGraph`` laid out like :func:`circuits.graph.to_networkx`
  (:mod:`circuits.circuit.view`).

Its file, node-link JSON of that graph, is written and read (exactly, every
field checked) by :mod:`circuits.store.circuits`.

A *position-aware* circuit (from a graph scored with position roles) keeps
units ``(edge, role)``: :attr:`Circuit.roles` maps each kept edge to the roles
it is kept at and their scores, ``edges`` holds each edge's summed score over
those roles, and :meth:`Circuit.to_unit_mask` gives the ``[n_roles, senders,
receivers]`` mask an evaluator runs. In its graph and file each edge carries
its ``roles``.

Which nodes a circuit contains: every sender of one of its edges, plus the
component each receiver belongs to (a head for ``<q>``, the MLP, ``logits``).
A ``<k>`` or ``<v>`` receiver names a *key/value* head, which under grouped-query
attention is shared by a group of query heads, so it adds no node by itself.
A head whose output no kept edge carries has no effect on the metric (every
reader sees its ablated value), so :meth:`Circuit.heads` counts a head when the
circuit keeps one of its outgoing edges or its query input.

Modules: :mod:`~circuits.circuit.circuit` (the class),
:mod:`~circuits.circuit.index` (name-to-row maps, the component of a
receiver, units grouped by edge), :mod:`~circuits.circuit.view` (the networkx
view).
"""

from circuits.circuit.circuit import Circuit
from circuits.circuit.index import Edge, component_of, graph_index, group_units
from circuits.circuit.view import circuit_networkx

__all__ = ["Circuit", "Edge", "circuit_networkx", "component_of", "graph_index", "group_units"]
