"""Edge and node attribution: one harness, EAP, EAP-IG and exact patching, and the scoring loop."""

from circuits.attribution.harness import Harness
from circuits.attribution.metrics import MetricFn, make_metric
from circuits.attribution.score import score_pairs, score_relation
from circuits.attribution.scoring import (
    ablated_senders,
    attribute_edges,
    edge_products,
    exact_edges,
    exact_nodes,
    mean_senders,
)
from circuits.attribution.settings import ScoreSettings
from circuits.attribution.spool import PairSpool

__all__ = [
    "Harness",
    "MetricFn",
    "PairSpool",
    "ScoreSettings",
    "ablated_senders",
    "attribute_edges",
    "edge_products",
    "exact_edges",
    "exact_nodes",
    "make_metric",
    "mean_senders",
    "score_pairs",
    "score_relation",
]
