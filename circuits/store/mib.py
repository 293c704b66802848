"""Graph files of the EAP-IG library and the MIB circuit track: export and import (torch-free).

The EAP-IG library (``hannamw/EAP-IG``, ``eap/graph.py``) and the circuit
localization track of the MIB benchmark, which evaluates graphs with it, store
a graph as JSON (``Graph.to_json`` / ``from_json``) or as a torch file
(``Graph.to_pt`` / ``from_pt``). This module holds the jobs behind
``circuits export`` and ``circuits import`` (:func:`export_mib`,
:func:`import_mib`); the rest is in:

- :mod:`circuits.store.mib_format`: the format itself: node and edge names,
  the order of the ungrouped graph, ``cfg``, ``d_model``, :data:`MIB_SIZES`
  and the checks with their error messages;
- :mod:`circuits.store.mib_kv`: grouped-query attention (key/value scores
  repeated per query head on export, folded back on import);
- :mod:`circuits.store.mib_graph`: :class:`MibGraph`, a file's content, built
  from our scored graphs and circuits and read back into them (:class:`MibImport`);
- :mod:`circuits.store.mib_json` and :mod:`circuits.store.mib_pt`: the JSON
  and the torch form (the latter is the only part that needs torch).

Scores and sign
---------------
Scores are written unchanged, in this engine's convention: the estimated
change of the metric when the edge alone carries the corrupted value (with
the logit difference, relied-on edges are negative). EAP-IG's own scores have
the same definition but MIB attributes a *loss* (the negated logit
difference), so its relied-on edges are positive. Selecting by ``|score|``
(MIB's default, ``absolute=True``) is unaffected; a file evaluated with
``absolute=False`` would need the sign flipped.

Our own metadata
----------------
Unless ``provenance=False``, a file also carries the top-level key
``"circuit_graph_engine"`` (their loaders ignore unknown top-level keys): the
scored graph's metadata and shape and, for a circuit, its name, extraction
method, parameters, faithfulness and provenance, so a file this engine wrote
reads back as the same scored graph and circuit. A scored graph's per-pair
scores (``ScoredGraph.pair_scores``) have no place in the format and are not
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.circuit import Circuit
from circuits.graph import ScoredGraph
from circuits.store.circuits import read_circuit, write_circuit
from circuits.store.gallery import CIRCUIT_FILE, safe_name
from circuits.store.mib_format import FORMATS, MIB_SIZES, mib_size, size_label
from circuits.store.mib_graph import MibGraph
from circuits.store.mib_json import read_mib_json, write_mib_json
from circuits.store.scored import META, load_scored, save_scored, scored_dir
from circuits.vocab import InputError

__all__ = ["IMPORTED_CIRCUIT", "export_mib", "import_mib", "load_graph_or_circuit"]

IMPORTED_CIRCUIT = "imported.circuit.json"
_SUFFIX = {"mib-json": "json", "mib-pt": "pt"}


# ---------------------------------------------------------------- the jobs behind the commands
def load_graph_or_circuit(path: str | Path) -> ScoredGraph | Circuit:
    """A scored graph (its directory or a store relation folder) or a circuit (its JSON or a store folder).

    Resolves circuits as :func:`circuits.jobs.load_circuit` does (that
    module imports torch, this one must not).
    """
    path = Path(path)
    if path.is_dir():
        if (path / META).is_file() or (path / "scored" / META).is_file():
            return load_scored(scored_dir(path))
        if (path / CIRCUIT_FILE).is_file():
            return read_circuit(path / CIRCUIT_FILE)
        raise InputError(
            f"{path}: neither a scored-graph directory ({META}), a store relation folder "
            f"(scored/{META}) nor a store circuit folder ({CIRCUIT_FILE})"
        )
    if path.is_file():
        return read_circuit(path)
    raise InputError(
        f"{path}: no such file or folder; give a scored-graph directory, a store relation "
        "folder, a circuit JSON file or a store circuit folder"
    )


def _write(path: Path, mib: MibGraph, fmt: str) -> None:
    if fmt == "mib-json":
        write_mib_json(path, mib)
    else:
        from circuits.store.mib_pt import write_mib_pt

        write_mib_pt(path, mib)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown graph file format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def export_mib(
    source: str | Path,
    *,
    out: str | Path,
    fmt: str = "mib-json",
    sizes: str | None = None,
    by: str | None = None,
    scored: str | Path | None = None,
    d_model: int | None = None,
    stem: str | None = None,
    provenance: bool = True,
) -> list[dict[str, Any]]:
    """Write a stored scored graph or circuit as EAP-IG graph files (``circuits export``).

    Parameters
    ----------
    source : path
        A scored-graph directory, a store relation folder, a circuit JSON
        file or a store circuit folder (:func:`load_graph_or_circuit`).
    out : path
        The file to write; with ``sizes`` the folder the files go into.
    fmt : {"mib-json", "mib-pt"}
        EAP-IG's JSON or torch form.
    sizes : {"mib"}, optional
        Write one file per :data:`MIB_SIZES` entry, ``<stem>_<percent>.<ext>``,
        each with the top edges of the ungrouped graph in the graph (needs a
        scored graph).
    by : {"abs", "signed"}, optional
        How ``sizes`` ranks edges (default ``abs``, as MIB does).
    scored : path, optional
        With a circuit: a scored graph whose scores the other edges carry.
    d_model : int, optional
        For ``cfg`` (default: from the metadata, else 0).
    stem : str, optional
        With ``sizes``: the file name stem (default: the relation, else the source's name).
    provenance : bool
        Add this engine's metadata block.

    Returns
    -------
    list of dict
        One row per file: ``path``, ``format``, ``n_edges`` (ungrouped),
        ``in_graph`` and ``fraction`` (with ``sizes``).
    """
    fmt = _check_format(fmt)
    thing = load_graph_or_circuit(source)
    if sizes is None and by is not None:
        raise InputError("--by ranks edges for --sizes; give --sizes mib or leave --by out")
    if sizes is not None and sizes != "mib":
        raise InputError(f"unknown circuit sizes {sizes!r}; valid: mib")
    other = load_scored(scored_dir(scored)) if scored is not None else None
    if other is not None and not isinstance(thing, Circuit):
        raise InputError(f"{source}: is a scored graph; --scored adds the other edges' scores to a circuit")
    mib = MibGraph.from_ours(thing, scored=other, d_model=d_model, provenance=provenance)
    out = Path(out)
    if sizes is None:
        _write(out, mib, fmt)
        return [
            {"path": str(out), "format": fmt, "n_edges": mib.n_edges, "in_graph": int(mib.in_graph.sum())}
        ]
    if not isinstance(thing, ScoredGraph):
        raise InputError(f"{source}: is a circuit; --sizes chooses edges from a scored graph")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; with --sizes, --out names the folder the ten files go into")
    name = stem or safe_name(str(thing.metadata.get("relation") or Path(source).name))
    rows = []
    for fraction in MIB_SIZES:
        n = mib_size(mib.n_edges, fraction)
        path = out / f"{name}_{size_label(fraction)}.{_SUFFIX[fmt]}"
        _write(path, mib.top(n, by=by or "abs", fraction=fraction), fmt)
        rows.append(
            {"path": str(path), "format": fmt, "n_edges": mib.n_edges, "in_graph": n, "fraction": fraction}
        )
    return rows


def import_mib(
    path: str | Path, *, out: str | Path, kv_heads: int | None = None, fmt: str | None = None
) -> dict[str, Any]:
    """Read an EAP-IG graph file into a scored-graph directory (``circuits import``).

    Writes ``out`` with :func:`circuits.store.save_scored`, the metadata
    recording ``imported_from`` (the file and its format), and, when the file
    marks edges ``in_graph``, the circuit of exactly those edges as
    ``out/imported.circuit.json``. ``fmt`` defaults to the suffix (``.json``
    or ``.pt``). Returns what was written.
    """
    path = Path(path)
    if fmt is None:
        by_suffix = {".json": "mib-json", ".pt": "mib-pt"}
        if path.suffix not in by_suffix:
            raise InputError(
                f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
                "name it .json or .pt, or give --format mib-json|mib-pt"
            )
        fmt = by_suffix[path.suffix]
    fmt = _check_format(fmt)
    if fmt == "mib-json":
        result = read_mib_json(path, kv_heads=kv_heads)
    else:
        from circuits.store.mib_pt import read_mib_pt

        result = read_mib_pt(path, kv_heads=kv_heads)
    graph = result.graph
    graph.metadata = {**graph.metadata, "imported_from": {"path": str(path), "format": fmt}}
    out = Path(out)
    save_scored(out, graph)
    report: dict[str, Any] = {
        "scored": str(out),
        "format": fmt,
        "n_edges": graph.n_edges,
        "shape": graph.shape.as_dict(),
        "ours": result.ours,
        "circuit": None,
        "circuit_edges": 0,
    }
    if result.circuit is not None:
        target = write_circuit(result.circuit, out / IMPORTED_CIRCUIT)
        report.update(circuit=str(target), circuit_edges=result.circuit.n_edges)
    return report
