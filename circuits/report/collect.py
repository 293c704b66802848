"""What a results folder holds, read into plain dataclasses: models, relations, circuits, evaluations.

Layout (the gallery's, see :mod:`circuits.store.gallery`)::

    DIR/manifest.json                                  optional
    DIR/<model>/<relation>/scored/graph.json           the scored graph's metadata
    DIR/<model>/<relation>/<circuit>/circuit.json      one folder per circuit (+ circuit.svg)
    DIR/<model>/<relation>/evaluation/evaluation.json  held-out evaluation (+ evaluation.svg)
    DIR/<model>/<relation>/mechanisms/<analysis>.json  mechanism records (+ <analysis>.svg)
    DIR/<model>/<relation>/positions/positions.json    the position-aware circuit's record (+ positions.svg)
    DIR/<model>/{reuse,channels,suppression,reuse_test}/, DIR/<model>/job.json

Anything absent is skipped; a malformed JSON file is an
:class:`~circuits.vocab.InputError` naming it. Iteration orders are sorted, so
the same folder always gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.io import read_json
from circuits.records.base import AnalysisRecord
from circuits.registry import ANALYSES
from circuits.report.figures import Figure, svg_size
from circuits.store.circuits import circuit_from_dict
from circuits.vocab import InputError

__all__ = [
    "CircuitInfo",
    "Evaluation",
    "Positions",
    "RelationData",
    "caption_of",
    "is_relation",
    "read_relation",
    "record_caption",
]

MODEL_PARTS = ("reuse", "channels", "suppression", "reuse_test")
NOT_RELATIONS = (*MODEL_PARTS, "stages", "report")  # "stages": the main job's record of finished stages
_DESCRIBE = ("description", "definition", "effect", "rate", "drop", "gain")


@dataclass(frozen=True)
class CircuitInfo:
    """One stored circuit: where it is and its size and held-out faithfulness."""

    name: str
    folder: Path
    n_edges: int
    n_nodes: int
    n_heads: int
    n_mlps: int
    extract_method: str
    params: dict[str, Any]
    faithfulness: dict[str, Any] | None
    diagram: Figure | None


@dataclass(frozen=True)
class Evaluation:
    """A relation's stored held-out evaluation (``Evaluation.as_dict()`` plus the evaluated circuit)."""

    path: Path
    data: dict[str, Any]
    figure: Figure | None

    @property
    def circuit(self) -> dict[str, Any]:
        """The evaluated circuit's name, size, target and faithfulness (empty when not recorded)."""
        found = self.data.get("circuit")
        return found if isinstance(found, dict) else {}

    def interval(self, name: str) -> Any:
        """A figure's interval (``{"value", "low", "high"}``), else its bare value."""
        intervals = self.data.get("intervals") or {}
        return intervals.get(name, self.data.get(name))


@dataclass(frozen=True)
class Positions:
    """A relation's position-aware circuit: its record, the comparison figure and the circuit itself."""

    path: Path
    data: dict[str, Any]
    figure: Figure | None
    circuit: CircuitInfo | None


@dataclass
class RelationData:
    """Everything stored about one relation of one model."""

    name: str
    folder: Path
    meta: dict[str, Any] = field(default_factory=dict)
    lre: dict[str, Any] = field(default_factory=dict)
    circuit: CircuitInfo | None = None
    others: list[CircuitInfo] = field(default_factory=list)
    evaluation: Evaluation | None = None
    positions: Positions | None = None
    mechanisms: list[Figure] = field(default_factory=list)
    records: list[Path] = field(default_factory=list)

    @property
    def faithfulness(self) -> Any:
        """Held-out faithfulness with its interval: the evaluation's, else the circuit's own."""
        if self.evaluation is not None and self.evaluation.circuit.get("faithfulness") is not None:
            return self.evaluation.circuit["faithfulness"]
        if self.circuit is None:
            return None
        return self.circuit.faithfulness


