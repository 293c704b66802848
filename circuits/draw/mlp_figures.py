"""The figure of the MLP decomposition, drawn with matplotlib from its record (torch-free).

:func:`mlp_figure` takes the record of :mod:`circuits.mechanisms.mlp_parts`
(as a run returns it or ``mlp.json`` read back; either way the components
its file lists, so a redraw is the same figure) and returns an SVG document:

- two heatmaps sharing their axes, decomposed MLP layer × upstream component:
  the mean gain (``< 0`` erases what the component wrote, ``> 0`` amplifies
  it) and the mean push toward the answer's centred logit. The columns are the
  subject-moving heads (labels in colour) and the components with the largest
  push anywhere, in forward order; a blank cell is a component the MLP does
  not read;
- bars of the push of the components of the last decomposed MLP, largest
  ``|push|`` first, with their 95% bootstrap intervals and gains.
"""

from __future__ import annotations

import math
from typing import Any

from circuits.draw.figures import stored
from circuits.draw.plotting import pyplot, series, to_svg
from circuits.records.mlp import ComponentEffect, MLPRecord

__all__ = ["mlp_figure"]

MOVING_COLOUR = "#d95f02"


def _order(name: str) -> tuple[int, int, int]:
    """Forward order: input, then per layer its heads and its MLP, then the bias."""
    if name == "input":
        return (-1, 0, 0)
    if name == "bias":
        return (10**6, 0, 0)
    if name.startswith("m"):
        return (int(name[1:]), 1, 0)
    layer, head = name[1:].split(".h")
    return (int(layer), 0, int(head))


def _columns(record: MLPRecord, listed: list[list[ComponentEffect]], limit: int) -> list[str]:
    """The moving heads, then the components with the largest |push| in any layer, in forward order."""
    moving = record.top_moving()
    strongest: dict[str, float] = {}
    for components in listed:
        for c in components:
            value = c.push.value
            if math.isfinite(value):
                strongest[c.name] = max(strongest.get(c.name, 0.0), abs(value))
    chosen = list(moving)
    for name in sorted(strongest, key=lambda n: -strongest[n]):
        if len(chosen) >= limit:
            break
        if name not in chosen:
            chosen.append(name)
    return sorted(chosen, key=_order)


def _matrix(listed: list[list[ComponentEffect]], columns: list[str], key: str) -> list[list[float]]:
    nan = float("nan")
    rows = []
    for components in listed:
        values = {c.name: getattr(c, key).value for c in components}
        rows.append([values.get(n, nan) for n in columns])
    return rows


def _limit(matrix: list[list[float]]) -> float:
    """A symmetric colour limit: the 98th percentile of |value| (one outlier does not wash out the rest)."""
    values = sorted(abs(v) for row in matrix for v in row if not math.isnan(v))
    if not values:
        return 1.0
    return max(values[min(len(values) - 1, int(0.98 * len(values)))], 1e-9)


def _heatmap(
    fig: Any,
    ax: Any,
    matrix: list[list[float]],
    columns: list[str],
    layers: list[int],
    moving: set[str],
    label: str,
) -> None:
    import numpy as np

    data = np.ma.masked_invalid(np.asarray(matrix, dtype=float))
    limit = _limit(matrix)
    cmap = pyplot().get_cmap("RdBu_r").with_extremes(bad="#eeeeee")
    image = ax.imshow(data, cmap=cmap, vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=90, fontsize=7)
    for tick, name in zip(ax.get_xticklabels(), columns, strict=True):
        if name in moving:
            tick.set_color(MOVING_COLOUR)
            tick.set_fontweight("bold")
    step = max(1, math.ceil(len(layers) / 16))
    ax.set_yticks(range(0, len(layers), step))
    ax.set_yticklabels([f"m{layers[i]}" for i in range(0, len(layers), step)], fontsize=7)
    ax.set_xlabel("upstream component (orange: subject-moving heads)", fontsize=8)
    bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=8)


