"""The main job's stage records: what each stage returns, and stores under ``<model>/stages/``.

A stage's work returns one of these records; the stage log stores its
``to_dict()`` (the layout the stage records have always had: plain JSON with
the stage's ``files``) and a stage read back from disk is read with
``from_dict()``. :class:`~circuits.jobs.job_stages.MainJob` passes only these
records between its stages, and the job's summary
(:class:`~circuits.jobs.job_summary.JobSummary`) is made of them. Until 0.4
its methods returned the stored dictionaries; ``record["key"]`` still reads
them for one version (:class:`~circuits.records.stored.DictAccess`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from circuits.channels.predict import Channel
from circuits.channels.validate import ValidationRow
from circuits.jobs.job_summary import PositionsRow
from circuits.jobs.reuse_report import ReuseCore, ReusePair
from circuits.records.stored import DictAccess, Estimate, stored

__all__ = [
    "AnalysisStage",
    "ChannelsStage",
    "CircuitStage",
    "EvaluationStage",
    "PositionsStage",
    "ReuseStage",
    "ScoreStage",
    "StageRecord",
]

R = TypeVar("R", bound="StageRecord")

_CIRCUIT_KEYS = ("target", "target_reached", "faithfulness_interval", "search_faithfulness", "heads", "files")


class StageRecord(Protocol):
    """A stage's record: its files, its stored layout and the reading back of it."""

    files: list[str]

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R: ...


def _files(data: Mapping[str, Any]) -> list[str]:
    return [str(f) for f in data.get("files") or []]


@dataclass(frozen=True)
class ScoreStage(DictAccess):
    """A relation scored: its fact counts, the scoring / held-out split and the prompt record."""

    n_facts: int
    n_known: int
    n_scoring: int
    n_heldout: int
    prompt: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "files": list(self.files),
            "n_facts": self.n_facts,
            "n_known": self.n_known,
            "n_scoring": self.n_scoring,
            "n_heldout": self.n_heldout,
        }
        return out if self.prompt is None else {**out, "prompt": self.prompt}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreStage:
        counts = (int(data[k]) for k in ("n_facts", "n_known", "n_scoring", "n_heldout"))
        return cls(*counts, prompt=data.get("prompt"), files=_files(data))


@dataclass(frozen=True)
class CircuitStage(DictAccess):
    """A relation's circuit at the target: its :meth:`~circuits.circuit.Circuit.summary` and the search.

    ``target_reached`` false: no circuit within the cap reached ``target``, so
    the top ``max_edges`` edges were kept; ``faithfulness_interval`` is the
    held-out faithfulness, ``search_faithfulness`` the one on the scoring
    pairs the search stopped at; ``heads`` the strongest heads.
    """

    summary: dict[str, Any]
    target: float
    target_reached: bool
    faithfulness_interval: Estimate | None
    search_faithfulness: float | None
    heads: list[str]
    files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.summary["name"])

    @property
    def n_edges(self) -> int:
        return int(self.summary["n_edges"])

    @property
    def n_nodes(self) -> int:
        return int(self.summary["n_nodes"])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary,
            "target": self.target,
            "target_reached": self.target_reached,
            "faithfulness_interval": stored(self.faithfulness_interval),
            "search_faithfulness": self.search_faithfulness,
            "heads": list(self.heads),
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitStage:
        search = data.get("search_faithfulness")
        return cls(
            summary={k: v for k, v in data.items() if k not in _CIRCUIT_KEYS},
            target=float(data["target"]),
            target_reached=bool(data["target_reached"]),
            faithfulness_interval=Estimate.read(data.get("faithfulness_interval")),
            search_faithfulness=None if search is None else float(search),
            heads=[str(h) for h in data.get("heads") or []],
            files=_files(data),
        )


@dataclass(frozen=True)
class EvaluationStage(DictAccess):
    """A relation's graph evaluated on the held-out pairs: CPR and CMD (with intervals when drawn)."""

    cpr: Estimate | None
    cmd: Estimate | None
    n_pairs: int
    clean_metric: float
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpr": stored(self.cpr),
            "cmd": stored(self.cmd),
            "n_pairs": self.n_pairs,
            "clean_metric": self.clean_metric,
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationStage:
        return cls(
            Estimate.read(data.get("cpr")),
            Estimate.read(data.get("cmd")),
            int(data["n_pairs"]),
            float(data["clean_metric"]),
            _files(data),
        )


@dataclass(frozen=True)
class AnalysisStage(DictAccess):
    """One mechanism analysis of a relation: its one-line finding and how many prompts it used."""

    finding: str
    n_prompts: int
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "n_prompts": self.n_prompts, "files": list(self.files)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisStage:
        return cls(str(data.get("finding") or ""), int(data["n_prompts"]), _files(data))


@dataclass(frozen=True)
class PositionsStage(DictAccess):
    """A relation's position-aware circuit (its summary row) and the files it wrote."""

    row: PositionsRow
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.row.to_dict(), "files": list(self.files)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionsStage:
        return cls(PositionsRow.from_dict(data), _files(data))


@dataclass(frozen=True)
class ReuseStage(DictAccess):
    """The reuse sweep across the relations: the extreme pairs, the shared core, each relation's circuit."""

    relations: list[str]
    skipped: dict[str, str]
    most_similar: ReusePair
    least_similar: ReusePair
    core: ReuseCore
    circuits: dict[str, str]
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "relations": list(self.relations),
            "skipped": dict(self.skipped),
            "most_similar": self.most_similar.to_dict(),
            "least_similar": self.least_similar.to_dict(),
            "core": self.core.to_dict(),
            "circuits": dict(self.circuits),
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReuseStage:
        return cls(
            relations=[str(r) for r in data["relations"]],
            skipped={str(k): str(v) for k, v in (data.get("skipped") or {}).items()},
            most_similar=ReusePair.from_dict(data["most_similar"]),
            least_similar=ReusePair.from_dict(data["least_similar"]),
            core=ReuseCore.from_dict(data["core"]),
            circuits={str(k): str(v) for k, v in data["circuits"].items()},
            files=_files(data),
        )


@dataclass(frozen=True)
class ChannelsStage(DictAccess):
    """The weight channels against the relations' patching graphs: the validation rows, the top channels."""

    validation: list[ValidationRow]
    channels: list[Channel]
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "validation": [row.to_dict() for row in self.validation],
            "channels": [c.to_dict() for c in self.channels],
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelsStage:
        return cls(
            [ValidationRow.from_dict(v) for v in data.get("validation") or []],
            [Channel.from_dict(c) for c in data.get("channels") or []],
            _files(data),
        )
