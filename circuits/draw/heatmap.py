"""Reuse matrices as small self-contained SVG heatmaps (no plotting library), with a dendrogram.

Every name, title and tooltip is written through :func:`circuits.draw.quote.markup`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from circuits.draw.quote import markup

__all__ = ["heatmap_svg"]


def _colour(value: float, low: float) -> str:
    """White to blue for ``[0, 1]``; red below 0 when the scale starts at -1; grey for NaN."""
    if math.isnan(value):
        return "#dddddd"
    v = max(low, min(1.0, value))
    if v >= 0:
        r, g, b = (int(255 + (t - 255) * v) for t in (33, 102, 172))
    else:
        r, g, b = (int(255 + (t - 255) * -v) for t in (178, 24, 43))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_svg(matrix: Any, *, title: str | None = None, clustering: Any = None, cell: int = 34) -> str:
    """An SVG heatmap of a :class:`~circuits.compare.ReuseMatrix`, rows ordered by ``clustering``.

    With a clustering, its dendrogram is drawn above the columns. A cell's
    tooltip is ``matrix.extra["tooltips"][i][j]`` when the matrix carries one
    (e.g. the interval, ceilings and null of a similarity), else its value.

    >>> from circuits.compare import ReuseMatrix
    >>> svg = heatmap_svg(ReuseMatrix(["a", "b"], np.array([[1, .5], [.5, 1]]), "edge_jaccard"))
    >>> svg.startswith("<svg") and svg.count("<rect") == 5
    True
    """
    names = list(matrix.names)
    values = np.asarray(matrix.values, dtype=float)
    tips = (getattr(matrix, "extra", None) or {}).get("tooltips")
    dendro = None
    if clustering is not None and clustering.linkage:
        from scipy.cluster.hierarchy import dendrogram

        dendro = dendrogram(np.asarray(clustering.linkage), no_plot=True, labels=names)
        order = [names.index(n) for n in dendro["ivl"]]
    else:
        order = list(range(len(names)))
    low = -1.0 if np.nanmin(values, initial=0.0) < 0 else 0.0
    label_w = 8 + 7 * max((len(n) for n in names), default=1)
    tree_h = 70 if dendro else 0
    top = 30 + tree_h + label_w
    width, height = label_w + cell * len(names) + 20, top + cell * len(names) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="8" y="18" font-size="13">{markup(title or matrix.metric)}</text>',
    ]
    for col, j in enumerate(order):
        x = label_w + col * cell + cell / 2
        out.append(
            f'<text transform="translate({x + 4:.1f},{top - 4}) rotate(-90)">{markup(names[j])}</text>'
        )
    for row, i in enumerate(order):
        y = top + row * cell
        out.append(
            f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{markup(names[i])}</text>'
        )
        for col, j in enumerate(order):
            v = values[i, j]
            x = label_w + col * cell
            text = "" if math.isnan(v) else f"{v:.2f}"
            tip = tips[i][j] if tips else (text or "n/a")
            ink = "white" if not math.isnan(v) and abs(v) > 0.6 else "black"
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_colour(v, low)}" '
                f'stroke="white"><title>{markup(names[i])} / {markup(names[j])}: {markup(tip)}</title></rect>'
                f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                f'font-size="9" fill="{ink}">{text}</text>'
            )
    if dendro:
        peak = max((max(d) for d in dendro["dcoord"]), default=1.0) or 1.0
        base = 30 + tree_h
        for xs, ys in zip(dendro["icoord"], dendro["dcoord"], strict=True):
            points = " ".join(
                f"{label_w + (x - 5) / 10 * cell + cell / 2:.1f},{base - y / peak * (tree_h - 8):.1f}"
                for x, y in zip(xs, ys, strict=True)
            )
            out.append(f'<polyline points="{points}" fill="none" stroke="#444444"/>')
    out.append(
        f'<text x="8" y="{height - 14}" font-size="9" fill="#666666">'
        f"{markup(matrix.metric)}; scale {'-1 (red) .. ' if low < 0 else ''}0 (white) .. 1 (blue)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
