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

from circuits.graph.pair_scores import PAIR_EDGES, PairScores, half_precision
from circuits.graph.scored import N_ROLES, ScoredGraph, check_positions, to_networkx, upgrade_metadata
from circuits.graph.shape import MAX_GRAPH_ENTRIES, MAX_HEADS, MAX_LAYERS, GraphShape, edge_mask
from circuits.vocab import POSITIONS, ROLE_POSITIONS, SUMMED

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
