"""What the reuse sweep returns and stores as ``report.json``: :class:`ReuseReport` and its parts.

``ReuseReport.to_dict()`` is the layout ``report.json`` has always had (the
report site and the committed gallery read it): the similarity the heatmap,
the clustering and the most and least similar pairs use is stored under the
key ``"metric"`` (the attribute is :attr:`ReuseReport.similarity`). The noise
references are typed too (:mod:`circuits.jobs.noise_record`): a pair's
:class:`~circuits.jobs.noise_record.SimilarityRow` and the sweep's
:class:`~circuits.jobs.noise_record.ReuseNoise`; given as their stored
dictionaries (as :func:`~circuits.jobs.reuse.run_reuse` builds them), they are
read into their types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from circuits.circuit import Circuit
from circuits.compare.cross_task import CrossTask
from circuits.compare.families import Clustering, ReuseMatrix
from circuits.deprecation import renamed
from circuits.jobs.noise_record import ReuseNoise, SimilarityRow
from circuits.records.stored import DictAccess

__all__ = ["ReuseCircuit", "ReuseCore", "ReusePair", "ReuseReport"]

_ROW_KEYS = ("source", "faithfulness_interval", "seconds")  # a row's keys beside the circuit's summary


@dataclass(frozen=True)
class ReuseCircuit:
    """One relation's circuit in a sweep: where its graph came from and its held-out faithfulness.

    ``summary`` is the circuit's :meth:`~circuits.circuit.Circuit.summary`;
    ``source`` is ``"scored"`` (scored by this sweep) or ``"stored"`` (a
    stored graph with the same settings); ``faithfulness_interval`` its
    interval with ``n_boot`` and ``n_pairs`` (``None`` without resamples).
    """

    relation: str
    source: str
    summary: dict[str, Any]
    faithfulness_interval: dict[str, Any] | None = None
    seconds: float = 0.0

    @classmethod
    def of(cls, circuit: Circuit, relation: str, source: str, seconds: float) -> ReuseCircuit:
        interval = circuit.params.get("faithfulness_interval")
        return cls(relation, source, circuit.summary(), interval, round(seconds, 2))

    @property
    def name(self) -> str:
        return str(self.summary.get("name"))

    @property
    def n_edges(self) -> int:
        return int(self.summary.get("n_edges", 0))

    @property
    def n_units(self) -> int:
        return int(self.summary.get("n_units", self.n_edges))

    @property
    def n_heads(self) -> int:
        return int(self.summary.get("n_heads", 0))

    @property
    def positions(self) -> str:
        return str(self.summary.get("positions", "summed"))

    @property
    def faithfulness(self) -> float | None:
        value = self.summary.get("faithfulness")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary,
            "relation": self.relation,
            "source": self.source,
            "faithfulness_interval": self.faithfulness_interval,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseCircuit:
        summary = {k: v for k, v in data.items() if k not in _ROW_KEYS}
        interval = data.get("faithfulness_interval")
        return cls(
            str(data["relation"]), str(data["source"]), summary, interval, float(data.get("seconds", 0))
        )


@dataclass(frozen=True)
class ReusePair:
    """Two relations' similarity (``value``), their share of heads, and the similarity's noise references."""

    a: str
    b: str
    value: float
    head_share: float
    noise: SimilarityRow | None = None
    """The pair's similarity with its references, when noise was measured (a stored
    :meth:`~circuits.compare.noise.Similarity.as_dict` given here is read into its type)."""

    def __post_init__(self) -> None:
        if isinstance(self.noise, Mapping):
            object.__setattr__(self, "noise", SimilarityRow.from_dict(self.noise))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"a": self.a, "b": self.b, "value": self.value, "head_share": self.head_share}
        return out if self.noise is None else {**out, "noise": self.noise.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReusePair:
        noise = data.get("noise")
        return cls(
            str(data["a"]),
            str(data["b"]),
            float(data["value"]),
            float(data["head_share"]),
            None if noise is None else SimilarityRow.from_dict(noise),
        )


@dataclass(frozen=True)
class ReuseCore:
    """The shared core: edges in at least ``k`` of the circuits, and the heads they touch."""

    k: int
    n_edges: int
    heads: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "n_edges": self.n_edges, "heads": list(self.heads)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseCore:
        return cls(int(data["k"]), int(data["n_edges"]), [str(h) for h in data["heads"]])


@dataclass
class ReuseReport(DictAccess):
    """What :func:`~circuits.jobs.reuse.run_reuse` found (``report.json``, with ``folder`` and ``seconds``).

    ``similarity`` names the matrix the heatmap, the clustering and the
    extreme pairs use (one of :data:`~circuits.compare.SIMILARITIES`);
    ``matrices`` holds every similarity and the Spearman rank correlation;
    ``noise`` the intervals, ceilings and nulls (``None`` without them; a
    stored :meth:`~circuits.compare.ceilings.FamilyNoise.as_dict` given here
    is read into a :class:`~circuits.jobs.noise_record.ReuseNoise`);
    ``settings`` how the relations were scored and the circuits extracted.
    """

    model: str
    relations: list[str]
    skipped: dict[str, str]
    settings: dict[str, Any]
    circuits: list[ReuseCircuit]
    similarity: str
    matrices: dict[str, ReuseMatrix]
    clustering: Clustering
    cross_task: list[CrossTask]
    core: ReuseCore
    specific_edges: dict[str, int]
    most_similar: ReusePair
    least_similar: ReusePair
    noise: ReuseNoise | None = None
    folder: str | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.noise, Mapping):
            self.noise = ReuseNoise.from_dict(self.noise)

    @property
    def metric(self) -> str:
        """Deprecated: the old name of :attr:`similarity`."""
        renamed("ReuseReport.metric", "ReuseReport.similarity", what="attribute")
        return self.similarity

    @property
    def matrix(self) -> ReuseMatrix:
        """The matrix of :attr:`similarity`."""
        return self.matrices[self.similarity]

    def to_dict(self) -> dict[str, Any]:
        """The layout of ``report.json`` (``folder`` and ``seconds`` only once set)."""
        out: dict[str, Any] = {
            "model": self.model,
            "relations": list(self.relations),
            "skipped": dict(self.skipped),
            "settings": self.settings,
            "circuits": [row.to_dict() for row in self.circuits],
            "metric": self.similarity,
            "matrix_csv": self.matrix.to_csv(),
            "matrices": {name: m.as_dict() for name, m in self.matrices.items()},
            "clustering": self.clustering.as_dict(),
            "cross_task": [r.as_dict() for r in self.cross_task],
            "core": self.core.to_dict(),
            "specific_edges": dict(self.specific_edges),
            "most_similar": self.most_similar.to_dict(),
            "least_similar": self.least_similar.to_dict(),
            "noise": None if self.noise is None else self.noise.to_dict(),
        }
        if self.folder is not None:
            out["folder"] = self.folder
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReuseReport:
        """A report from :meth:`to_dict`'s layout (a stored ``report.json``)."""
        return cls(
            model=str(data["model"]),
            relations=[str(r) for r in data["relations"]],
            skipped={str(k): str(v) for k, v in (data.get("skipped") or {}).items()},
            settings=dict(data.get("settings") or {}),
            circuits=[ReuseCircuit.from_dict(r) for r in data["circuits"]],
            similarity=str(data["metric"]),
            matrices={str(k): ReuseMatrix.from_dict(v) for k, v in data["matrices"].items()},
            clustering=Clustering.from_dict(data["clustering"]),
            cross_task=[CrossTask.from_dict(r) for r in data.get("cross_task") or []],
            core=ReuseCore.from_dict(data["core"]),
            specific_edges={str(k): int(v) for k, v in (data.get("specific_edges") or {}).items()},
            most_similar=ReusePair.from_dict(data["most_similar"]),
            least_similar=ReusePair.from_dict(data["least_similar"]),
            noise=None if data.get("noise") is None else ReuseNoise.from_dict(data["noise"]),
            folder=None if data.get("folder") is None else str(data["folder"]),
            seconds=None if data.get("seconds") is None else float(data["seconds"]),
        )
