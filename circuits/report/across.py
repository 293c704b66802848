"""What a results folder holds per model, across its relations: reuse, channels, suppression, the job.

Reads ``DIR/<model>/reuse/`` (``report.json``, the heatmaps, ``noise.csv``),
``channels/`` (``channels.json``, ``overlay.svg``), ``suppression/`` and
``reuse_test/`` (a record and a figure each) and ``job.json``, then every
relation (:mod:`circuits.report.collect`). Absent parts are ``None``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.deprecation import OLD_CHANNEL_KEYS, OLD_CHANNELS_FILE_KEYS, renamed_keys
from circuits.io import read_json
from circuits.report.collect import MODEL_PARTS, RelationData, caption_of, is_relation, read_relation
from circuits.report.figures import Figure, svg_size
from circuits.vocab import InputError

__all__ = ["Analysis", "Channels", "ModelData", "Reuse", "read_csv", "read_object", "read_results"]

ANALYSES = {"suppression": "Final-layer suppression", "reuse_test": "Causal reuse test"}


@dataclass(frozen=True)
class Reuse:
    """A model's reuse sweep: its report, figures by name, ``noise.csv`` and every CSV file."""

    folder: Path
    report: dict[str, Any]
    figures: dict[str, Figure]
    noise: tuple[list[str], list[list[str]]] | None
    csvs: list[Path]


@dataclass(frozen=True)
class Channels:
    """A model's predicted channels, their validation against patching and the overlay diagram.

    ``data`` is ``channels.json`` with the keys of today (a file written by
    0.4 names a channel's sender and receiver ``writer`` and ``reader``).
    """

    folder: Path
    data: dict[str, Any]
    overlay: Figure | None


@dataclass(frozen=True)
class Analysis:
    """An analysis across relations (suppression, the causal reuse test): record and figure."""

    name: str
    title: str
    record: Path | None
    data: dict[str, Any]
    figure: Figure | None


@dataclass
class ModelData:
    """Everything stored about one model."""

    name: str
    folder: Path
    relations: list[RelationData] = field(default_factory=list)
    reuse: Reuse | None = None
    channels: Channels | None = None
    analyses: list[Analysis] = field(default_factory=list)
    job: dict[str, Any] | None = None
    job_path: Path | None = None


