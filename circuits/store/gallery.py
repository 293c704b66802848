"""The ``graphs/`` store: scored graphs, circuits, their diagrams and a manifest.

Layout (model and relation names are made filesystem-safe)::

    graphs/
      manifest.json                       everything stored, one entry per folder
      <model>/<relation>/scored/          the scored graph (scores.safetensors, graph.json, relation.json)
      <model>/<relation>/<circuit>/       circuit.json (node-link), circuit.dot, circuit.svg
      <model>/<relation>/mechanisms/      the mechanism analyses' records and figures (JSON, SVG)
      <model>/reuse/                      reuse matrices (CSV, SVG heatmaps), clustering, cross-task faithfulness
      <model>/reuse_test/, suppression/   analyses across relations (JSON, SVG)

Each folder is one unit, written whole into a hidden staging folder next to it
and then swapped into place by two renames; a crash at any point leaves either
the old folder or the new one (a folder caught between the two renames is
restored on the next read), never a mix. Files inside are written with
:func:`circuits.io.atomic_write_bytes`. The manifest is rewritten atomically
after each unit; :meth:`Gallery.rebuild_manifest` recreates it from the folders.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.io import atomic_write_bytes, atomic_write_text, read_json, swap_in
from circuits.relations.schema import Relation, relation_to_json
from circuits.store.scored import META, RELATION, load_scored, save_scored
from circuits.vocab import InputError

__all__ = ["CIRCUIT_FILE", "EVALUATION", "MANIFEST", "Gallery", "circuit_name", "safe_name"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CIRCUIT_FILE = "circuit.json"
SCORED = "scored"
MECHANISMS = "mechanisms"
EVALUATION = "evaluation"
"""A relation's held-out evaluation of its scored graph and circuit: ``evaluation.json``, ``evaluation.svg``."""
_FORMAT = "circuits.gallery/1"


def safe_name(name: str) -> str:
    """A folder name for a model, relation or circuit name.

    >>> safe_name("HuggingFaceTB/SmolLM2-135M")
    'HuggingFaceTB__SmolLM2-135M'
    """
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__")).strip("._")
    if not text:
        raise InputError(f"{name!r} cannot name a folder; use letters, digits, '.', '_' or '-'")
    return text


IMPLIED = {"positions": "summed"}
"""Metadata that graphs stored before a key existed hold implicitly (scores summed over positions)."""


def circuit_name(circuit: Circuit) -> str:
    """The circuit's name, else ``{extract_method}-{by}-{size}`` from how it was extracted (``-roles`` for units)."""
    if circuit.name:
        return safe_name(circuit.name)
    p = circuit.params
    size = p.get("max_edges", p.get("n", p.get("k", p.get("threshold", circuit.n_edges))))
    roles = "roles" if circuit.roles is not None else None
    parts = (circuit.extract_method, p.get("by"), size, roles)
    return safe_name("-".join(str(x) for x in parts if x is not None))


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _version() -> str:
    from circuits.version import __version__

    return __version__


