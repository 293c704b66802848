"""Figures of the report: stored SVG files referred to by relative links, never copied.

Graphviz diagrams and heatmaps carry tooltips (``xlink:title`` on nodes and
edges, ``<title>`` on heatmap cells); they are embedded as
``<object type="image/svg+xml">`` so the browser loads them as documents and
shows those tooltips. Plain figures (matplotlib) are ``<img>``. Each figure
keeps its aspect ratio and is never drawn wider than its natural size (a
little enlarged) nor wider than the page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from circuits.report.html import esc, href

__all__ = ["Figure", "figure_html", "svg_size"]

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
