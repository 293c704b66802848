"""Figures of the report: stored SVG files referred to by relative links, never copied.

Graphviz diagrams and heatmaps carry tooltips (``xlink:title`` on nodes and
edges, ``<title>`` on heatmap cells); they are embedded as
``<object type="image/svg+xml">`` so the browser loads them as documents and
shows those tooltips. Plain figures (matplotlib) are ``<img>``. Each figure
keeps its aspect ratio and is never drawn wider than its natural size (a
little enlarged) nor wider than the page. A circuit stored without a
diagram (over :data:`~circuits.store.diagrams.DIAGRAM_LIMIT`, or drawn
without Graphviz) gets a line that says so, with links that exist: its JSON
and the command that draws it (:func:`missing_diagram_html`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from circuits.report.html import esc, href
from circuits.store.circuits import read_circuit
from circuits.store.diagrams import DIAGRAM_LIMIT, diagram_size, render_command, too_large_reason

__all__ = ["Figure", "figure_html", "missing_diagram_html", "svg_size"]

_UNITS = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "mm": 96 / 25.4, "cm": 96 / 2.54}
_LENGTH = re.compile(r"^\s*([0-9.]+)\s*([a-z]*)\s*$")


@dataclass(frozen=True)
class Figure:
    """One stored SVG figure.

    Attributes
    ----------
    path : Path
        The SVG file.
    title : str
        A short heading.
    caption : str
        Plain text under the figure (escaped when written).
    size : tuple of float or None
        Natural width and height in CSS pixels, when the SVG says.
    interactive : bool
        Embed as an ``<object>`` (tooltips work) rather than an ``<img>``.
    """

    path: Path
    title: str
    caption: str = ""
    size: tuple[float, float] | None = None
    interactive: bool = False


def _length(text: str | None) -> float | None:
    match = _LENGTH.match(text or "")
    if not match or match.group(2) not in _UNITS:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _attr(tag: str, name: str) -> str | None:
    match = re.search(rf'\s{name}\s*=\s*["\']([^"\']*)["\']', tag)
    return match.group(1) if match else None


def svg_size(path: Path) -> tuple[float, float] | None:
    """Natural ``(width, height)`` in CSS pixels from the root ``<svg>`` tag, else from its ``viewBox``.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.svg"
    >>> _ = p.write_text('<?xml version="1.0"?><svg width="30pt" height="15pt" viewBox="0 0 30 15"></svg>')
    >>> svg_size(p)
    (40.0, 20.0)
    """
    with path.open("rb") as handle:
        head = handle.read(16384).decode("utf-8", errors="replace")
    match = re.search(r"<svg\b[^>]*>", head)
    if not match:
        return None
    tag = match.group(0)
    width, height = _length(_attr(tag, "width")), _length(_attr(tag, "height"))
    if width and height:
        return width, height
    box = (_attr(tag, "viewBox") or "").replace(",", " ").split()
    try:
        w, h = float(box[2]), float(box[3])
    except (IndexError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def figure_html(fig: Figure, here: Path, *, heading: str = "h3") -> str:
    """The figure with its heading and caption, linked from a page in folder ``here``.

    A section heading (``"h2"``) goes above the figure's frame, a smaller one inside it.
    """
    link = href(fig.path, here)
    style = ""
    if fig.size:
        width, height = fig.size
        style = f' style="max-width:{width * 1.25:.0f}px;aspect-ratio:{width:.1f}/{height:.1f}"'
    alt = esc(fig.title)
    if fig.interactive:
        body = (
            f'<object type="image/svg+xml" data="{link}"{style} aria-label="{alt}">'
            f'<a href="{link}">{alt}</a></object>'
        )
    else:
        body = f'<img src="{link}" alt="{alt}"{style}>'
    caption = f'{esc(fig.caption)} <a href="{link}">Open the figure alone.</a>'.lstrip()
    title = f"<{heading}>{esc(fig.title)}</{heading}>"
    inner = f"{body}<figcaption>{caption}</figcaption></figure>"
    return f"{title}<figure>{inner}" if heading == "h2" else f"<figure>{title}{inner}"


def missing_diagram_html(
    circuit_file: Path, here: Path, root: Path, *, size: tuple[int, str] | None = None
) -> str:
    """Why a stored circuit has no diagram, a link to its JSON and the command that draws it.

    ``circuit_file`` is the circuit's JSON under the results folder ``root``;
    the command names it as seen from the folder that holds ``root`` (as
    ``graphs/...`` from the repository's root). ``size`` is what the limit
    counts (:func:`~circuits.store.diagrams.diagram_size`), read from the file
    when not given.

    >>> print(missing_diagram_html(Path("/r/graphs/m/rel/c/circuit.json"), Path("/r/graphs/report/m"),
    ...       Path("/r/graphs"), size=(925, "edges")))  # doctest: +NORMALIZE_WHITESPACE
    <p class="muted">Too large to draw: 925 edges, over the limit of 100 edges, beyond which a diagram is
    unreadable; the circuit is in <a href="../../m/rel/c/circuit.json">circuit.json</a>. Draw it with
    <code>circuits render graphs/m/rel/c --out c.svg</code>.</p>
    """
    n, counted = size or diagram_size(read_circuit(circuit_file))
    link = f'<a href="{href(circuit_file, here)}">{esc(circuit_file.name)}</a>'
    try:
        shown = Path(root.name) / circuit_file.relative_to(root)
    except ValueError:  # not under root: name it as it is
        shown = circuit_file
    command = f"<code>{esc(render_command(shown))}</code>"
    if n > DIAGRAM_LIMIT:
        why = too_large_reason(n, counted)
        lead = f"{esc(why[0].upper() + why[1:])} {counted}, beyond which a diagram is unreadable"
    else:
        lead = f"No diagram stored ({n:,} {counted}; Graphviz may have been missing)"
    return f'<p class="muted">{lead}; the circuit is in {link}. Draw it with {command}.</p>'
