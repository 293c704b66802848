"""Low-rank communication channels between heads, predicted from the weights' SVD.

Talking Heads (Merullo, Eickhoff & Pavlick 2024) showed that heads in
different layers communicate through low-rank subspaces of the residual
stream, and that single SVD components of the weight matrices reveal channels
that whole-matrix composition scores (Elhage et al. 2021) hide.

- :mod:`~circuits.channels.svd`: per-head OV and QK matrices (norm weights
  folded in, grouped-query attention through each query head's key/value head,
  rotary embeddings ignored), factored, with their SVD and rank-1 components;
- :mod:`~circuits.channels.endpoints`: a channel's two ends in the graph's
  words (:mod:`circuits.graph`): the senders (heads, MLPs) whose output is
  scored and the receivers (a head's ``<q>``, ``<k>``, ``<v>``) that read it;
- :mod:`~circuits.channels.composition`: whole-matrix and per-component Q-, K-
  and V-composition scores of every sender against every later receiver, with a
  random-matrix null distribution for z-scores (:func:`analyze`);
- :mod:`~circuits.channels.predict`: channels, the predicted channel graph
  over the patching graph's node names (drawn by
  :func:`circuits.draw.channels_dot`, alone or over a circuit);
- :mod:`~circuits.channels.validate`: ROC AUC and precision@k against patching
  graphs per relation, and a causal check by subspace removal.
"""

from circuits.channels.composition import ChannelAnalysis, NullStats, analyze, composition_score
from circuits.channels.predict import Channel, channel_graph, find_channels
from circuits.channels.svd import (
    SVD,
    Factored,
    factored_svd,
    head_weights,
    ov_matrices,
    qk_matrices,
    rank_one_components,
)
from circuits.channels.validate import (
    CausalResult,
    ValidationRow,
    causal_check,
    format_causal,
    format_validation,
    precision_at_k,
    roc_auc,
    validate_graph,
    validate_relations,
)

__all__ = [
    "SVD",
    "CausalResult",
    "Channel",
    "ChannelAnalysis",
    "Factored",
    "NullStats",
    "ValidationRow",
    "analyze",
    "causal_check",
    "channel_graph",
    "composition_score",
    "factored_svd",
    "find_channels",
    "format_causal",
    "format_validation",
    "head_weights",
    "ov_matrices",
    "precision_at_k",
    "qk_matrices",
    "rank_one_components",
    "roc_auc",
    "validate_graph",
    "validate_relations",
]
