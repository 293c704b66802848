"""Families of circuits: the shared core, each one's specific part, reuse matrices and clustering."""

from __future__ import annotations

import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from circuits.circuit import Circuit, group_units
from circuits.compare.similarity import METRICS, TOP_EDGES, rank_correlation
from circuits.graph import ScoredGraph
from circuits.vocab import InputError

SIMILARITIES = ("edge_jaccard", "node_jaccard", "weighted_jaccard", "edge_overlap", "head_share")
"""The similarities a reuse sweep tabulates (names in :data:`~circuits.compare.similarity.METRICS`)."""

__all__ = [
    "SIMILARITIES",
    "Clustering",
    "ReuseMatrix",
    "cluster",
    "edge_counts",
    "rank_correlation_matrix",
    "reuse_matrix",
    "shared_core",
    "specific_parts",
]


def _by_unit(circuits: Sequence[Circuit]) -> bool:
    """Whether a family is compared unit by unit: every circuit is position-aware."""
    return all(c.roles is not None for c in circuits)


def _scores_by_edge(circuits: Sequence[Circuit]) -> dict[tuple[str, ...], list[float]]:
    """Each edge's scores in the circuits that keep it (each unit's, for position-aware circuits)."""
    out: dict[tuple[str, ...], list[float]] = {}
    units = _by_unit(circuits)
    for c in circuits:
        for key, v in (c.unit_scores() if units else c.edges).items():
            out.setdefault(key, []).append(v)
    return out


def _check_family(circuits: Sequence[Circuit]) -> None:
    if not circuits:
        raise InputError("no circuits to combine")
    if len({c.shape for c in circuits}) > 1:
        raise InputError("circuits of different graph shapes cannot be combined")


def shared_core(circuits: Sequence[Circuit], k: int | None = None, *, name: str = "shared-core") -> Circuit:
    """Edges present in at least ``k`` of the ``N`` circuits (default: all), scored by their mean.

    The core of a family of circuits (e.g. of relations of one kind) is what
    they reuse; :func:`specific_parts` gives what each has of its own.

    Parameters
    ----------
    circuits : sequence of Circuit
        Circuits of one graph shape (one model).
    k : int, optional
        Minimum number of circuits an edge must be in, ``1..N``; ``N`` (an
        intersection) when not given, 1 gives the union.
    name : str
        Name of the returned circuit.

    Returns
    -------
    Circuit
        The shared edges, each scored by its mean score over the circuits that
        have it (node scores likewise); for position-aware circuits, the
        shared (edge, role) units; ``extract_method="shared-core"``,
        ``params={"k": k, "n": N}``; ``provenance`` names the model (when all
        circuits share one) and the circuits' labels under ``relations``.

    Raises
    ------
    InputError
        No circuits, circuits of different shapes, or ``k`` outside ``1..N``.

    Examples
    --------
    >>> from circuits.graph import GraphShape
    >>> s = GraphShape(1, 1, 1)
    >>> cs = [Circuit(s, {("input", "logits"): -1.0, ("a0.h0", "logits"): -1.0}),
    ...       Circuit(s, {("input", "logits"): -3.0})]
    >>> shared_core(cs).edges
    {('input', 'logits'): -2.0}
    >>> sorted(shared_core(cs, k=1).edges)
    [('a0.h0', 'logits'), ('input', 'logits')]

    Circuits of two relations on a tiny model:

    >>> from circuits import ScoreSettings, extract, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> family = [extract(score_relation(model, r, settings, progress=False)[0], size=30)
    ...           for r in ("country_capital_city", "country_currency")]
    >>> core = shared_core(family)
    >>> set(core.edges) == set(family[0].edges) & set(family[1].edges)
    True
    >>> core.provenance
    {'model': 'tiny-llama', 'relations': ['country_capital_city', 'country_currency']}
    >>> shared_core(family, k=1).n_edges == len(set(family[0].edges) | set(family[1].edges))
    True
    """
    _check_family(circuits)
    k = len(circuits) if k is None else k
    if not 1 <= k <= len(circuits):
        raise InputError(f"k must lie in 1..{len(circuits)} (the number of circuits), not {k}")
    scores = _scores_by_edge(circuits)
    kept = {e: float(np.mean(v)) for e, v in scores.items() if len(v) >= k}
    roles: dict[tuple[str, str], dict[str, float]] | None = None
    if _by_unit(circuits):
        roles = group_units(kept)  # type: ignore[arg-type]
        edges = {e: sum(r.values()) for e, r in roles.items()}
    else:
        edges = kept  # type: ignore[assignment]
    node_scores: dict[str, list[float]] = {}
    for c in circuits:
        for n, v in c.node_scores.items():
            node_scores.setdefault(n, []).append(v)
    senders = {s for s, _ in edges}
    models = {c.model for c in circuits}
    provenance = {
        "model": models.pop() if len(models) == 1 else None,
        "relations": [c.label() for c in circuits],
    }
    return Circuit(
        circuits[0].shape,
        edges,
        {n: float(np.mean(v)) for n, v in node_scores.items() if n in senders},
        provenance,
        "shared-core",
        {"k": k, "n": len(circuits)},
        None,
        name,
        roles,
    )


