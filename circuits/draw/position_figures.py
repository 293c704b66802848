"""A relation's position-aware circuit at a glance, drawn from its stored record (torch-free).

The record is what :func:`circuits.jobs.positions.run_positions` writes
(``positions.json``). Left: held-out faithfulness of position-aware circuits
of ``n`` (edge, role) units against summed circuits of ``n`` edges, with 95%
intervals. Right: per receiver layer, each role's share of the circuit's
``|score|``.
"""

from __future__ import annotations

from typing import Any

from circuits.draw.plotting import CYCLE, pyplot, to_svg
from circuits.relations.roles import ROLES

__all__ = ["ROLE_COLOURS", "positions_figure"]

ROLE_COLOURS = {
    "first": "#999999",
    "demo": "#c7b18a",
    "subject": CYCLE[0],
    "relation": CYCLE[2],
    "last": CYCLE[1],
}


def _bar(ax: Any, x: float, point: dict[str, Any], colour: str, label: str) -> None:
    value, low, high = point["value"], point.get("low"), point.get("high")
    errors = None
    if low is not None and high is not None and low == low and high == high:  # not nan
        errors = [[max(0.0, value - low)], [max(0.0, high - value)]]
    ax.bar([x], [value], width=0.38, color=colour, label=label)
    if errors is not None:
        ax.errorbar([x], [value], yerr=errors, fmt="none", ecolor="black", capsize=3, lw=0.8)


def positions_figure(record: dict[str, Any]) -> str:
    """Roles against sums at equal size, and where the circuit reads its score, layer by layer.

    >>> row = {"fraction": 0.01, "n": 40, "roles_units": 38, "summed_edges": 40,
    ...        "roles": {"value": 0.9, "low": 0.8, "high": 1.0},
    ...        "summed": {"value": 0.6, "low": 0.5, "high": 0.7}}
    >>> rec = {"relation": "r", "model": "m", "n_heldout": 6, "n_units_graph": 4000, "comparison": [row],
    ...        "circuit": {"n_units": 12, "n_edges": 9, "faithfulness_interval": {"value": 0.8, "low": 0.7,
    ...                    "high": 0.9}}, "target_reached": True,
    ...        "profile": {"layers": [{"layer": 0, "total": 1.0, "shares": {"first": 0.0, "subject": 0.7,
    ...                    "relation": 0.0, "last": 0.3}, "top": "subject"}]}}
    >>> svg = positions_figure(rec)
    >>> svg.lstrip().startswith("<?xml") and "summed" in svg and "subject" in svg
    True
    """
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
    rows = record["comparison"]
    for i, row in enumerate(rows):
        _bar(left, i - 0.2, row["roles"], CYCLE[0], "position-aware (n units)" if i == 0 else "")
        _bar(left, i + 0.2, row["summed"], "#bbbbbb", "summed (n edges)" if i == 0 else "")
    tops = [r[k].get("high") or r[k]["value"] for r in rows for k in ("roles", "summed")]
    left.set_ylim(top=max([1.4, *(t + 0.3 for t in tops if t == t)]))  # room for the legend above the bars
    left.set_xticks(range(len(rows)))
    left.set_xticklabels([f"{100 * r['fraction']:g}%\n{r['n']:,}" for r in rows], fontsize=8)
    left.set_xlabel("circuit size: % of all (edge, role) units, and n", fontsize=8)
    left.axhline(1.0, color="#444444", lw=0.6)
    left.axhline(0.0, color="#444444", lw=0.6)
    left.set_ylabel("held-out faithfulness F")
    c = record["circuit"]
    f = c["faithfulness_interval"]
    short = "" if record.get("target_reached", True) else " (short of the target)"
    summed = record.get("summed_circuit")
    versus = ""
    if summed:
        versus = (
            f"\nsmallest summed circuit: {summed['n_edges']} edges, "
            f"F {summed['faithfulness_interval']['value']:.2f}"
        )
    left.set_title(
        f"equal size: roles vs summed\nposition-aware circuit: {c['n_units']} units on {c['n_edges']} "
        f"edges, F {f['value']:.2f}{short}{versus}",
        fontsize=8,
    )
    left.legend(fontsize=8, frameon=False, loc="upper left")
    left.grid(alpha=0.25, axis="y")

    layers = record["profile"]["layers"]
    x = [row["layer"] for row in layers]
    bottom = [0.0] * len(layers)
    for role in ROLES:
        heights = [row["shares"].get(role, 0.0) * row["total"] for row in layers]
        right.bar(x, heights, bottom=bottom, color=ROLE_COLOURS[role], label=role, width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    right.set_xlabel("receiver layer (the last bar: logits)")
    right.set_ylabel("|score| of the circuit's units")
    right.set_title("which role each layer reads the circuit's score at", fontsize=9)
    right.legend(fontsize=8, frameon=False, title="role", title_fontsize=8)
    right.grid(alpha=0.25, axis="y")
    fig.suptitle(
        f"Position-aware circuit: {record['relation']} ({record['model']}, "
        f"{record['n_heldout']} held-out pairs)",
        fontsize=10,
        y=0.99,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return to_svg(fig)
