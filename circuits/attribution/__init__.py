"""Edge and node attribution: one harness, EAP, EAP-IG and exact patching."""

from circuits.attribution.harness import Harness
from circuits.attribution.metrics import MetricFn, make_metric
from circuits.attribution.scoring import (
    ablated_senders,
    attribute_edges,
    edge_products,
    exact_edges,
    exact_nodes,
    mean_senders,
)

__all__ = [
    "Harness",
    "MetricFn",
    "ablated_senders",
    "attribute_edges",
    "edge_products",
    "exact_edges",
    "exact_nodes",
    "make_metric",
    "mean_senders",
]
