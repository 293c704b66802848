"""Replacing a scored-graph folder without mixing two runs (torch-free).

``circuits score --out DIR`` over a folder that already holds a scored graph
would otherwise leave the old run's circuits and diagrams beside the new
graph, where they look as if they came from it. :func:`check_scored_out`
refuses such a folder before any work unless asked to replace it, and
:func:`remove_old_run` deletes what belonged to the old run once the new graph
is safely written (each new file is renamed into place, so a failed run leaves
the old one whole).
"""

from __future__ import annotations

import logging
from pathlib import Path

from circuits.io import read_json
from circuits.vocab import InputError

__all__ = ["RUN_PATTERNS", "check_scored_out", "old_run_files", "remove_old_run"]

log = logging.getLogger(__name__)

# what `circuits score`, `extract` and `render` write into a scored-graph folder
RUN_PATTERNS = (
    "graph.json",
    "scores.safetensors",
    "relation.json",
    "*.circuit.json",
    "*.circuit.dot",
    "*.circuit.svg",
    "*.circuit.png",
    "*.circuit-vs-*.dot",
    "*.circuit-vs-*.svg",
    "*.circuit-vs-*.png",
)


def old_run_files(directory: str | Path) -> list[Path]:
    """The files of a scored run in ``directory`` (graph, scores, relation, circuits and their diagrams)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = {p for pattern in RUN_PATTERNS for p in directory.glob(pattern) if p.is_file()}
    return sorted(found)


def check_scored_out(directory: str | Path, *, force: bool = False) -> list[Path]:
    """Refuse, before any work, to write a scored graph over another run unless ``force``.

    Parameters
    ----------
    directory : str or Path
        Where the scored graph is to go.
    force : bool
        Replace what is there: the old run's files (:data:`RUN_PATTERNS`) are
        returned, for :func:`remove_old_run` once the new graph is written;
        other files are never touched.

    Returns
    -------
    list of Path
        The old run's files (empty for a new or empty folder).

    Raises
    ------
    InputError
        ``directory`` holds a scored graph, or other files, and ``force`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_scored_out(folder / "new")
    []
    >>> (folder / "graph.json").write_text('{"relation": "r", "model": "m"}') and None
    >>> (folder / "top-n-signed-5.circuit.json").write_text("{}") and None
    >>> check_scored_out(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: ...: already holds a scored graph (relation r, model m) and 1 circuit(s) ...
    >>> [p.name for p in check_scored_out(folder, force=True)]
    ['graph.json', 'top-n-signed-5.circuit.json']
    """
    directory = Path(directory)
    if not directory.is_dir() or not any(directory.iterdir()):
        return []
    old = old_run_files(directory)
    if force:
        return old
    meta_path = directory / "graph.json"
    if meta_path.is_file():
        try:
            meta = read_json(meta_path, what="scored-graph metadata")
            about = f"relation {meta.get('relation', '?')}, model {meta.get('model', '?')}"
        except (InputError, AttributeError):
            about = "unreadable metadata"
        n_circuits = sum(p.name.endswith(".circuit.json") for p in old)
        raise InputError(
            f"{directory}: already holds a scored graph ({about}) and {n_circuits} circuit(s) "
            "extracted from it; pass --force to replace them (the old run's files are removed "
            "once the new graph is written) or choose another --out"
        )
    raise InputError(
        f"{directory}: is not empty and holds no scored graph; choose a new or empty folder, "
        "or pass --force to write beside what is there"
    )


def remove_old_run(old: list[Path], written: list[Path]) -> list[Path]:
    """Delete the old run's files that the new run did not just write; returns those removed."""
    keep = {p.resolve() for p in written}
    removed = []
    for path in old:
        if path.resolve() not in keep and path.is_file():
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d files of the replaced run: %s", len(removed), ", ".join(p.name for p in removed))
    return removed
