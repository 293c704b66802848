"""Figures of interventions, drawn with matplotlib from their JSON records (torch-free).

- :func:`intervention_figure`: before/after bars with 95% intervals for the
  three metrics of ``circuits intervene`` (``intervene.json``);
- :func:`reuse_test_figure`: per relation, top-1 accuracy before and after
  ablating the shared core, the relation's specific heads and random heads
  (``reuse_test.json``).
"""

from __future__ import annotations

from typing import Any

from circuits.draw.plotting import CYCLE, pyplot, series, to_svg

__all__ = ["intervention_figure", "reuse_test_figure"]

_LABELS = {
    "accuracy": "top-1 accuracy",
    "answer_prob": "p(answer)",
    "logit_diff": "logit difference\n(answer − corrupt answer)",
}


def _bars(
    ax: Any, x: list[float], points: list[dict[str, Any]], width: float, colour: str, label: str
) -> None:
    value, low, high = series(points)
    below = [max(0.0, v - lo) if v == v and lo == lo else 0.0 for v, lo in zip(value, low, strict=True)]
    above = [max(0.0, hi - v) if v == v and hi == hi else 0.0 for v, hi in zip(value, high, strict=True)]
    ax.bar(
        x,
        value,
        width,
        color=colour,
        label=label,
        yerr=[below, above],
        capsize=2,
        error_kw={"lw": 0.8, "ecolor": "black"},
    )


def intervention_figure(record: dict[str, Any]) -> str:
    """Before/after bars with 95% bootstrap intervals for accuracy, p(answer) and the logit difference.

    >>> iv = {"value": 0.5, "low": 0.4, "high": 0.6}
    >>> metrics = {"accuracy": iv, "answer_prob": iv, "logit_diff": iv}
    >>> svg = intervention_figure({"model": "m", "relation": "r", "n_prompts": 3, "split": "heldout",
    ...     "edits": ["ablate a0.h1:mean"], "before": metrics, "after": metrics, "change": metrics})
    >>> svg.lstrip().startswith("<?xml") and "ablate a0.h1:mean" in svg
    True
    """
    plt = pyplot()
    metrics = list(record["before"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics) + 1.0, 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        _bars(ax, [0.0], [record["before"][metric]], 0.6, "#888888", "before")
        _bars(ax, [1.0], [record["after"][metric]], 0.6, CYCLE[1], "after")
        change = record["change"][metric]
        if change.get("value") is not None:
            ax.set_title(
                f"change {change['value']:+.3g}\n[{change['low']:+.3g}, {change['high']:+.3g}]", fontsize=8
            )
        if metric == "accuracy":
            ax.set_ylim(0, 1.05)
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_ylabel(_LABELS.get(metric, metric), fontsize=9)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.grid(alpha=0.25, axis="y")
    edits = "; ".join(record["edits"]) or "no edits"
    if len(edits) > 90:
        edits = edits[:87] + "..."
    fig.suptitle(
        f"Intervention on {record['relation']} ({record['model']}, {record['n_prompts']} "
        f"{record['split']} prompts)\n{edits}",
        fontsize=9,
    )
    fig.tight_layout()
    return to_svg(fig)


def reuse_test_figure(record: dict[str, Any]) -> str:
    """Grouped bars per relation: accuracy before and after each ablation, with 95% intervals.

    >>> iv = {"value": 0.5, "low": 0.4, "high": 0.6}
    >>> acc = {"before": iv, "core": iv, "specific": iv, "random": iv}
    >>> svg = reuse_test_figure({"model": "m", "ablation": "mean", "k": 2, "n_circuits": 3, "core": ["a0.h1"],
    ...     "relations": [{"relation": "r", "n_core": 1, "n_specific": 1, "accuracy": acc}]})
    >>> "after ablating the core" in svg
    True
    """
    plt = pyplot()
    rows = record["relations"]
    conditions = [
        ("before", "no ablation", "#888888"),
        ("core", "after ablating the core", CYCLE[1]),
        ("core_matched", "after ablating as many core heads as specific ones", CYCLE[3]),
        ("specific", "after ablating specific heads", CYCLE[0]),
        ("random", "after ablating random heads", CYCLE[2]),
    ]
    conditions = [c for c in conditions if all(c[0] in r["accuracy"] for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2.0), 4.2))
    width = 0.8 / len(conditions)
    for i, (key, label, colour) in enumerate(conditions):
        x = [j + (i - (len(conditions) - 1) / 2) * width for j in range(len(rows))]
        _bars(ax, x, [r["accuracy"][key] for r in rows], width, colour, label)
    names = [f"{r['relation']}\n(core {r['n_core']}, spec. {r['n_specific']})" for r in rows]
    ax.set_xticks(range(len(rows)), names, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("top-1 accuracy (held-out prompts)")
    ax.set_ylim(0, 1.05)
    ax.set_title(
        f"Causal reuse test ({record['model']}, {record['ablation']} ablation): core = "
        f"{len(record['core'])} heads in ≥ {record['k']} of {record['n_circuits']} circuits",
        fontsize=9,
    )
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.25, axis="y")
    return to_svg(fig)