def mlp_figure(record: MLPRecord, *, columns: int = 18, bars: int = 12) -> str:
    """Gain and push heatmaps (MLP layer × upstream component) and the last MLP's push bars.

    >>> from circuits.records.base import Provenance
    >>> from circuits.records.mlp import LayerDecomposition, MovingHead
    >>> from circuits.uncertainty import Interval
    >>> iv = Interval(-0.5, -0.7, -0.3)
    >>> parts = [ComponentEffect("input", iv, iv, 1.0),
    ...          ComponentEffect("a0.h1", iv, Interval(0.2, 0.1, 0.3), 1.0)]
    >>> layer = LayerDecomposition.of(1, parts, iv, 0.0, 0.0)
    >>> record = MLPRecord(Provenance("m", "r", n_prompts=2), 2, "last", [layer],
    ...     [MovingHead("a0.h1", iv)], [], n_moving=1)
    >>> svg = mlp_figure(record)
    >>> svg.lstrip().startswith("<?xml") and "a0.h1" in svg
    True
    """
    plt = pyplot()
    layers = [d.layer for d in record.layers]
    listed = [record.listed_components(d) for d in record.layers]
    chosen = _columns(record, listed, columns)
    moving = set(record.top_moving())
    height = min(7.0, max(2.4, 1.2 + 0.2 * len(layers)))  # heatmap rows
    fig = plt.figure(figsize=(12, height + 4.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[height + 1.3, 3.0])  # + the rotated component labels
    gain_ax = fig.add_subplot(grid[0, 0])
    push_ax = fig.add_subplot(grid[0, 1], sharey=gain_ax)
    _heatmap(
        fig,
        gain_ax,
        _matrix(listed, chosen, "gain"),
        chosen,
        layers,
        moving,
        "mean gain ⟨MLP_c, x_c⟩ / ‖x_c‖²",
    )
    _heatmap(
        fig,
        push_ax,
        _matrix(listed, chosen, "push"),
        chosen,
        layers,
        moving,
        "mean push (answer's centred logit)",
    )
    gain_ax.set_ylabel("decomposed MLP", fontsize=8)
    gain_ax.set_title("gain: < 0 erases, > 0 amplifies what c wrote", fontsize=9)
    push_ax.set_title("push: the part's direct effect on the answer", fontsize=9)

    bar_ax = fig.add_subplot(grid[1, :])
    last = record.layers[-1]

    def size(c: ComponentEffect) -> float:
        return abs(c.push.value) if math.isfinite(c.push.value) else 0.0

    parts = sorted(listed[-1], key=lambda c: -size(c))[:bars]
    names = [c.name for c in parts]
    value, low, high = series(stored([c.push for c in parts]))
    errors = [
        [max(v - lo, 0.0) for v, lo in zip(value, low, strict=True)],
        [max(hi - v, 0.0) for v, hi in zip(value, high, strict=True)],
    ]
    colours = ["#b2182b" if v > 0 else "#2166ac" for v in value]
    x = list(range(len(parts)))
    bar_ax.bar(x, value, color=colours, yerr=errors, ecolor="#444444", error_kw={"lw": 0.8, "capsize": 2})
    for i, c in enumerate(parts):
        gain = c.gain.value
        text = "gain —" if not math.isfinite(gain) else f"gain {gain:+.2f}"
        bar_ax.annotate(
            text,
            (i, 0),
            xytext=(0, -3 if value[i] >= 0 else 3),
            textcoords="offset points",
            ha="center",
            va="top" if value[i] >= 0 else "bottom",
            fontsize=6.5,
            color="#333333",
        )
    bar_ax.set_xticks(x)
    bar_ax.set_xticklabels(names, fontsize=8)
    for tick, name in zip(bar_ax.get_xticklabels(), names, strict=True):
        if name in moving:
            tick.set_color(MOVING_COLOUR)
            tick.set_fontweight("bold")
    bar_ax.axhline(0.0, color="black", lw=0.8)
    total = last.total_push.value
    bar_ax.set_ylabel("push toward the answer\n(centred logit)", fontsize=8)
    bar_ax.set_title(
        f"parts of MLP {last.layer} with the largest |push| (whole MLP: "
        f"{'—' if not math.isfinite(total) else f'{total:+.2f}'}); bars: 95% bootstrap intervals",
        fontsize=9,
    )
    bar_ax.grid(alpha=0.25, axis="y")
    where = "the last subject token" if record.position == "subject" else "the last position"
    fig.suptitle(record.provenance.title(f"MLP decomposition at {where}"), fontsize=10)
    return to_svg(fig)
