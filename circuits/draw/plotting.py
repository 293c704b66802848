"""Shared matplotlib plumbing of the figures (torch-free): the backend, colours, bands, SVG text.

Every figure module draws with :func:`pyplot` (the Agg backend, stable SVG
ids, text kept as text) and returns :func:`to_svg` of its figure, so the same
record always gives the same file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

__all__ = ["COLOURS", "CYCLE", "band", "pyplot", "series", "title", "to_svg"]

COLOURS = {
    "subject": "#1b9e77",
    "relation": "#d95f02",
    "last": "#7570b3",
    "first": "#888888",
    "demo": "#b8a27a",
}
CYCLE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, with stable SVG ids and text kept as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "circuits"  # stable ids: the same figure gives the same file
    plt.rcParams["svg.fonttype"] = "none"
    return plt


def series(points: Sequence[dict[str, Any] | None]) -> tuple[list[float], list[float], list[float]]:
    """Values, lows and highs of stored intervals (``{"value", "low", "high"}``); missing ones are NaN."""
    nan = float("nan")
    value = [nan if p is None or p["value"] is None else p["value"] for p in points]
    low = [nan if p is None or p["low"] is None else p["low"] for p in points]
    high = [nan if p is None or p["high"] is None else p["high"] for p in points]
    return value, low, high


def band(
    ax: Any, x: Sequence[float], points: Sequence[dict[str, Any]], label: str, colour: str, style: str = "-"
) -> None:
    """A line of interval midpoints with its shaded 95% band."""
    value, low, high = series(points)
    ax.plot(x, value, style, color=colour, label=label, lw=1.8, marker="o", ms=3)
    ax.fill_between(x, low, high, color=colour, alpha=0.18, lw=0)


def to_svg(fig: Any) -> str:
    """The figure as a self-contained SVG document (no date: the same figure gives the same text)."""
    plt = pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buffer.getvalue()


def title(record: dict[str, Any], what: str) -> str:
    """``"<what>: <relation> (<model>, <n> prompts)"`` from an analysis record."""
    return f"{what}: {record.get('relation') or 'prompts'} ({record['model']}, {record['n_prompts']} prompts)"
