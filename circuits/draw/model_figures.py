"""Figures of a comparison across models (torch-free), from :func:`circuits.compare.models.compare_models`.

- :func:`curves_figure`: each relation's faithfulness curve, one line per model;
- :func:`depth_figure`: each relation's circuit depth profile, one line per model;
- :func:`knockout_figure`: attention knockout's effect against relative depth,
  per source role, one line per model (the first relations);
- :func:`reuse_figure`: the two models' reuse matrices side by side, and
  their off-diagonal entries against each other.
"""

from __future__ import annotations

import math
from typing import Any

from circuits.draw.plotting import COLOURS, CYCLE, pyplot, to_svg

__all__ = ["curves_figure", "depth_figure", "knockout_figure", "reuse_figure"]

_STYLES = ("-", "--", ":", "-.")


def _grid(n: int, width: float = 3.2, height: float = 2.6) -> tuple[Any, list[Any]]:
    plt = pyplot()
    cols = min(3, max(1, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n]


def curves_figure(comparison: dict[str, Any]) -> str:
    """Faithfulness against the share of edges kept (log axis), per relation, a line per model."""
    rows = comparison["relations"]
    fig, axes = _grid(len(rows))
    for ax, row in zip(axes, rows, strict=True):
        for i, (model, data) in enumerate(row["models"].items()):
            if data.get("fractions") and data.get("curve"):
                ax.plot(
                    data["fractions"],
                    data["curve"],
                    marker="o",
                    ms=3,
                    lw=1.6,
                    color=CYCLE[i % len(CYCLE)],
                    label=f"{model} ({data['n_edges']} edges at F={comparison['target']})",
                )
        ax.axhline(comparison["target"], color="#999999", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(row["relation"], fontsize=9)
        ax.set_xlabel("share of edges kept (by signed score)", fontsize=8)
        ax.set_ylabel("faithfulness (held-out)", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle("Faithfulness curves across models", fontsize=10)
    fig.tight_layout()
    return to_svg(fig)


def depth_figure(comparison: dict[str, Any]) -> str:
    """Share of each circuit's |score| per tenth of relative depth, per relation, a line per model."""
    rows = comparison["relations"]
    bins = int(comparison["depth_bins"])
    centres = [(i + 0.5) / bins for i in range(bins)]
    fig, axes = _grid(len(rows))
    for ax, row in zip(axes, rows, strict=True):
        for i, (model, data) in enumerate(row["models"].items()):
            ax.plot(
                centres,
                data["depth"],
                marker="o",
                ms=3,
                lw=1.6,
                color=CYCLE[i % len(CYCLE)],
                label=f"{model} ({data['n_layers']} layers)",
            )
        overlap = ", ".join(f"{v:.2f}" for v in row["depth_overlap"].values())
        ax.set_title(f"{row['relation']} (overlap {overlap})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("relative depth (0 input, 1 logits)", fontsize=8)
        ax.set_ylabel("share of circuit |score|", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Where each circuit's weight lies, by relative depth", fontsize=10)
    fig.tight_layout()
    return to_svg(fig)


def knockout_figure(comparison: dict[str, Any]) -> str:
    """Knockout effect (relative change of p(answer)) against relative depth: a panel per relation."""
    rows = [r for r in comparison["relations"] if all("knockout" in d for d in r["models"].values())]
    fig, axes = _grid(max(1, len(rows)))
    for ax, row in zip(axes, rows, strict=False):
        for i, (model, data) in enumerate(row["models"].items()):
            for source, curve in data["knockout"].items():
                ax.plot(
                    curve["starts"],
                    curve["curve"],
                    _STYLES[i % len(_STYLES)],
                    lw=1.4,
                    color=COLOURS.get(source, "#444444"),
                    label=f"{model}: {source}",
                )
        ax.axhline(0, color="#999999", lw=0.6)
        ax.set_title(row["relation"], fontsize=9)
        ax.set_xlabel("window start (relative depth)", fontsize=8)
        ax.set_ylabel("knockout effect on p(answer)", fontsize=8)
        ax.legend(fontsize=5)
    if not rows:
        axes[0].text(0.5, 0.5, "no knockout records for every model", ha="center", va="center")
        axes[0].axis("off")
    fig.suptitle("Attention knockout from the last position, across models", fontsize=10)
    fig.tight_layout()
    return to_svg(fig)


def reuse_figure(comparison: dict[str, Any]) -> str:
    """The models' reuse matrices (edge Jaccard) side by side, and their entries against each other."""
    plt = pyplot()
    reuse = comparison["reuse"]
    names = reuse["relations"]
    models = comparison["models"][:2]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, model, matrix in zip(axes[:2], models, reuse["matrices"], strict=True):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
        ax.set_title(f"{model}: edge Jaccard", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    a, b = reuse["matrices"]
    xs = [a[i][j] for i in range(len(names)) for j in range(i + 1, len(names))]
    ys = [b[i][j] for i in range(len(names)) for j in range(i + 1, len(names))]
    axes[2].scatter(xs, ys, s=14, color=CYCLE[2])
    axes[2].set_xlabel(f"{models[0]}", fontsize=8)
    axes[2].set_ylabel(f"{models[1]}", fontsize=8)
    rho = reuse.get("spearman")
    text = "constant entries" if rho is None else f"Spearman {rho:.2f}, permutation p = {reuse['p']:.3f}"
    axes[2].set_title(f"pairs of relations: {text}", fontsize=9)
    fig.tight_layout()
    return to_svg(fig)
