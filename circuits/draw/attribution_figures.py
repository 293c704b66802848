"""Figures of the direct-effect analyses, from their JSON records (torch-free).

- :func:`dla_figure`: the top heads × roles heatmap of per-source direct logit
  attribution, each head labelled with its class;
- :func:`motif_figure`: each group's contribution to the answer's logit and
  how often it alone, or the sum, ranks the answer first.
"""

from __future__ import annotations

from typing import Any

from circuits.draw.plotting import pyplot, series, title, to_svg

__all__ = ["dla_figure", "motif_figure"]

_GROUP_COLOURS = {"subject heads": "#1b9e77", "relation heads": "#d95f02", "mixed heads": "#7570b3",
                  "MLPs": "#e7298a", "rest": "#999999", "sum": "#333333"}  # fmt: skip


def dla_figure(record: dict[str, Any]) -> str:
    """Heatmap: the heads with the largest direct effect (rows) × source roles (columns), mean DLA.

    >>> iv = {"value": 0.5, "low": 0.1, "high": 0.9}
    >>> head = {"head": "a1.h0", "dla": iv, "by_role": {r: iv for r in ("first", "subject", "relation", "last")},
    ...         "positive_share": {}, "class": "subject"}
    >>> svg = dla_figure({"model": "m", "relation": "r", "n_prompts": 2, "direction": "answer",
    ...     "roles": ["first", "subject", "relation", "last"], "top_heads": [head]})
    >>> "a1.h0 (subject)" in svg
    True
    """
    import numpy as np

    plt = pyplot()
    heads = record["top_heads"]
    roles = record["roles"]
    values = np.array([[h["by_role"][r]["value"] or 0.0 for r in roles] + [h["dla"]["value"] or 0.0]
                       for h in heads])  # fmt: skip
    fig, ax = plt.subplots(figsize=(6.2, 1.2 + 0.34 * max(len(heads), 1)))
    bound = float(np.abs(values).max()) if values.size else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="white" if abs(v) > 0.6 * bound else "black")  # fmt: skip
    ax.set_xticks(range(len(roles) + 1), [*roles, "total"])
    ax.axvline(len(roles) - 0.5, color="black", lw=1.2)
    labels = [h["head"] + (f" ({h['class']})" if h.get("class") else "") for h in heads]
    ax.set_yticks(range(len(heads)), labels, fontsize=8)
    ax.set_xlabel("source position's role")
    what = "answer's centred logit" if record.get("direction") == "answer" else "logit difference"
    fig.colorbar(image, ax=ax, label=f"direct effect on the {what}", shrink=0.8)
    ax.set_title(title(record, "Per-source direct logit attribution"), fontsize=10)
    return to_svg(fig)


def motif_figure(record: dict[str, Any]) -> str:
    """Two panels: each group's contribution to the answer's logit, and its top-1 share among the candidates.

    >>> iv = {"value": 0.5, "low": 0.1, "high": 0.9}
    >>> groups = ["subject heads", "rest"]
    >>> svg = motif_figure({"model": "m", "relation": "r", "n_prompts": 2, "n_candidates": 5,
    ...     "groups": groups, "contribution": {g: iv for g in [*groups, "sum"]},
    ...     "top1": {g: iv for g in [*groups, "sum"]}, "motif": iv})
    >>> "no group alone" in svg
    True
    """
    plt = pyplot()
    labels = [*record["groups"], "sum"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = ((left, labels, [record["contribution"][g] for g in labels]),
              (right, [*labels, "motif"], [*(record["top1"][g] for g in labels), record["motif"]]))  # fmt: skip
    for ax, names, points in panels:
        value, low, high = series(points)
        errors = [[v - lo for v, lo in zip(value, low, strict=True)],
                  [hi - v for v, hi in zip(value, high, strict=True)]]  # fmt: skip
        bars = ax.bar(range(len(names)), value, color=[_GROUP_COLOURS.get(g, "white") for g in names],
                      edgecolor="#333333", yerr=errors, ecolor="#444444", error_kw={"lw": 0.8, "capsize": 2})  # fmt: skip
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.25, axis="y")
    bars[-1].set_hatch("///")
    right.get_xticklabels()[-1].set_fontweight("bold")
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("direct effect on the answer's\ncentred logit (mean)")
    right.set_ylim(0, 1.05)
    right.set_ylabel(f"share of prompts ranking the answer\nfirst of {record['n_candidates']} candidates")
    right.set_title("motif: no group alone ranks it first, the sum does", fontsize=8)
    fig.suptitle(title(record, "Additive motif"), fontsize=10)
    fig.tight_layout()
    return to_svg(fig)
