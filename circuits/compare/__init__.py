"""Comparing circuits across relations (torch-free): similarity, families, cross-task faithfulness.

- :mod:`~circuits.compare.similarity`: Jaccard of edges and nodes, overlap,
  weighted Jaccard, head share, rank correlation of two scored graphs;
- :mod:`~circuits.compare.families`: the shared core and specific parts of a
  family of circuits, reuse matrices and their clustering;
- :mod:`~circuits.compare.cross_task`: a circuit of one relation evaluated on
  another's prompts (the evaluator is passed in, so this module runs no model).
"""

from circuits.compare.cross_task import CrossTask, cross_task_faithfulness, cross_task_matrix
from circuits.compare.families import (
    SIMILARITIES,
    Clustering,
    ReuseMatrix,
    cluster,
    edge_counts,
    rank_correlation_matrix,
    reuse_matrix,
    shared_core,
    specific_parts,
)
from circuits.compare.similarity import (
    METRICS,
    compare,
    edge_jaccard,
    head_share,
    jaccard,
    node_jaccard,
    overlap_coefficient,
    rank_correlation,
    weighted_jaccard,
)

__all__ = [
    "METRICS",
    "SIMILARITIES",
    "Clustering",
    "CrossTask",
    "ReuseMatrix",
    "cluster",
    "compare",
    "cross_task_faithfulness",
    "cross_task_matrix",
    "edge_counts",
    "edge_jaccard",
    "head_share",
    "jaccard",
    "node_jaccard",
    "overlap_coefficient",
    "rank_correlation",
    "rank_correlation_matrix",
    "reuse_matrix",
    "shared_core",
    "specific_parts",
    "weighted_jaccard",
]
