"""The faithfulness curve of a scored graph, drawn from its stored evaluation record (torch-free).

The record is :meth:`circuits.evaluate.Evaluation.as_dict` (``evaluation.json``),
optionally with a ``"circuit"`` entry (name, edges, faithfulness interval,
target) marking the circuit extracted from the graph.
"""

from __future__ import annotations

from typing import Any

from circuits.draw.plotting import CYCLE, band, pyplot, to_svg

__all__ = ["faithfulness_figure"]

_CURVES = (
    ("signed", "by signed score (most relied-on first)", CYCLE[0]),
    ("absolute", "by |score|", CYCLE[1]),
    ("random", "random edges", "#888888"),
)


def _points(record: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The stored intervals of one curve, or its bare values as zero-width intervals."""
    intervals = record.get("intervals") or {}
    if intervals.get(name):
        return intervals[name]
    return [{"value": v, "low": v, "high": v} for v in record[name]]


def faithfulness_figure(record: dict[str, Any]) -> str:
    """Faithfulness against the share of edges kept, with 95% bands; the extracted circuit as a point.

    >>> rec = {"fractions": [0.01, 1.0], "signed": [0.5, 1.0], "absolute": [0.4, 1.0], "random": [0.0, 1.0],
    ...        "n_pairs": 4, "n_edges": 100, "cpr": 0.7, "cmd": 0.2, "intervals": None,
    ...        "extra": {"relation": "r", "model": "m", "split": "heldout"},
    ...        "circuit": {"name": "c", "n_edges": 5, "target": 0.8,
    ...                    "faithfulness": {"value": 0.8, "low": 0.7, "high": 0.9}}}
    >>> svg = faithfulness_figure(rec)
    >>> svg.lstrip().startswith("<?xml") and "random edges" in svg and "c (5 edges)" in svg
    True
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = [100 * f for f in record["fractions"]]
    for name, label, colour in _CURVES:
        band(ax, x, _points(record, name), label, colour, "--" if name == "random" else "-")
    circuit = record.get("circuit")
    if circuit and circuit.get("faithfulness"):
        f = circuit["faithfulness"]
        share = 100 * circuit["n_edges"] / max(1, record["n_edges"])
        low = f["value"] - f["low"] if f.get("low") is not None else 0.0
        high = f["high"] - f["value"] if f.get("high") is not None else 0.0
        ax.errorbar(
            [share],
            [f["value"]],
            yerr=[[low], [high]],
            fmt="D",
            color="black",
            ms=6,
            capsize=3,
            label=f"{circuit['name']} ({circuit['n_edges']} edges"
            + ("" if circuit.get("target_reached", True) else ", short of the target")
            + ")",
            zorder=5,
        )
        if circuit.get("target") is not None:
            ax.axhline(
                circuit["target"], color="black", lw=0.7, ls=":", label=f"target F = {circuit['target']:g}"
            )
    ax.axhline(1.0, color="#444444", lw=0.6)
    ax.axhline(0.0, color="#444444", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel(f"edges kept (% of {record['n_edges']:,}, log scale)")
    ax.set_ylabel("faithfulness F\n(m(circuit) − m(corrupt)) / (m(clean) − m(corrupt))")
    extra = record.get("extra") or {}
    split = {"heldout": "held-out"}.get(extra.get("split", "heldout"), extra.get("split"))
    ax.set_title(
        f"Faithfulness: {extra.get('relation', '')} ({extra.get('model', '')}, "
        f"{record['n_pairs']} {split} pairs; CPR {record['cpr']:.2f}, "
        f"CMD {record['cmd']:.2f})",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(alpha=0.25)
    return to_svg(fig)
