"""The ``graphs/`` store: scored graphs, circuits, their diagrams and a manifest.

Layout (model and relation names are made filesystem-safe)::

    graphs/
      manifest.json                       everything stored, one entry per folder
      <model>/<relation>/scored/          the scored graph (scores.safetensors, graph.json, relation.json)
      <model>/<relation>/<circuit>/       circuit.json (node-link), circuit.svg (up to DIAGRAM_LIMIT)
      <model>/<relation>/mechanisms/      the mechanism analyses' records and figures (JSON, SVG)
      <model>/reuse/                      reuse matrices (CSV, SVG heatmaps), clustering, cross-task F
      <model>/reuse_test/, suppression/   analyses across relations (JSON, SVG)

Each folder is one unit, written whole into a hidden staging folder next to it
and then swapped into place by two renames; a crash at any point leaves either
the old folder or the new one (a folder caught between the two renames is
restored on the next read), never a mix. Files inside are written with
:func:`circuits.io.atomic_write_bytes`. The manifest is rewritten atomically
after each unit; :meth:`Gallery.rebuild_manifest` recreates it from the folders
(:mod:`circuits.store.manifest`). The gallery keeps what a reader looks at:
no DOT file beside an SVG, and no diagram of a circuit over
:data:`~circuits.store.diagrams.DIAGRAM_LIMIT` (:mod:`circuits.store.diagrams`);
:meth:`Gallery.check` lists every way a gallery breaks these rules and
:meth:`Gallery.tidy` applies them to one written before them. Names of files
and folders: :mod:`circuits.store.layout`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.io import atomic_write_bytes, atomic_write_text, read_json, swap_in
from circuits.relations.schema import Relation, relation_to_json
from circuits.store import manifest as _manifest
from circuits.store.circuits import read_circuit, write_circuit
from circuits.store.diagrams import (
    diagram_size,
    drop_dot_files,
    render_command,
    tidy_diagrams,
    too_large,
    too_large_reason,
)
from circuits.store.layout import (
    CIRCUIT_FILE,
    EVALUATION,
    MANIFEST,
    MECHANISMS,
    SCORED,
    circuit_name,
    safe_name,
)
from circuits.store.scored import META, RELATION, load_scored, save_scored
from circuits.vocab import InputError

__all__ = ["CIRCUIT_FILE", "EVALUATION", "IMPLIED", "MANIFEST", "Gallery", "circuit_name", "safe_name"]

log = logging.getLogger(__name__)

IMPLIED = {"positions": "summed"}
"""Metadata that graphs stored before a key existed hold implicitly (scores summed over positions)."""


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
        self._record(target, _manifest.scored_entry(graph, model, rel))
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
        """Store a circuit's JSON (and, through ``draw``, its diagram) as one unit.

        ``draw(folder)`` writes diagram files into the staging folder and
        returns a message (empty when all went well); the store itself never
        draws. It is not called for a circuit over
        :data:`~circuits.store.diagrams.DIAGRAM_LIMIT`, and a DOT file it
        writes beside an SVG or PNG is not kept (the image is what a reader
        looks at; ``circuits render`` writes the DOT on demand). The manifest's
        ``diagram`` says what was drawn, or why nothing was. Returns the folder
        and the message (for a circuit over the limit: why it has no diagram
        and the command that draws it).
        """
        model, rel = self._names(circuit.provenance)
        name = safe_name(name) if name else circuit_name(circuit)
        target = self.folder(model, rel, name)
        message = ""
        if draw is not None and too_large(circuit):
            message = (
                f"{name}: {too_large_reason(*diagram_size(circuit))}, so no diagram is stored; "
                f"draw it with `{render_command(target / CIRCUIT_FILE)}`"
            )

        def write(folder: Path) -> None:
            nonlocal message
            write_circuit(circuit, folder / CIRCUIT_FILE)
            if draw is not None and not too_large(circuit):
                message = draw(folder)
            drop_dot_files(folder)

        self._commit(target, write)
        self._record(target, _manifest.circuit_entry(circuit, model, rel, target))
        return target, message

    def load_circuit(self, model: str, relation: str, name: str) -> Circuit:
        folder = self.folder(model, relation, name)
        self._recover(folder)
        return read_circuit(folder / CIRCUIT_FILE)

    def circuits(self, model: str, name: str | None = None) -> dict[str, Circuit]:
        """Stored circuits of ``model`` keyed by relation (one per relation: ``name``, else the newest)."""
        out: dict[str, tuple[float, Circuit]] = {}
        for path in sorted(self.folder(model).glob(f"*/*/{CIRCUIT_FILE}")):
            if name is not None and path.parent.name != safe_name(name):
                continue
            relation, stamp = path.parent.parent.name, path.stat().st_mtime
            if relation not in out or stamp > out[relation][0]:
                out[relation] = (stamp, read_circuit(path))
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
        """Store a folder of files (``reuse``, ...) under ``<model>/`` (or ``<model>/<relation>/``) as a unit.

        ``after(staging_folder)`` may add more files before the folder is
        swapped in. The diagram rules hold here too: a DOT file beside its SVG
        or PNG is not kept, nor any diagram ``X.*`` of a circuit file
        ``X.json`` over the limit (the manifest's ``diagrams`` says why).
        """
        drawn: dict[str, Any] = {}

        def write(staging: Path) -> None:
            for name, data in files.items():
                blob = data.encode("utf-8") if isinstance(data, str) else data
                atomic_write_bytes(staging / name, blob)
            if after is not None:
                after(staging)
            drawn.update(tidy_diagrams(staging))

        target = self._commit(self.folder(model, relation, folder), write)
        where = {"relation": relation} if relation else {}
        self._record(
            target,
            {"kind": folder, "model": model, **where, **entry, **({"diagrams": drawn} if drawn else {})},
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
        self._record(folder, _manifest.analysis_entry(folder, model, relation))
        return folder

    # ----------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any]:
        """The manifest (:mod:`circuits.store.manifest`); an empty one when none is stored."""
        return _manifest.read_manifest(self.root)

    def _record(self, folder: Path, entry: dict[str, Any]) -> None:
        _manifest.record_entry(self.root, folder, entry)

    def _manifest_lock(self) -> contextlib.AbstractContextManager[None]:
        return _manifest.manifest_lock(self.root)

    def rebuild_manifest(self) -> dict[str, Any]:
        """Recreate the manifest from the stored folders (dates become the files' times)."""
        return _manifest.rebuild_manifest(self.root)

    def check(self) -> list[str]:
        """Every way the folders break the gallery's rules or disagree with the manifest (empty: none).

        See :func:`circuits.store.manifest.check_gallery`.
        """
        return _manifest.check_gallery(self.root)

    def tidy(self) -> dict[str, Any]:
        """Apply the diagram rules to a gallery written before them; returns the updated manifest.

        See :func:`circuits.store.manifest.tidy_gallery`.
        """
        return _manifest.tidy_gallery(self.root)

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