def caption_of(data: dict[str, Any], name: str) -> str:
    """A figure caption from an analysis record: its name, prompts, relations and one-line description.

    >>> caption_of({"analysis": "knockout", "n_prompts": 24, "effect": "change of p"}, "knockout")
    'Analysis knockout: 24 prompts. Change of p.'
    """
    parts = []
    if isinstance(data.get("n_prompts"), int):
        parts.append(f"{data['n_prompts']} prompts")
    relations = data.get("relations")
    if isinstance(relations, list) and relations:
        parts.append(f"{len(relations)} relations")
    name = str(data.get("analysis", name))
    text = f"Analysis {name}: " + ", ".join(parts) + "." if parts else f"Analysis {name}."
    for key in (*_DESCRIBE[:2], name, *_DESCRIBE[2:]):
        if isinstance(data.get(key), str) and data[key].strip():
            line = data[key].strip().rstrip(".")
            return f"{text} {line[0].upper()}{line[1:]}."
    return text


def record_caption(record: AnalysisRecord) -> str:
    """A figure caption from a typed analysis record: its name, prompts, relations and description."""
    parts = [f"{record.provenance.n_prompts} prompts"]
    relations = getattr(record, "relations", None)
    if isinstance(relations, list) and relations:
        parts.append(f"{len(relations)} relations")
    text = f"Analysis {record.NAME}: " + ", ".join(parts) + "."
    line = record.description().strip().rstrip(".")
    return f"{text} {line[0].upper()}{line[1:]}." if line else text


def _caption(data: dict[str, Any], stem: str, path: Path) -> str:
    """The caption of a stored record: read through its registered type, else from its keys."""
    entry = ANALYSES.get(str(data.get("analysis", stem)))
    if entry is None or not data:
        return caption_of(data, stem)
    try:
        return record_caption(entry.read(data, source=str(path)))
    except InputError:  # a record this version cannot read: the caption its keys give
        return caption_of(data, stem)


def is_relation(folder: Path) -> bool:
    """Whether a model's subfolder holds a relation's results (scored graph, circuit, evaluation, records)."""
    if folder.name.startswith(".") or folder.name in NOT_RELATIONS or not folder.is_dir():
        return False
    if (folder / "scored" / "graph.json").is_file() or (folder / "evaluation" / "evaluation.json").is_file():
        return True
    mech = folder / "mechanisms"
    if mech.is_dir() and any(p.suffix in (".json", ".svg") for p in mech.iterdir()):
        return True
    return any((c / "circuit.json").is_file() for c in _dirs(folder))


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_circuit(folder: Path) -> CircuitInfo:
    path = folder / "circuit.json"
    circuit = circuit_from_dict(read_json(path, what="circuit file"), source=str(path))
    summary = circuit.summary()
    interval = circuit.params.get("faithfulness_interval")
    if not isinstance(interval, dict):
        interval = None if circuit.faithfulness is None else {"value": circuit.faithfulness}
    svg = folder / "circuit.svg"
    title = f"Circuit {folder.name}"
    caption = (
        f"{summary['n_edges']} edges, {summary['n_heads']} heads, {summary['n_mlps']} MLPs "
        "(graphviz). Hover a node or an edge for its score."
    )
    if circuit.roles is not None:
        counts = ", ".join(f"{n} {role}" for role, n in circuit.role_counts().items() if n)
        caption = (
            f"{summary['n_units']} (edge, role) units on {summary['n_edges']} edges ({counts}); one lane "
            "per position role, cross-role flow drawn through the heads' key/value inputs (graphviz). "
            "Hover a node or an edge for its score."
        )
    diagram = Figure(svg, title, caption, svg_size(svg), interactive=True) if svg.is_file() else None
    return CircuitInfo(
        folder.name,
        folder,
        summary["n_edges"],
        summary["n_nodes"],
        summary["n_heads"],
        summary["n_mlps"],
        circuit.extract_method,
        dict(circuit.params),
        interval,
        diagram,
    )


