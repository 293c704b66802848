"""Figures of the mechanism analyses, drawn with matplotlib from their records (torch-free).

Each function takes an analysis's record (:mod:`circuits.records`, as a run
returns it or as read back from ``knockout.json`` / ``enrichment.json`` /
``extraction.json``) and returns a self-contained SVG document as text, so a
figure can be redrawn from a stored file without the model. Shaded bands are
the 95% bootstrap intervals; every axis says what it measures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from circuits.draw.plotting import COLOURS, CYCLE, band, pyplot, series, to_svg
from circuits.records.enrichment import EnrichmentRecord
from circuits.records.extraction import ExtractionRecord
from circuits.records.knockout import KnockoutRecord
from circuits.uncertainty import Interval

__all__ = ["enrichment_figure", "extraction_figure", "knockout_figure", "stored"]


def stored(points: Sequence[Interval]) -> list[dict[str, Any]]:
    """Intervals as the ``{"value", "low", "high"}`` points the plotting helpers draw."""
    return [p.as_dict() for p in points]


def knockout_figure(record: KnockoutRecord) -> str:
    """Knockout curves: relative change of the answer's probability per window start, one line per source set.

    >>> from circuits.records.base import Provenance
    >>> from circuits.records.knockout import KnockoutCurve
    >>> iv = Interval(-0.5, -0.7, -0.3)
    >>> curve = KnockoutCurve("subject", [0, 1], [iv, iv], 2)
    >>> svg = knockout_figure(KnockoutRecord(Provenance("m", "r", n_prompts=2), 2, 1, iv, [curve], None, 3))
    >>> svg.lstrip().startswith("<?xml") and "subject" in svg
    True
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    k = record.window
    for i, curve in enumerate(record.all_curves()):
        name = curve.source
        colour = COLOURS.get(name, CYCLE[i % len(CYCLE)])
        label = f"{name} (n={curve.n_prompts})" + (" — attention sink" if name == "first" else "")
        band(ax, curve.starts, stored(curve.effect), label, colour, "--" if name == "first" else "-")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel(f"first layer of the blocked window (window = {k} layers)")
    ax.set_ylabel("relative change of p(answer)\n(p_knock − p) / p")
    ax.set_xlim(-0.5, record.n_layers - max(k, 1) + 0.5)
    ax.set_title(record.provenance.title("Attention knockout from the last position"), fontsize=10)
    ax.legend(fontsize=8, loc="lower left", frameon=False)
    ax.grid(alpha=0.25)
    return to_svg(fig)


def enrichment_figure(record: EnrichmentRecord) -> str:
    """Attribute rate per layer at the last subject token: clean, and with early/late updates removed.

    >>> from circuits.records.base import Provenance
    >>> rate = [Interval(0.1, 0.05, 0.2)] * 2
    >>> svg = enrichment_figure(EnrichmentRecord(Provenance("m", "r", n_prompts=2), 2, 50, 1,
    ...     {"clean": rate, "mlp-early": rate}, rate[0], 0))
    >>> "mlp early removed" in svg
    True
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    styles = {
        "clean": ("black", "-"),
        "mlp-early": ("#d95f02", "-"),
        "mlp-late": ("#d95f02", ":"),
        "attn-early": ("#1b9e77", "-"),
        "attn-late": ("#1b9e77", ":"),
        "null": ("#999999", "--"),
    }
    for condition, points in record.rates.items():
        colour, style = styles.get(condition, ("#7570b3", "-"))
        label = {"clean": "no intervention", "null": "chance: another subject's attributes"}.get(
            condition, f"{condition.replace('-', ' ')} removed"
        )
        band(ax, list(range(len(points))), stored(points), label, colour, style)
    split = record.split
    if split:
        ax.axvline(split - 0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"layer (early = before layer {split}, late = from it)")
    ax.set_ylabel(f"attribute rate\n(share of top-{record.top_k} logit-lens tokens)")
    ax.set_ylim(bottom=0)
    ax.set_title(record.provenance.title("Subject enrichment at the last subject token"), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(alpha=0.25)
    return to_svg(fig)


def extraction_figure(record: ExtractionRecord) -> str:
    """Extraction rate per layer (answer is the top-1 token of the sublayer's output), attention vs MLP.

    >>> from circuits.records.base import Provenance
    >>> rate = [Interval(0.0, 0.0, 0.0), Interval(0.5, 0.2, 0.8)]
    >>> svg = extraction_figure(ExtractionRecord(Provenance("m", "r", n_prompts=2), 2, rate, rate, []))
    >>> "MLP" in svg
    True
    """
    plt = pyplot()
    ranks = bool(record.attn_median_rank)
    fig, axes = plt.subplots(
        2 if ranks else 1, 1, figsize=(7.5, 6.4 if ranks else 4.2), sharex=True, squeeze=False
    )
    ax = axes[0][0]
    layers = list(range(len(record.attn_rate)))
    width = 0.4
    for offset, rates, label, colour in (
        (-width / 2, record.attn_rate, "attention", "#1b9e77"),
        (width / 2, record.mlp_rate, "MLP", "#d95f02"),
    ):
        value, low, high = series(stored(rates))
        x = [layer + offset for layer in layers]
        errors = [
            [v - lo for v, lo in zip(value, low, strict=True)],
            [hi - v for v, hi in zip(value, high, strict=True)],
        ]
        ax.bar(
            x,
            value,
            width=width,
            color=colour,
            label=label,
            yerr=errors,
            ecolor="#444444",
            error_kw={"lw": 0.8, "capsize": 1.5},
        )
    ax.set_ylabel("extraction rate\n(share of prompts: answer is top-1)")
    highs = [p["high"] or 0 for p in stored(record.attn_rate + record.mlp_rate)]
    ax.set_ylim(0, max(0.05, *highs) * 1.1)
    ax.set_title(record.provenance.title("Attribute extraction at the last position"), fontsize=10)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    ax.grid(alpha=0.25, axis="y")
    if ranks:
        low_ax = axes[1][0]
        low_ax.plot(layers, record.attn_median_rank, "-o", color="#1b9e77", ms=3, label="attention")
        low_ax.plot(layers, record.mlp_median_rank, "-o", color="#d95f02", ms=3, label="MLP")
        low_ax.set_yscale("log")
        low_ax.invert_yaxis()
        low_ax.set_ylabel("median rank of the answer\nin the sublayer's output (1 = top)")
        low_ax.legend(fontsize=8, loc="upper left", frameon=False)
        low_ax.grid(alpha=0.25)
    axes[-1][0].set_xlabel("layer")
    return to_svg(fig)
