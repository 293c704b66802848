"""What the main job returns and stores as ``<model>/job.json``: :class:`JobSummary` and its rows.

``JobSummary.to_dict()`` is the layout ``job.json`` has always had (the
report, ``circuits compare-models`` and the committed gallery read it);
``from_dict()`` reads it back to the same JSON. One :class:`RelationRow` per
relation (pairs, circuit, held-out faithfulness and CPR with intervals, the
mechanism findings, the position-aware circuit as a :class:`PositionsRow`),
the reuse sweep's extreme pairs and shared core (:class:`JobReuse`), the
channels' validation rows and every stage's timing (:class:`StageTiming`).
Intervals are :class:`~circuits.records.stored.Estimate`: exactly what was
stored, a bare number where no interval was drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from circuits.channels.validate import ValidationRow
from circuits.jobs.reuse_report import ReuseCore, ReusePair
from circuits.records.stored import DictAccess, Estimate, read_stored, stored

if TYPE_CHECKING:
    from circuits.jobs.job_settings import JobSettings

__all__ = ["JobReuse", "JobSummary", "PositionsRow", "RelationRow", "StageTiming"]


@dataclass(frozen=True)
class PositionsRow:
    """A relation's position-aware circuit set against the summed circuit reaching the same target.

    ``n_units`` (edge, role) units on ``n_edges`` edges, ``role_counts`` units
    per role, its held-out ``faithfulness``; the summed circuit's
    ``summed_edges`` and ``summed_faithfulness`` on the same role-scored graph.
    """

    circuit: str
    n_units: int
    n_edges: int
    role_counts: dict[str, int]
    faithfulness: Estimate | None
    target_reached: bool
    summed_edges: int
    summed_faithfulness: Estimate | None

    def units_at(self, role: str) -> int:
        """How many of the circuit's units sit at ``role`` (0 for a role it has none at)."""
        return int(self.role_counts.get(role, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "circuit": self.circuit,
            "n_units": self.n_units,
            "n_edges": self.n_edges,
            "role_counts": dict(self.role_counts),
            "faithfulness": stored(self.faithfulness),
            "target_reached": self.target_reached,
            "summed_edges": self.summed_edges,
            "summed_faithfulness": stored(self.summed_faithfulness),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PositionsRow:
        """A row from :meth:`to_dict`'s layout (the positions stage's record has ``files`` too)."""
        return cls(
            circuit=str(data["circuit"]),
            n_units=int(data["n_units"]),
            n_edges=int(data["n_edges"]),
            role_counts={str(k): int(v) for k, v in data["role_counts"].items()},
            faithfulness=Estimate.read(data.get("faithfulness")),
            target_reached=bool(data.get("target_reached", True)),
            summed_edges=int(data["summed_edges"]),
            summed_faithfulness=Estimate.read(data.get("summed_faithfulness")),
        )


@dataclass(frozen=True)
class RelationRow:
    """One relation of the main job: its pairs, its circuit and how faithful it is, what was found.

    ``circuit`` names the smallest top-n circuit reaching ``target`` on the
    scoring pairs (``search_faithfulness`` there; ``target_reached`` false:
    the top ``max_edges`` edges instead), ``faithfulness``, ``cpr`` and
    ``cmd`` are measured on the held-out pairs; ``heads`` are its strongest
    heads, ``findings`` each analysis's one-line finding; ``prompt`` the
    prompt record scoring chose (``None`` in a summary written before it was
    kept); ``positions`` the position-aware circuit (``None`` when not run).
    """

    relation: str
    n_facts: int
    n_known: int
    n_scoring: int
    n_heldout: int
    circuit: str
    n_edges: int
    n_nodes: int
    faithfulness: Estimate | None
    target: float
    target_reached: bool
    search_faithfulness: float | None
    heads: list[str]
    cpr: Estimate | None
    cmd: Estimate | None
    findings: dict[str, str] = field(default_factory=dict)
    positions: PositionsRow | None = None
    prompt: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "relation": self.relation,
            "n_facts": self.n_facts,
            "n_known": self.n_known,
            "n_scoring": self.n_scoring,
            "n_heldout": self.n_heldout,
        }
        if self.prompt is not None:
            out["prompt"] = self.prompt
        return {
            **out,
            "circuit": self.circuit,
            "n_edges": self.n_edges,
            "n_nodes": self.n_nodes,
            "faithfulness": stored(self.faithfulness),
            "target": self.target,
            "target_reached": self.target_reached,
            "search_faithfulness": self.search_faithfulness,
            "heads": list(self.heads),
            "cpr": stored(self.cpr),
            "cmd": stored(self.cmd),
            "findings": dict(self.findings),
            "positions": None if self.positions is None else self.positions.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RelationRow:
        search = data.get("search_faithfulness")
        positions = data.get("positions")
        return cls(
            relation=str(data["relation"]),
            n_facts=int(data["n_facts"]),
            n_known=int(data["n_known"]),
            n_scoring=int(data["n_scoring"]),
            n_heldout=int(data["n_heldout"]),
            circuit=str(data["circuit"]),
            n_edges=int(data["n_edges"]),
            n_nodes=int(data["n_nodes"]),
            faithfulness=Estimate.read(data.get("faithfulness")),
            target=float(data["target"]),
            target_reached=bool(data.get("target_reached", True)),
            search_faithfulness=None if search is None else float(search),
            heads=[str(h) for h in data.get("heads") or []],
            cpr=Estimate.read(data.get("cpr")),
            cmd=Estimate.read(data.get("cmd")),
            findings={str(k): str(v) for k, v in (data.get("findings") or {}).items()},
            positions=None if not positions else PositionsRow.from_dict(positions),
            prompt=data.get("prompt"),
        )


@dataclass(frozen=True)
class StageTiming:
    """How long a stage ran (0 when it was read back from disk) and whether it was."""

    seconds: float
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "reused": self.reused}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageTiming:
        return cls(float(data["seconds"]), bool(data["reused"]))


@dataclass(frozen=True)
class JobReuse:
    """What the job keeps of the reuse sweep: the most and least similar pairs and the shared core."""

    most_similar: ReusePair
    least_similar: ReusePair
    core: ReuseCore

    def to_dict(self) -> dict[str, Any]:
        return {
            "most_similar": self.most_similar.to_dict(),
            "least_similar": self.least_similar.to_dict(),
            "core": self.core.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobReuse:
        return cls(
            ReusePair.from_dict(data["most_similar"]),
            ReusePair.from_dict(data["least_similar"]),
            ReuseCore.from_dict(data["core"]),
        )


@dataclass
class JobSummary(DictAccess):
    """What :func:`~circuits.jobs.job.run_job` found (``job.json``; ``report`` only once built).

    ``settings`` is the job's :meth:`~circuits.jobs.job_settings.JobSettings.as_dict`
    as stored (:meth:`job_settings` reads it back); ``skipped`` maps a relation
    that could not be scored to why; ``channels`` holds the weight channels'
    validation against each relation's patching graph; ``stages`` each
    stage's :class:`StageTiming`; ``seconds`` the job's wall time and
    ``report`` the HTML report's index page (``None``: not built).
    """

    model: str
    settings: dict[str, Any]
    relations: list[RelationRow]
    skipped: dict[str, str]
    reuse: JobReuse
    channels: list[ValidationRow]
    stages: dict[str, StageTiming]
    seconds: float = 0.0
    report: str | None = None

    @property
    def stages_run(self) -> int:
        """Stages that ran (the others were read back from disk)."""
        return sum(not s.reused for s in self.stages.values())

    @property
    def stages_reused(self) -> int:
        """Stages read back from disk."""
        return sum(s.reused for s in self.stages.values())

    def job_settings(self) -> JobSettings:
        """The stored settings as :class:`~circuits.jobs.job_settings.JobSettings` (absent keys: defaults)."""
        import dataclasses

        from circuits.jobs.job_settings import JobSettings

        names = {f.name for f in dataclasses.fields(JobSettings)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.settings.items() if k in names}
        return JobSettings(**values)

    def row(self, relation: str) -> RelationRow:
        """The row of ``relation`` (a :class:`KeyError` when it has none)."""
        for r in self.relations:
            if r.relation == relation:
                return r
        raise KeyError(relation)

    def to_dict(self) -> dict[str, Any]:
        """The layout of ``job.json`` (with ``report`` once the report was built)."""
        out: dict[str, Any] = {
            "model": self.model,
            "settings": self.settings,
            "relations": [r.to_dict() for r in self.relations],
            "skipped": dict(self.skipped),
            "reuse": self.reuse.to_dict(),
            "channels": [row.to_dict() for row in self.channels],
            "stages": {name: s.to_dict() for name, s in self.stages.items()},
            "stages_run": self.stages_run,
            "stages_reused": self.stages_reused,
            "seconds": self.seconds,
        }
        return out if self.report is None else {**out, "report": self.report}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "") -> JobSummary:
        """A summary from :meth:`to_dict`'s layout (a stored ``job.json``; ``source`` names it in errors)."""
        return read_stored("job summary", data, cls._read, source=source)

    @classmethod
    def _read(cls, data: Mapping[str, Any]) -> JobSummary:
        report = data.get("report")
        return cls(
            model=str(data["model"]),
            settings=dict(data.get("settings") or {}),
            relations=[RelationRow.from_dict(r) for r in data["relations"]],
            skipped={str(k): str(v) for k, v in (data.get("skipped") or {}).items()},
            reuse=JobReuse.from_dict(data["reuse"]),
            channels=[ValidationRow.from_dict(v) for v in data.get("channels") or []],
            stages={str(k): StageTiming.from_dict(v) for k, v in (data.get("stages") or {}).items()},
            seconds=float(data.get("seconds", 0.0)),
            report=None if report is None else str(report),
        )