def _choose(circuits: list[CircuitInfo], wanted: str | None, dates: dict[str, str]) -> int:
    """Index of the circuit to show: the evaluated one, else the newest in the manifest, else the first."""
    names = [c.name for c in circuits]
    if wanted in names:
        return names.index(wanted)
    newest = max((dates.get(n, "") for n in names), default="")
    return next(i for i, n in enumerate(names) if dates.get(n, "") == newest)


def _evaluation(folder: Path) -> Evaluation | None:
    path = folder / "evaluation" / "evaluation.json"
    if not path.is_file():
        return None
    data = read_json(path, what="evaluation file")
    svg = path.with_suffix(".svg")
    caption = (
        "Held-out faithfulness of the top edges by signed score, by |score| and at random, "
        "over edge fractions, with 95% intervals over prompt pairs."
    )
    fig = Figure(svg, "Faithfulness curve", caption, svg_size(svg)) if svg.is_file() else None
    return Evaluation(path, data if isinstance(data, dict) else {}, fig)


def _positions(folder: Path, circuits: list[CircuitInfo]) -> Positions | None:
    path = folder / "positions" / "positions.json"
    if not path.is_file():
        return None
    data = read_json(path, what="position-aware record")
    data = data if isinstance(data, dict) else {}
    svg = path.with_suffix(".svg")
    caption = (
        "Left: held-out faithfulness of position-aware circuits of n (edge, role) units against summed "
        "circuits of n edges, 95% intervals over prompt pairs. Right: per receiver layer, each position "
        "role's share of the circuit's |score|."
    )
    fig = Figure(svg, "Position-aware circuit", caption, svg_size(svg)) if svg.is_file() else None
    name = (data.get("circuit") or {}).get("folder")
    circuit = next((c for c in circuits if c.name == name), None)
    return Positions(path, data, fig, circuit)


def _mechanisms(folder: Path) -> tuple[list[Figure], list[Path]]:
    """The mechanism figures (registered analyses first, in the registry's order) and the records
    that have no figure."""
    mech = folder / "mechanisms"
    if not mech.is_dir():
        return [], []
    known = list(ANALYSES)
    stems = sorted(
        {p.stem for p in mech.iterdir() if p.suffix in (".json", ".svg")},
        key=lambda s: (known.index(s) if s in known else len(known), s),
    )
    figures, records = [], []
    for stem in stems:
        record, svg = mech / f"{stem}.json", mech / f"{stem}.svg"
        data = read_json(record, what="analysis record") if record.is_file() else {}
        data = data if isinstance(data, dict) else {}
        entry = ANALYSES.get(str(data.get("analysis", stem))) or ANALYSES.get(stem)
        title = entry.title if entry is not None else stem
        if svg.is_file():
            figures.append(Figure(svg, title, _caption(data, stem, record), svg_size(svg)))
        elif record.is_file():
            records.append(record)
    return figures, records


def read_relation(folder: Path, dates: dict[str, str]) -> RelationData:
    """Read one relation folder; ``dates`` maps circuit folder names to their manifest dates."""
    rel = RelationData(folder.name, folder)
    graph, lre = folder / "scored" / "graph.json", folder / "scored" / "relation.json"
    if graph.is_file():
        meta = read_json(graph, what="scored graph metadata")
        rel.meta = meta if isinstance(meta, dict) else {}
    if lre.is_file():
        data = read_json(lre, what="relation file")
        rel.lre = data if isinstance(data, dict) else {}
    rel.evaluation = _evaluation(folder)
    circuits = [_read_circuit(c) for c in _dirs(folder) if (c / "circuit.json").is_file()]
    rel.positions = _positions(folder, circuits)
    if rel.positions is not None and rel.positions.circuit is not None:
        circuits.remove(rel.positions.circuit)  # shown in its own section
    if circuits:
        wanted = rel.evaluation.circuit.get("name") if rel.evaluation else None
        chosen = _choose(circuits, wanted, dates)
        rel.circuit = circuits.pop(chosen)
        rel.others = circuits
    rel.mechanisms, rel.records = _mechanisms(folder)
    return rel
