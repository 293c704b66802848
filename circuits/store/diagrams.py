"""Which diagrams the gallery keeps: circuits up to :data:`DIAGRAM_LIMIT`, and no DOT file beside an image.

The gallery holds what a reader looks at. A circuit's diagram is its SVG
(what the report embeds); the DOT text it was drawn from is not kept beside
it (``circuits render`` writes one on demand). A circuit over the limit keeps
its JSON and gets no diagram at all, and the manifest says why
(:func:`diagram_record`).

Diagrams are tied to circuits by name: ``X.svg`` (``.png``, ``.dot``) beside
a circuit file ``X.json`` (``circuit.json`` in a circuit folder, ``core.json``
beside the reuse sweep's ``core.svg``).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.store.circuits import CIRCUIT_FORMAT, circuit_from_dict
from circuits.store.layout import CIRCUIT_FILE

if TYPE_CHECKING:
    from circuits.circuit import Circuit

__all__ = [
    "DIAGRAM_LIMIT",
    "IMAGE_SUFFIXES",
    "circuit_data",
    "diagram_files",
    "diagram_record",
    "diagram_size",
    "drop_dot_files",
    "render_command",
    "tidy_diagrams",
    "too_large",
    "too_large_reason",
]

DIAGRAM_LIMIT = 100
"""The largest circuit the gallery draws: 100 edges (a position-aware circuit: 100 (edge, role) units).

Judged on the committed SmolLM2-135M diagrams rendered at page width: up
to 99 edges (about 30 nodes) each edge can still be followed from its sender
to its receiver; at 134 and 150 edges (40 to 46 nodes) twenty or more edges
run side by side over the whole height into each key/value input, and which
one leaves which node is found only by hovering. A position-aware circuit
counts units, since each unit is an edge of its role's lane (cross-role
reads add dashed edges on top), so it is never drawn when its edges alone
would be over the limit. A larger circuit keeps its JSON; ``circuits render``
draws it on demand.
"""

IMAGE_SUFFIXES = (".svg", ".png")
"""What a reader looks at; a ``.dot`` file beside one of these is removed."""
_DIAGRAM_SUFFIXES = (*IMAGE_SUFFIXES, ".dot")


def diagram_size(circuit: Circuit) -> tuple[int, str]:
    """What :data:`DIAGRAM_LIMIT` counts: ``(n_edges, "edges")``; ``(n_units, "units")`` if position-aware."""
    return (circuit.n_units, "units") if circuit.roles is not None else (circuit.n_edges, "edges")


def too_large(circuit: Circuit) -> bool:
    """Whether the circuit is over :data:`DIAGRAM_LIMIT` (then the gallery draws no diagram of it)."""
    return diagram_size(circuit)[0] > DIAGRAM_LIMIT


def too_large_reason(size: int, counted: str = "edges") -> str:
    """Why a circuit has no diagram.

    >>> too_large_reason(925)
    'too large to draw: 925 edges, over the limit of 100'
    """
    return f"too large to draw: {size:,} {counted}, over the limit of {DIAGRAM_LIMIT}"


def render_command(circuit_file: Path) -> str:
    """The command that draws a stored circuit into the current folder (not into the gallery).

    >>> render_command(Path("graphs/m/r/top-n-signed-1000/circuit.json"))
    'circuits render graphs/m/r/top-n-signed-1000 --out top-n-signed-1000.svg'
    >>> render_command(Path("graphs/m/reuse/core.json"))
    'circuits render graphs/m/reuse/core.json --out core.svg'
    """
    if circuit_file.name == CIRCUIT_FILE:
        target, name = circuit_file.parent, circuit_file.parent.name
    else:
        target, name = circuit_file, circuit_file.stem
    return f"circuits render {shlex.quote(target.as_posix())} --out {shlex.quote(name + '.svg')}"


def diagram_record(circuit: Circuit, folder: Path, stem: str = "circuit") -> dict[str, Any]:
    """The manifest's account of a circuit's diagram: drawn (which files), or why not.

    ``size`` and ``counted`` are what the limit counts; ``limit`` is
    :data:`DIAGRAM_LIMIT`. A circuit within the limit may still have no image
    (Graphviz missing, or only DOT asked for); ``reason`` then says so.
    """
    size, counted = diagram_size(circuit)
    images = sorted(p.name for p in folder.glob(f"{stem}.*") if p.suffix in IMAGE_SUFFIXES)
    record: dict[str, Any] = {"drawn": bool(images), "size": size, "counted": counted, "limit": DIAGRAM_LIMIT}
    if images:
        record["files"] = images
    elif size > DIAGRAM_LIMIT:
        record["reason"] = too_large_reason(size, counted)
    else:
        record["reason"] = "no image was drawn (Graphviz's `dot` was not found, or only DOT was asked for)"
    return record


def diagram_files(circuit_file: Path) -> list[Path]:
    """The diagrams ``X.svg``, ``X.png``, ``X.dot`` stored beside a circuit file ``X.json``."""
    return [circuit_file.with_suffix(s) for s in _DIAGRAM_SUFFIXES if circuit_file.with_suffix(s).is_file()]


def drop_dot_files(folder: Path) -> None:
    """Remove each ``X.dot`` of ``folder`` that lies beside an ``X.svg`` or ``X.png``."""
    for dot in folder.glob("*.dot"):
        if any(dot.with_suffix(s).is_file() for s in IMAGE_SUFFIXES):
            dot.unlink()


def tidy_diagrams(folder: Path) -> dict[str, dict[str, Any]]:
    """Apply the gallery's rules to the files of a folder; returns a :func:`diagram_record` per circuit file.

    Removes ``X.dot`` beside ``X.svg`` or ``X.png``, and every diagram of a
    circuit file ``X.json`` over :data:`DIAGRAM_LIMIT`. A JSON file that is
    not a circuit is left alone; a malformed circuit file is an
    :class:`~circuits.vocab.InputError` naming it.
    """
    drop_dot_files(folder)
    records = {}
    for path in sorted(folder.glob("*.json")):
        diagrams = diagram_files(path)
        if path.name != CIRCUIT_FILE and not diagrams:
            continue
        data = circuit_data(path)
        if data is None:
            continue
        circuit = circuit_from_dict(data, source=str(path))
        if too_large(circuit):
            for diagram in diagrams:
                diagram.unlink()
        records[path.stem] = diagram_record(circuit, folder, path.stem)
    return records


def circuit_data(path: Path) -> dict[str, Any] | None:
    """The node-link data of a circuit file, else ``None`` (another record, or not JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("graph"), dict):
        return None
    if path.name != CIRCUIT_FILE and data["graph"].get("format") != CIRCUIT_FORMAT:
        return None
    return data