class Gallery:
    """The store rooted at ``root`` (default ``graphs/`` in the current directory).

    Scored graphs go to ``<root>/<model>/<relation>/scored``, circuits to
    ``<root>/<model>/<relation>/<circuit name>`` (``circuit.json`` plus any
    diagrams), sweeps such as :func:`circuits.run_reuse` to
    ``<root>/<model>/reuse``; ``<root>/manifest.json`` lists every stored
    folder with what it holds. Each folder is written whole and swapped into
    place, so a crash never leaves a mix of old and new files.

    Parameters
    ----------
    root : str or Path
        The store's folder (created on the first write).

    Examples
    --------
    >>> import tempfile
    >>> from circuits import Gallery, ScoreSettings, extract, load_model, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> model = load_model("tiny-llama")
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> gallery = Gallery(tempfile.mkdtemp())
    >>> gallery.save_scored(graph, pairs.relation).relative_to(gallery.root).as_posix()
    'tiny-llama/country_capital_city/scored'
    >>> circuit = extract(graph, "top-n", size=30)
    >>> folder, message = gallery.save_circuit(circuit)
    >>> folder.relative_to(gallery.root).as_posix(), message
    ('tiny-llama/country_capital_city/top-n-signed-30', '')
    >>> sorted(gallery.manifest()["entries"])
    ['tiny-llama/country_capital_city/scored', 'tiny-llama/country_capital_city/top-n-signed-30']
    >>> gallery.load_circuit("tiny-llama", "country_capital_city", "top-n-signed-30") == circuit
    True

    A stored graph is found again only when its metadata match:

    >>> wanted = settings.stored_as()
    >>> gallery.find_scored("tiny-llama", "country_capital_city", facts=pairs.relation, **wanted) is not None
    True
    >>> gallery.find_scored("tiny-llama", "country_capital_city", ig_steps=5) is None
    True

    ... and, with ``facts``, when the relation's content is the same (not its file's path):

    >>> import dataclasses
    >>> edited = dataclasses.replace(pairs.relation, facts=pairs.relation.facts[:-1])
    >>> gallery.find_scored("tiny-llama", "country_capital_city", facts=edited, **wanted) is None
    True
    """

    def __init__(self, root: str | Path = "graphs") -> None:
        self.root = Path(root)

    # ----------------------------------------------------------- paths
    def folder(self, model: str, relation: str | None = None, name: str | None = None) -> Path:
        path = self.root / safe_name(model)
        if relation is not None:
            path = path / safe_name(relation)
        return path / safe_name(name) if name is not None else path

    # ----------------------------------------------------------- units
    def _commit(self, target: Path, write: Any) -> Path:
        """Run ``write(staging_folder)``, then swap the staging folder into ``target``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        self._recover(target)
        for stale in target.parent.glob(f".{target.name}.new-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = target.parent / f".{target.name}.new-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            write(staging)
            swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    @staticmethod
    def _recover(target: Path) -> None:
        """Restore a folder left between the two renames of :meth:`_commit`."""
        olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds and not target.exists():
            log.warning("restoring %s from an interrupted write", target)
            os.rename(olds[-1], target)
            olds = olds[:-1]
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)

    # ----------------------------------------------------------- scored graphs
    def save_scored(self, graph: ScoredGraph, relation: Relation | None = None) -> Path:
        """Store a scored graph under ``<model>/<relation>/scored``."""
        model, rel = self._names(graph.metadata)
        target = self._commit(self.folder(model, rel, SCORED), lambda d: save_scored(d, graph, relation))
        meta = graph.metadata
        self._record(
            target,
            {
                "kind": "scored",
                "model": model,
                "relation": rel,
                "score_method": meta.get("score_method"),
                "metric": meta.get("metric"),
                "size": graph.n_edges,
                "n_pairs": meta.get("n_pairs_scoring"),
            },
        )
        return target

    def load_scored(self, model: str, relation: str) -> ScoredGraph:
        folder = self.folder(model, relation, SCORED)
        self._recover(folder)
        return load_scored(folder)

    def find_scored(
        self, model: str, relation: str, *, facts: Relation | None = None, **want: Any
    ) -> ScoredGraph | None:
        """The stored scored graph if every ``want`` item equals its metadata, else ``None``.

        With ``facts``, the relation stored beside the graph must also hold
        the same templates and facts: a relation file edited since the graph
        was scored (or another file of the same name) is scored again. The
        file's path does not matter, only its content.
        """
        folder = self.folder(model, relation, SCORED)
        self._recover(folder)
        if not (folder / META).is_file():
            return None
        try:
            graph = load_scored(folder)
        except InputError as error:
            log.warning("ignoring stored graph %s: %s", folder, error)
            return None
        stored = {**IMPLIED, **graph.metadata}
        differs = {k: (stored.get(k), v) for k, v in want.items() if stored.get(k) != v}
        if differs:
            log.info("stored graph %s does not match (stored, wanted): %s", folder, differs)
            return None
        if facts is not None and not _same_relation(folder / RELATION, facts):
            log.info(
                "stored graph %s was scored on other facts or templates than %s; scoring again",
                folder,
                facts.source,
            )
            return None
        return graph

    # ----------------------------------------------------------- circuits
    def save_circuit(
        self,
        circuit: Circuit,
        name: str | None = None,
        *,
        draw: Callable[[Path], str] | None = None,
    ) -> tuple[Path, str]:
        """Store a circuit's JSON (and, through ``draw``, its diagrams) as one unit.

        ``draw(folder)`` writes diagram files into the staging folder and
        returns a message (empty when all went well); the store itself never
        draws. Returns the folder and that message.
        """
        model, rel = self._names(circuit.provenance)
        name = safe_name(name) if name else circuit_name(circuit)
        message = ""

        def write(folder: Path) -> None:
            nonlocal message
            circuit.save(folder / CIRCUIT_FILE)
            if draw is not None:
                message = draw(folder)

        target = self._commit(self.folder(model, rel, name), write)
        self._record(target, self._circuit_entry(circuit, model, rel, name))
        return target, message

    def _circuit_entry(self, circuit: Circuit, model: str, rel: str, name: str) -> dict[str, Any]:
        return {
            "kind": "circuit",
            "model": model,
            "relation": rel,
            "name": name,
            "extract_method": circuit.extract_method,
            "score_method": circuit.provenance.get("score_method"),
            "params": {k: v for k, v in circuit.params.items() if k not in ("paths", "search")},
            "size": circuit.n_edges,
            "heads": len(circuit.heads()),
            "faithfulness": circuit.faithfulness,
        }

    def load_circuit(self, model: str, relation: str, name: str) -> Circuit:
        folder = self.folder(model, relation, name)
        self._recover(folder)
        return Circuit.load(folder / CIRCUIT_FILE)

    def circuits(self, model: str, name: str | None = None) -> dict[str, Circuit]:
        """Stored circuits of ``model`` keyed by relation (one per relation: ``name``, else the newest)."""
        out: dict[str, tuple[float, Circuit]] = {}
        for path in sorted(self.folder(model).glob(f"*/*/{CIRCUIT_FILE}")):
            if name is not None and path.parent.name != safe_name(name):
                continue
            relation, stamp = path.parent.parent.name, path.stat().st_mtime
            if relation not in out or stamp > out[relation][0]:
                out[relation] = (stamp, Circuit.load(path))
        return {k: v for k, (_, v) in sorted(out.items())}

    # ----------------------------------------------------------- other units
    def save_files(
        self,
        model: str,
        folder: str,
        files: dict[str, str | bytes],
        entry: dict[str, Any],
        *,
        after: Callable[[Path], None] | None = None,
        relation: str | None = None,
    ) -> Path:
        """Store a folder of files (e.g. ``reuse``) under ``<model>/`` (or ``<model>/<relation>/``) as one unit.

        ``after(staging_folder)`` may add more files before the folder is swapped in.
        """

        def write(staging: Path) -> None:
            for name, data in files.items():
                blob = data.encode("utf-8") if isinstance(data, str) else data
                atomic_write_bytes(staging / name, blob)
            if after is not None:
                after(staging)

        target = self._commit(self.folder(model, relation, folder), write)
        self._record(
            target, {"kind": folder, "model": model, **({"relation": relation} if relation else {}), **entry}
        )
        return target

    def save_analysis(self, model: str, relation: str, analysis: str, files: dict[str, str]) -> Path:
        """Store one mechanism analysis's files (``knockout.json``, ``knockout.svg``, ...) with a relation.

        They go to ``<model>/<relation>/mechanisms/``, each written atomically
        beside the other analyses' files; the manifest lists the folder with
        the analyses it holds.
        """
        folder = self.folder(model, relation, MECHANISMS)
        for name, text in files.items():
            atomic_write_text(folder / safe_name(name), text)
        self._record(folder, self._analysis_entry(folder, model, relation))
        return folder

    @staticmethod
    def _analysis_entry(folder: Path, model: str, relation: str) -> dict[str, Any]:
        analyses = sorted(p.stem for p in folder.glob("*.json"))
        return {"kind": MECHANISMS, "model": model, "relation": relation, "analyses": analyses}

    # ----------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.is_file():
            return {"format": _FORMAT, "entries": {}}
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

    def _record(self, folder: Path, entry: dict[str, Any]) -> None:
        with self._manifest_lock():  # tasks of a distributed sweep record into one manifest
            data = self.manifest()
            key = folder.relative_to(self.root).as_posix()
            files = sorted(p.name for p in folder.iterdir() if p.is_file())
            data["entries"][key] = {"files": files, **entry, "date": _now(), "package_version": _version()}
            data["entries"] = dict(sorted(data["entries"].items()))
            atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=1, sort_keys=False) + "\n")

    @contextlib.contextmanager
    def _manifest_lock(self) -> Iterator[None]:
        """An exclusive lock (``flock``) on the manifest's lock file, so no update is lost to another process's."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f".{MANIFEST}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def rebuild_manifest(self) -> dict[str, Any]:
        """Recreate the manifest from the stored folders (dates become the files' times)."""
        entries: dict[str, Any] = {}
        for path in self._units():
            key = path.relative_to(self.root).as_posix()
            date = _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.UTC).isoformat(timespec="seconds")
            files = sorted(p.name for p in path.iterdir() if p.is_file())
            if (path / CIRCUIT_FILE).is_file():
                c = Circuit.load(path / CIRCUIT_FILE)
                entry = self._circuit_entry(c, path.parts[-3], path.parts[-2], path.name)
                version = c.provenance.get("package_version")
            else:
                graph = load_scored(path)
                meta = graph.metadata
                entry = {
                    "kind": "scored",
                    "model": path.parts[-3],
                    "relation": path.parts[-2],
                    "score_method": meta.get("score_method"),
                    "metric": meta.get("metric"),
                    "size": graph.n_edges,
                    "n_pairs": meta.get("n_pairs_scoring"),
                }
                version = meta.get("package_version")
            entries[key] = {"files": files, **entry, "date": date, "package_version": version}
        try:
            previous = self.manifest()["entries"]
        except InputError:
            previous = {}
        for path in sorted(self.root.glob("*/*")):  # model-level folders of files: reuse, suppression, ...
            hidden = path.name.startswith(".")  # a staging folder
            files = (
                sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() and not hidden else []
            )
            if not files:
                continue
            key = path.relative_to(self.root).as_posix()
            entries[key] = {
                **previous.get(key, {"kind": path.name, "model": path.parent.name}),
                "files": files,
            }
        for path in sorted(self.root.glob(f"*/*/{EVALUATION}")):  # a relation's folder of files
            key = path.relative_to(self.root).as_posix()
            files = sorted(p.name for p in path.iterdir() if p.is_file())
            entries[key] = {
                **previous.get(
                    key, {"kind": EVALUATION, "model": path.parts[-3], "relation": path.parts[-2]}
                ),
                "files": files,
            }
        for path in sorted(self.root.glob(f"*/*/{MECHANISMS}")):
            key = path.relative_to(self.root).as_posix()
            files = sorted(p.name for p in path.iterdir() if p.is_file())
            entry = self._analysis_entry(path, path.parts[-3], path.parts[-2])
            date = previous.get(key, {}).get("date")
            entries[key] = {
                "files": files,
                **entry,
                "date": date,
                "package_version": previous.get(key, {}).get("package_version", _version()),
            }
        data = {"format": _FORMAT, "entries": dict(sorted(entries.items()))}
        atomic_write_text(self.root / MANIFEST, json.dumps(data, indent=1) + "\n")
        return data

    def _units(self) -> Iterator[Path]:
        for path in sorted(self.root.glob("*/*/*")):
            if (
                path.is_dir()
                and not path.name.startswith(".")
                and ((path / CIRCUIT_FILE).is_file() or (path / META).is_file())
            ):
                yield path

    @staticmethod
    def _names(meta: dict[str, Any]) -> tuple[str, str]:
        model, relation = meta.get("model"), meta.get("relation")
        if not model or not relation:
            raise InputError(
                "only graphs and circuits whose metadata name a 'model' and a 'relation' "
                f"can be stored; got model={model!r}, relation={relation!r}"
            )
        return str(model), str(relation)


def _same_relation(path: Path, relation: Relation) -> bool:
    """Whether the relation file at ``path`` holds ``relation``'s templates, properties and facts."""
    try:
        stored = read_json(path, what="relation file")
    except InputError:
        return False
    return bool(stored == json.loads(json.dumps(relation_to_json(relation))))