def read_object(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, what=what)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; unreadable text is an :class:`InputError` naming it."""
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: unreadable CSV ({error})") from None
    return (rows[0], rows[1:]) if rows else ([], [])


def _reuse_figures(folder: Path, report: dict[str, Any]) -> dict[str, Figure]:
    metric = report.get("metric", "similarity")
    tree = report.get("clustering") or {}
    core = report.get("core") or {}
    n = len(report.get("relations") or [])
    captions = {
        "heatmap": (
            "Circuit reuse",
            f"Similarity ({metric}) of every pair of relations' circuits, in the "
            f"order of the {tree.get('linkage_method', 'hierarchical')} clustering drawn as a "
            "dendrogram. Hover a cell for its value, 95% interval, split-half ceilings and null.",
        ),
        "heatmap_relative": (
            "Reuse relative to the noise ceilings",
            f"The same {metric} divided by the "
            "geometric mean of the two relations' split-half ceilings (1: as similar as "
            "a relation's circuit is to itself across halves of its prompts).",
        ),
        "heads": ("Shared heads", "Share of in-circuit heads two relations' circuits have in common."),
        "cross_task": (
            "Cross-task faithfulness",
            "Each row relation's circuit evaluated on the column "
            "relation's held-out prompts, relative to the column's own circuit of the same size.",
        ),
        "core": (
            "Shared core",
            f"Edges in at least {core.get('k', 'half')} of the {n or 'stored'} circuits "
            f"({core.get('n_edges', '?')} edges). Hover a node or an edge for its score.",
        ),
    }
    out = {}
    for name, (title, caption) in captions.items():
        svg = folder / f"{name}.svg"
        if svg.is_file():
            out[name] = Figure(svg, title, caption, svg_size(svg), interactive=True)
    return out


def _reuse(folder: Path) -> Reuse | None:
    if not folder.is_dir():
        return None
    report = read_object(folder / "report.json", "reuse report") if (folder / "report.json").is_file() else {}
    noise = read_csv(folder / "noise.csv") if (folder / "noise.csv").is_file() else None
    csvs = sorted(folder.glob("*.csv"))
    return Reuse(folder, report, _reuse_figures(folder, report), noise, csvs)


def _channels(folder: Path) -> Channels | None:
    path, svg = folder / "channels.json", folder / "overlay.svg"
    if not path.is_file() and not svg.is_file():
        return None
    data = renamed_keys(read_object(path, "channels file"), OLD_CHANNELS_FILE_KEYS) if path.is_file() else {}
    if isinstance(data.get("channels"), list):
        data["channels"] = [
            renamed_keys(c, OLD_CHANNEL_KEYS) if isinstance(c, dict) else c for c in data["channels"]
        ]
    overlay = data.get("overlay") if isinstance(data.get("overlay"), dict) else {}
    caption = "Predicted channels drawn over a relation's circuit"
    if overlay.get("relation"):
        caption += f" ({overlay.get('circuit') or 'circuit'} of {overlay['relation']})"
    caption += ". Hover a node or an edge for its score."
    figure = Figure(svg, "Channels over a circuit", caption, svg_size(svg), True) if svg.is_file() else None
    return Channels(folder, data, figure)


def _analyses(model: Path) -> list[Analysis]:
    out = []
    for name, title in ANALYSES.items():
        record, svg = model / name / f"{name}.json", model / name / f"{name}.svg"
        if not record.is_file() and not svg.is_file():
            continue
        data = read_object(record, "analysis record") if record.is_file() else {}
        figure = Figure(svg, title, caption_of(data, name), svg_size(svg)) if svg.is_file() else None
        out.append(Analysis(name, title, record if record.is_file() else None, data, figure))
    return out


def _dates(root: Path) -> dict[str, str]:
    """Manifest dates by ``model/relation/unit`` (empty without a manifest)."""
    if not (root / "manifest.json").is_file():
        return {}
    manifest = read_object(root / "manifest.json", "gallery manifest")
    entries = manifest.get("entries") if isinstance(manifest.get("entries"), dict) else {}
    return {str(k): str(v.get("date") or "") for k, v in entries.items() if isinstance(v, dict)}


def _is_model(folder: Path) -> bool:
    if not folder.is_dir() or folder.name.startswith("."):
        return False
    if (folder / "job.json").is_file() or any((folder / part).is_dir() for part in MODEL_PARTS):
        return True
    return any(is_relation(p) for p in folder.iterdir())


def read_model(folder: Path, dates: dict[str, str]) -> ModelData:
    """Read one model's folder; ``dates`` are the manifest's dates by ``model/relation/unit``."""
    model = ModelData(folder.name, folder)
    for sub in sorted(folder.iterdir()):
        if is_relation(sub):
            prefix = f"{folder.name}/{sub.name}/"
            own = {k[len(prefix) :]: v for k, v in dates.items() if k.startswith(prefix)}
            model.relations.append(read_relation(sub, own))
    model.reuse = _reuse(folder / "reuse")
    model.channels = _channels(folder / "channels")
    model.analyses = _analyses(folder)
    if (folder / "job.json").is_file():
        model.job_path = folder / "job.json"
        model.job = read_object(model.job_path, "job summary")
    return model


def read_results(root: Path, *, skip: Path | None = None) -> list[ModelData]:
    """Every model stored under ``root`` (``skip``: a folder to leave out, such as the report itself)."""
    if not root.is_dir():
        raise InputError(f"{root}: no such results folder")
    dates = _dates(root)
    folders = [p for p in sorted(root.iterdir()) if skip is None or p.resolve() != skip.resolve()]
    return [read_model(p, dates) for p in folders if _is_model(p)]