def specific_parts(circuits: Sequence[Circuit], k: int | None = None) -> dict[str, Circuit]:
    """Each circuit's edges (units, when position-aware) outside the shared core of ``k`` (keyed by label)."""
    core = shared_core(circuits, k).units()
    out = {}
    for c in circuits:
        own = c.units() - core
        out[c.label()] = c.with_units(
            own, extract_method="specific", params={**c.params, "core_k": k}, name=f"{c.label()}-specific"
        )
    return out


def edge_counts(circuits: Sequence[Circuit]) -> Counter[tuple[str, str]]:
    """In how many circuits each edge appears."""
    return Counter(e for c in circuits for e in c.edges)


# ----------------------------------------------------------- matrices


@dataclass
class ReuseMatrix:
    """A square table of a similarity between named items (rows and columns alike)."""

    names: list[str]
    values: np.ndarray
    metric: str
    symmetric: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_csv(self) -> str:
        out = io.StringIO()
        out.write(",".join([self.metric, *self.names]) + "\n")
        for name, row in zip(self.names, self.values, strict=True):
            out.write(",".join([name, *(_fmt(v) for v in row)]) + "\n")
        return out.getvalue()

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "names": self.names,
            "symmetric": self.symmetric,
            "values": [[None if math.isnan(v) else float(v) for v in row] for row in self.values],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseMatrix:
        """A matrix from :meth:`as_dict`'s form (a stored reuse report); ``None`` values are NaN.

        >>> m = ReuseMatrix(["a", "b"], np.array([[1.0, np.nan], [0.5, 1.0]]), "edge_jaccard")
        >>> ReuseMatrix.from_dict(m.as_dict()).as_dict() == m.as_dict()
        True
        """
        values = [[math.nan if v is None else float(v) for v in row] for row in data["values"]]
        names = [str(n) for n in data["names"]]
        return cls(
            names,
            np.array(values, dtype=np.float64).reshape(len(names), len(names)),
            str(data["metric"]),
            bool(data.get("symmetric", True)),
        )

    def pairs(self) -> list[tuple[str, str, float]]:
        """Off-diagonal pairs (each once when symmetric), most similar first."""
        rows = []
        for i, a in enumerate(self.names):
            for j, b in enumerate(self.names):
                if i != j and (not self.symmetric or i < j):
                    rows.append((a, b, float(self.values[i, j])))
        return sorted(rows, key=lambda r: -r[2] if not math.isnan(r[2]) else math.inf)


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6g}"


