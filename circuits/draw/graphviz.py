"""Writing DOT files and running Graphviz's ``dot`` for SVG or PNG, atomically.

Without the ``dot`` executable the DOT file is still written and the result's
message says how to install Graphviz (pygraphviz is never needed).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.io import atomic_write_bytes, atomic_write_text
from circuits.vocab import CircuitsError, InputError

__all__ = ["FORMATS", "GRAPHVIZ_HINT", "Rendered", "render"]

log = logging.getLogger(__name__)

FORMATS = ("svg", "png", "dot")
GRAPHVIZ_HINT = (
    "Graphviz's `dot` executable was not found, so only the DOT file was written; install "
    "Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`, macOS: `brew install graphviz`, "
    "conda: `conda install -c conda-forge graphviz`) and run `circuits render` again"
)


@dataclass
class Rendered:
    """What :func:`render` wrote, and the formats it could not produce (with why)."""

    written: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    message: str = ""


def render(graph: Any, path: str | Path, *, formats: tuple[str, ...] = ("svg",)) -> Rendered:
    """Write ``path.dot`` and, with Graphviz's ``dot`` on the PATH, ``path.svg`` / ``path.png``.

    Parameters
    ----------
    graph : pydot.Dot
        What to draw, e.g. :func:`circuits.circuit_dot` of a circuit (anything
        with a ``to_string()`` returning DOT text).
    path : str or Path
        Where to write, without extension; a ``.dot``, ``.svg`` or ``.png``
        suffix is replaced. Missing parent folders are created.
    formats : tuple of {"svg", "png", "dot"}
        Image formats to produce besides the DOT file, which is always written.

    Returns
    -------
    Rendered
        ``written``: the files written (the DOT file first); ``missing``: the
        image formats that could not be produced because Graphviz's ``dot`` is
        not installed, and then ``message`` says how to install it (no error
        is raised). Files are written atomically.

    Raises
    ------
    InputError
        An unknown format.
    CircuitsError
        ``dot`` failed on the DOT text.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from circuits import ScoreSettings, circuit_dot, extract, load_model, render, score_relation
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, _ = score_relation(load_model("tiny-gpt2"), "country_capital_city", settings, progress=False)
    >>> folder = Path(tempfile.mkdtemp())
    >>> dot = circuit_dot(extract(graph, "top-n", size=20))
    >>> result = render(dot, folder / "circuit.svg", formats=("dot",))
    >>> [p.name for p in result.written], result.missing
    (['circuit.dot'], [])
    >>> (folder / "circuit.dot").read_text().startswith("digraph G {")
    True
    """
    for fmt in formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    stem = Path(path)
    if stem.suffix in (".dot", ".svg", ".png"):
        stem = stem.with_suffix("")
    text = graph.to_string()
    out = Rendered()
    atomic_write_text(_at(stem, "dot"), text)
    out.written.append(_at(stem, "dot"))
    images = [f for f in dict.fromkeys(formats) if f != "dot"]
    exe = shutil.which("dot")
    if images and exe is None:
        out.missing, out.message = images, GRAPHVIZ_HINT
        log.warning("%s", GRAPHVIZ_HINT)
        return out
    for fmt in images:
        done = subprocess.run([exe, f"-T{fmt}"], input=text.encode(), capture_output=True, check=False)  # type: ignore[list-item]
        if done.returncode != 0:
            raise CircuitsError(
                f"dot -T{fmt} failed on {_at(stem, 'dot')}: "
                f"{done.stderr.decode(errors='replace').strip()[:500]}"
            )
        atomic_write_bytes(_at(stem, fmt), done.stdout)
        out.written.append(_at(stem, fmt))
    return out


def _at(stem: Path, ext: str) -> Path:
    return stem.parent / f"{stem.name}.{ext}"
