"""The gallery's manifest (``<root>/manifest.json``): one entry per stored folder, rebuilt and checked here.

An entry names the folder's ``files`` and what it holds (``kind``, model,
relation, sizes, date, package version). A circuit's entry also says whether
its diagram was drawn and, when not, why (``diagram``, see
:func:`circuits.store.diagrams.diagram_record`); a folder of files with
circuits drawn in it (the reuse sweep's ``core``) says the same per circuit
file (``diagrams``). Updates are serialised by a lock file, so the tasks of a
distributed sweep lose no entry; :func:`check_gallery` lists every way the
folders and the manifest disagree.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.io import atomic_write_text
from circuits.store.circuits import circuit_from_dict, read_circuit
from circuits.store.diagrams import (
    DIAGRAM_LIMIT,
    IMAGE_SUFFIXES,
    circuit_data,
    diagram_files,
    diagram_record,
    diagram_size,
    tidy_diagrams,
    too_large_reason,
)
from circuits.store.layout import CIRCUIT_FILE, EVALUATION, MANIFEST, MECHANISMS
from circuits.store.scored import META, load_scored
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.circuit import Circuit
    from circuits.graph import ScoredGraph

__all__ = [
    "GALLERY_FORMAT",
    "analysis_entry",
    "check_gallery",
    "circuit_entry",
    "files_of",
    "manifest_lock",
    "read_manifest",
    "rebuild_manifest",
    "record_entry",
    "scored_entry",
    "tidy_gallery",
    "units",
]

GALLERY_FORMAT = "circuits.gallery/1"


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def version() -> str:
    from circuits.version import __version__

    return __version__


def files_of(folder: Path) -> list[str]:
    """The names of the files directly in ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def scored_entry(graph: ScoredGraph, model: str, relation: str) -> dict[str, Any]:
    meta = graph.metadata
    return {
        "kind": "scored",
        "model": model,
        "relation": relation,
        "score_method": meta.get("score_method"),
        "metric": meta.get("metric"),
        "size": graph.n_edges,
        "n_pairs": meta.get("n_pairs_scoring"),
    }


def circuit_entry(circuit: Circuit, model: str, relation: str, folder: Path) -> dict[str, Any]:
    """A circuit folder's entry: how it was extracted, its size, and its diagram (drawn, or why not)."""
    return {
        "kind": "circuit",
        "model": model,
        "relation": relation,
        "name": folder.name,
        "extract_method": circuit.extract_method,
        "score_method": circuit.provenance.get("score_method"),
        "params": {k: v for k, v in circuit.params.items() if k not in ("paths", "search")},
        "size": circuit.n_edges,
        "heads": len(circuit.heads()),
        "faithfulness": circuit.faithfulness,
        "diagram": diagram_record(circuit, folder),
    }


def analysis_entry(folder: Path, model: str, relation: str) -> dict[str, Any]:
    analyses = sorted(p.stem for p in folder.glob("*.json"))
    return {"kind": MECHANISMS, "model": model, "relation": relation, "analyses": analyses}


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest (an empty one when there is none); a malformed one is an :class:`InputError`."""
    path = root / MANIFEST
    if not path.is_file():
        return {"format": GALLERY_FORMAT, "entries": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(
            f"{path}: malformed JSON at line {error.lineno}: {error.msg}; "
            "rebuild it with Gallery.rebuild_manifest()"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise InputError(
            f"{path}: field 'entries' must be an object; rebuild it with Gallery.rebuild_manifest()"
        )
    return data


def _write(root: Path, data: dict[str, Any]) -> None:
    data["entries"] = dict(sorted(data["entries"].items()))
    atomic_write_text(root / MANIFEST, json.dumps(data, indent=1) + "\n")


def record_entry(root: Path, folder: Path, entry: dict[str, Any]) -> None:
    """Add or replace ``folder``'s entry (its files, ``entry``, the date and the package version)."""
    with manifest_lock(root):  # tasks of a distributed sweep record into one manifest
        data = read_manifest(root)
        key = folder.relative_to(root).as_posix()
        data["entries"][key] = {
            "files": files_of(folder),
            **entry,
            "date": now(),
            "package_version": version(),
        }
        _write(root, data)


