"""Grouped-query attention in EAP-IG graph files: key/value scores repeated on export, folded on import
(torch-free).

Our graph keeps one ``<k>`` and one ``<v>`` receiver per *key/value* head
(``a{l}.h{kv}<k>``); EAP-IG runs models with grouped attention ungrouped, so
its files have a ``<k>`` and a ``<v>`` receiver per *query* head. Query head
``h`` reads key/value head ``h // (n_heads // n_kv_heads)``
(:class:`circuits.store.mib_format.Layout` holds that map as ``ours``).

- Export (:func:`repeat_kv`): a key/value edge's score and ``in_graph`` are
  repeated on each of the ``n_heads // n_kv_heads`` query heads of its group.
  ``cfg`` records it: ``"n_key_value_heads"`` and the marker
  ``"kv_scores_repeated_by": "circuit-graph-engine"``.
- Import of a file with that marker (:func:`fold_kv`, ``repeated=True``): a
  key/value edge takes the mean of its group's copies (they are equal, so our
  own round trip is exact).
- Import of any other file (``repeated=False``): a key/value edge's score is
  the *sum* over its group's query heads (the gradient into a shared
  key/value input is the sum over the query heads that read it) and it is in
  the circuit when any copy is (logical or). The number of key/value heads is
  ``cfg["n_key_value_heads"]`` when present, else the ``kv_heads`` argument
  (``--kv-heads``), else ``n_heads`` (multi-head attention, nothing to fold);
  see :func:`circuits.store.mib_format.parse_cfg`.

Examples
--------
A circuit of a grouped-attention graph (two query heads share one key/value
head) written and read back:

>>> from circuits import Circuit, GraphShape
>>> from circuits.store.mib_json import from_mib_json, to_mib_json
>>> shape = GraphShape(1, 2, 1)
>>> circuit = Circuit(shape, {("input", "a0.h0<k>"): -0.5, ("a0.h1", "logits"): -0.25})
>>> data = to_mib_json(circuit)
>>> data["cfg"]["n_heads"], data["cfg"]["n_key_value_heads"], len(data["edges"])
(2, 1, 13)
>>> data["edges"]["input->a0.h1<k>"]
{'score': -0.5, 'in_graph': True}
>>> back = from_mib_json(data)
>>> back.circuit == circuit, back.graph.n_edges
(True, 11)
"""

from __future__ import annotations

import numpy as np

from circuits.graph import GraphShape
from circuits.store.mib_format import mib_layout

__all__ = ["fold_kv", "repeat_kv"]


def repeat_kv(shape: GraphShape, scores: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our ``[senders, receivers]`` scores and edge mask in EAP-IG's ungrouped columns.

    Each key/value column is repeated on the query heads of its group; entries
    that are not edges are 0 and false.

    >>> shape = GraphShape(1, 2, 1)
    >>> scores = np.zeros((shape.n_senders, shape.n_receivers))
    >>> scores[0, shape.k_receiver(0, 0)] = -3.0
    >>> mib, inside = repeat_kv(shape, scores, scores != 0)
    >>> mib.shape, mib[0, 2:4].tolist(), inside[0, 2:4].tolist()
    ((4, 8), [-3.0, -3.0], [True, True])
    """
    lay = mib_layout(shape)
    return np.where(lay.mask, scores[:, lay.ours], 0.0), keep[:, lay.ours] & lay.mask


def fold_kv(
    shape: GraphShape, scores: np.ndarray, in_graph: np.ndarray, *, repeated: bool
) -> tuple[np.ndarray, np.ndarray]:
    """EAP-IG's ungrouped scores and ``in_graph`` folded back into our ``[senders, receivers]``.

    A key/value edge takes the mean of its group's copies when ``repeated``
    (our files), else their sum; it is kept when any copy is in the graph.
    Entries that are not edges are ignored.

    >>> shape = GraphShape(1, 2, 1)
    >>> mib = np.zeros((shape.n_senders, 8))
    >>> mib[0, 2:4] = [-1.0, -0.25]  # input -> a0.h0<k>, a0.h1<k>
    >>> k = shape.k_receiver(0, 0)
    >>> [float(fold_kv(shape, mib, mib < -0.5, repeated=r)[0][0, k]) for r in (False, True)]
    [-1.25, -0.625]
    >>> bool(fold_kv(shape, mib, mib < -0.5, repeated=False)[1][0, k])
    True
    """
    lay = mib_layout(shape)
    total = np.zeros((shape.n_senders, shape.n_receivers))
    np.add.at(total.T, lay.ours, np.where(lay.mask, scores, 0.0).T)
    keep = np.zeros(total.shape, dtype=bool)
    np.logical_or.at(keep.T, lay.ours, (in_graph & lay.mask).T)
    if repeated:
        total /= np.bincount(lay.ours, minlength=shape.n_receivers)[None, :]
    return total, keep