def reuse_matrix(
    circuits: Mapping[str, Circuit] | Sequence[Circuit],
    metric: str | Callable[[Circuit, Circuit], float] = "edge_jaccard",
) -> ReuseMatrix:
    """The similarity of every pair of circuits, by a name in :data:`METRICS` or any function.

    Parameters
    ----------
    circuits : mapping of str to Circuit, or sequence of Circuit
        The circuits, named by the mapping's keys or by their labels
        (:meth:`Circuit.label`: name, else relation), which must then differ.
    metric : str or callable
        A similarity of :data:`METRICS` (``"edge_jaccard"``, ``"node_jaccard"``,
        ``"edge_overlap"``, ``"node_overlap"``, ``"weighted_jaccard"``,
        ``"head_share"``) or any function of two circuits returning a float.

    Returns
    -------
    ReuseMatrix
        A symmetric table: ``names``, ``values`` (``[n, n]`` array, row ``i``
        column ``j`` the similarity of circuits ``i`` and ``j``), ``metric``;
        ``to_csv()``, ``as_dict()`` and ``pairs()`` (most similar first), and
        :func:`cluster` clusters it.

    Examples
    --------
    >>> from circuits import ScoreSettings, extract, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> family = {r: extract(score_relation(model, r, settings, progress=False)[0], size=30)
    ...           for r in ("country_capital_city", "country_currency", "country_largest_city")}
    >>> matrix = reuse_matrix(family, "edge_jaccard")
    >>> matrix.names, matrix.values.shape, matrix.metric
    (['country_capital_city', 'country_currency', 'country_largest_city'], (3, 3), 'edge_jaccard')
    >>> bool((matrix.values == matrix.values.T).all()), matrix.values.diagonal().tolist()
    (True, [1.0, 1.0, 1.0])
    >>> len(matrix.pairs()), matrix.to_csv().splitlines()[0]
    (3, 'edge_jaccard,country_capital_city,country_currency,country_largest_city')
    """
    if isinstance(circuits, Mapping):
        items = dict(circuits)
    else:
        items = {c.label(): c for c in circuits}
        if len(items) < len(circuits):
            raise InputError("circuits share labels; pass a mapping {name: circuit} to name them apart")
    if isinstance(metric, str):
        if metric not in METRICS:
            raise InputError(f"unknown similarity {metric!r}; valid: {', '.join(METRICS)}")
        fn, label = METRICS[metric], metric
    else:
        fn, label = metric, getattr(metric, "__name__", "custom")
    names = list(items)
    values = np.eye(len(names))
    for i, a in enumerate(names):
        values[i, i] = fn(items[a], items[a])
        for j in range(i + 1, len(names)):
            values[i, j] = values[j, i] = fn(items[a], items[names[j]])
    return ReuseMatrix(names, values, label)


def rank_correlation_matrix(
    graphs: Mapping[str, ScoredGraph], *, by: str = "signed", top: int | None = TOP_EDGES
) -> ReuseMatrix:
    """Spearman correlation of every pair of graphs over the union of their ``top`` strongest edges.

    See :func:`~circuits.compare.similarity.rank_correlation`; ``top=None`` takes every edge.
    """
    names = list(graphs)
    values = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            values[i, j] = values[j, i] = rank_correlation(graphs[a], graphs[names[j]], by=by, top=top)
    return ReuseMatrix(names, values, f"spearman_{by}")


@dataclass
class Clustering:
    """Hierarchical clustering of relations: scipy linkage, leaf order, Newick tree."""

    names: list[str]
    linkage: list[list[float]]
    order: list[str]
    newick: str
    linkage_method: str
    metric: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "linkage": self.linkage,
            "order": self.order,
            "newick": self.newick,
            "linkage_method": self.linkage_method,
            "metric": self.metric,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Clustering:
        """A clustering from :meth:`as_dict`'s form (a stored reuse report)."""
        return cls(
            [str(n) for n in data["names"]],
            [[float(x) for x in row] for row in data["linkage"]],
            [str(n) for n in data["order"]],
            str(data["newick"]),
            str(data["linkage_method"]),
            str(data["metric"]),
        )


def cluster(matrix: ReuseMatrix, *, method: str = "average") -> Clustering:
    """Cluster by distance ``1 - similarity`` (symmetrised, clipped at 0) with scipy.

    >>> m = ReuseMatrix(["a", "b", "c"], np.array([[1, .9, .1], [.9, 1, .2], [.1, .2, 1]]), "x")
    >>> cluster(m).newick
    '(c:0.425,(a:0.05,b:0.05):0.375);'
    """
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import squareform

    names, n = list(matrix.names), len(matrix.names)
    if n < 2:
        return Clustering(names, [], names, f"({names[0]});" if names else ";", method, matrix.metric)
    sim = np.nan_to_num(np.asarray(matrix.values, dtype=float), nan=0.0)
    distance = np.clip(1.0 - (sim + sim.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    try:
        z = linkage(squareform(distance, checks=False), method=method)
    except ValueError as error:
        raise InputError(f"clustering method {method!r} failed: {error}") from None

    def newick(node: Any, parent_height: float) -> str:
        length = f":{round(parent_height - node.dist / 2, 6):g}"
        if node.is_leaf():
            return names[node.id] + length
        inner = ",".join(newick(child, node.dist / 2) for child in (node.left, node.right))
        return f"({inner}){length}"

    root = to_tree(z)
    tree = "(" + ",".join(newick(c, root.dist / 2) for c in (root.left, root.right)) + ");"
    order = [names[i] for i in root.pre_order()]
    return Clustering(names, z.tolist(), order, tree, method, matrix.metric)