@contextlib.contextmanager
def manifest_lock(root: Path) -> Iterator[None]:
    """An exclusive lock (``flock``) on the manifest's lock file: no update is lost to another process's."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{MANIFEST}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def units(root: Path) -> Iterator[Path]:
    """The circuit and scored-graph folders, ``<model>/<relation>/<unit>``."""
    for path in sorted(root.glob("*/*/*")):
        if (
            path.is_dir()
            and not path.name.startswith(".")
            and ((path / CIRCUIT_FILE).is_file() or (path / META).is_file())
        ):
            yield path


def rebuild_manifest(root: Path) -> dict[str, Any]:
    """Recreate the manifest from the stored folders (dates become the files' times)."""
    entries: dict[str, Any] = {}
    for path in units(root):
        key = path.relative_to(root).as_posix()
        date = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.UTC).isoformat(timespec="seconds")
        if (path / CIRCUIT_FILE).is_file():
            c = read_circuit(path / CIRCUIT_FILE)
            entry, stored_version = circuit_entry(c, path.parts[-3], path.parts[-2], path), c.provenance
        else:
            graph = load_scored(path)
            entry, stored_version = scored_entry(graph, path.parts[-3], path.parts[-2]), graph.metadata
        entries[key] = {
            "files": files_of(path),
            **entry,
            "date": date,
            "package_version": stored_version.get("package_version"),
        }
    try:
        previous = read_manifest(root)["entries"]
    except InputError:
        previous = {}
    for path in sorted(root.glob("*/*")):  # model-level folders of files: reuse, suppression, ...
        hidden = path.name.startswith(".")  # a staging folder
        files = files_of(path) if path.is_dir() and not hidden else []
        if not files:
            continue
        key = path.relative_to(root).as_posix()
        entries[key] = {**previous.get(key, {"kind": path.name, "model": path.parent.name}), "files": files}
        drawn = {stem: diagram_record(c, path, stem) for stem, c in _circuit_files(path)}
        if drawn:
            entries[key]["diagrams"] = drawn
    for path in sorted(root.glob(f"*/*/{EVALUATION}")):  # a relation's folder of files
        key = path.relative_to(root).as_posix()
        first = {"kind": EVALUATION, "model": path.parts[-3], "relation": path.parts[-2]}
        entries[key] = {**previous.get(key, first), "files": files_of(path)}
    for path in sorted(root.glob(f"*/*/{MECHANISMS}")):
        key = path.relative_to(root).as_posix()
        entries[key] = {
            "files": files_of(path),
            **analysis_entry(path, path.parts[-3], path.parts[-2]),
            "date": previous.get(key, {}).get("date"),
            "package_version": previous.get(key, {}).get("package_version", version()),
        }
    data = {"format": GALLERY_FORMAT, "entries": entries}
    _write(root, data)
    return data


def _circuit_files(folder: Path) -> Iterator[tuple[str, Circuit]]:
    """The circuit files ``X.json`` of a folder that have a diagram ``X.*`` beside them."""
    for path in sorted(folder.glob("*.json")):
        if diagram_files(path):
            data = circuit_data(path)
            if data is not None:
                yield path.stem, circuit_from_dict(data, source=str(path))


def tidy_gallery(root: Path) -> dict[str, Any]:
    """Apply the diagram rules to every folder the manifest lists, and list only what exists.

    A DOT file beside an image is removed, and so is every diagram of a
    circuit over the limit; each entry's ``files`` and ``diagram`` (or
    ``diagrams``) are brought up to date, keeping its date. An entry whose
    folder is gone is dropped. Run it when nothing else writes to the gallery.
    """
    with manifest_lock(root):
        data = read_manifest(root)
        for key in list(data["entries"]):
            folder, entry = root / key, data["entries"][key]
            if not folder.is_dir():
                del data["entries"][key]
                continue
            records = tidy_diagrams(folder)
            entry["files"] = files_of(folder)
            if entry.get("kind") == "circuit" and "circuit" in records:
                entry["diagram"] = records["circuit"]
            elif records:
                entry["diagrams"] = records
        _write(root, data)
    return data


def check_gallery(root: Path) -> list[str]:
    """Every way the gallery breaks its own rules, one line each (empty: none).

    Each manifest entry names a folder that exists and lists exactly its
    files; every circuit and scored-graph folder is listed; every circuit
    entry's ``diagram`` says what its folder holds; no DOT file lies beside an
    SVG or PNG; no circuit over the limit has a diagram.
    """
    problems = []
    entries = read_manifest(root)["entries"]
    for key, entry in entries.items():
        folder = root / key
        if not folder.is_dir():
            problems.append(f"{key}: listed in the manifest but not stored")
            continue
        if entry.get("files") != files_of(folder):
            problems.append(
                f"{key}: the manifest lists {entry.get('files')}, the folder holds {files_of(folder)}"
            )
        if entry.get("kind") == "circuit" and (folder / CIRCUIT_FILE).is_file():
            record = diagram_record(read_circuit(folder / CIRCUIT_FILE), folder)
            if entry.get("diagram") != record:
                problems.append(
                    f"{key}: the manifest's diagram record is {entry.get('diagram')}, not {record}"
                )
    for path in units(root):
        if path.relative_to(root).as_posix() not in entries:
            problems.append(f"{path.relative_to(root).as_posix()}: not in the manifest")
    for dot in sorted(root.rglob("*.dot")):
        if any(dot.with_suffix(s).is_file() for s in IMAGE_SUFFIXES):
            problems.append(f"{dot.relative_to(root).as_posix()}: a DOT file beside its image")
    for folder in sorted({p.parent for p in root.rglob("*.json")}):
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue
        for stem, circuit in _circuit_files(folder):
            size, counted = diagram_size(circuit)
            if size > DIAGRAM_LIMIT:
                drawn = sorted(p.relative_to(root).as_posix() for p in diagram_files(folder / f"{stem}.json"))
                problems.append(
                    f"{', '.join(drawn)}: a diagram of a circuit {too_large_reason(size, counted)}"
                )
    return problems
