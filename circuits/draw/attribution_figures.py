"""Figures of the direct-effect analyses, from their records (torch-free).

- :func:`dla_figure`: the top heads × roles heatmap of per-source direct logit
  attribution, each head labelled with its class;
- :func:`motif_figure`: each group's contribution to the answer's logit and
  how often it alone, or the sum, ranks the answer first;
- :func:`suppression_figure`: last-layer direct effects per relation, and the
  mitigation before and after.
"""

from __future__ import annotations

from circuits.draw.figures import stored
from circuits.draw.plotting import pyplot, series, to_svg
from circuits.records.dla import DLARecord
from circuits.records.motif import MotifRecord
from circuits.records.suppression import SuppressionRecord

__all__ = ["dla_figure", "motif_figure", "suppression_figure"]

_GROUP_COLOURS = {
    "subject heads": "#1b9e77",
    "relation heads": "#d95f02",
    "mixed heads": "#7570b3",
    "MLPs": "#e7298a",
    "rest": "#999999",
    "sum": "#333333",
}


def dla_figure(record: DLARecord) -> str:
    """Heatmap: the heads with the largest direct effect (rows) × source roles (columns), mean DLA.

    >>> from circuits.records.base import Provenance
    >>> from circuits.records.dla import HeadAttribution, Thresholds
    >>> from circuits.uncertainty import Interval
    >>> iv, roles = Interval(0.5, 0.1, 0.9), ("first", "subject", "relation", "last")
    >>> head = HeadAttribution("a1.h0", iv, {r: iv for r in roles}, {}, "subject")
    >>> record = DLARecord(Provenance("m", "r", n_prompts=2), "answer", 2, 1, [head], Thresholds(), 0.0,
    ...     roles=roles)
    >>> "a1.h0 (subject)" in dla_figure(record)
    True
    """
    import numpy as np

    plt = pyplot()
    heads = [record.head(name) for name in record.top(record.n_top)]
    roles = record.roles

    values = np.array([[_finite(h.by_role[r].value) for r in roles] + [_finite(h.dla.value)] for h in heads])
    fig, ax = plt.subplots(figsize=(6.2, 1.2 + 0.34 * max(len(heads), 1)))
    bound = float(np.abs(values).max()) if values.size else 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if abs(v) > 0.6 * bound else "black",
        )
    ax.set_xticks(range(len(roles) + 1), [*roles, "total"])
    ax.axvline(len(roles) - 0.5, color="black", lw=1.2)
    labels = [h.head + (f" ({h.head_class})" if h.head_class else "") for h in heads]
    ax.set_yticks(range(len(heads)), labels, fontsize=8)
    ax.set_xlabel("source position's role")
    what = "answer's centred logit" if record.direction == "answer" else "logit difference"
    fig.colorbar(image, ax=ax, label=f"direct effect on the {what}", shrink=0.8)
    ax.set_title(record.provenance.title("Per-source direct logit attribution"), fontsize=10)
    return to_svg(fig)


def motif_figure(record: MotifRecord) -> str:
    """Two panels: each group's contribution to the answer's logit, and its top-1 share among the candidates.

    >>> from circuits.records.base import Provenance
    >>> from circuits.uncertainty import Interval
    >>> iv, groups = Interval(0.5, 0.1, 0.9), ("subject heads", "rest")
    >>> each = {g: iv for g in [*groups, "sum"]}
    >>> record = MotifRecord(Provenance("m", "r", n_prompts=2), 5, {}, {g: 1 for g in groups}, each, each,
    ...     {g: 1.0 for g in each}, iv, groups)
    >>> "no group alone" in motif_figure(record)
    True
    """
    plt = pyplot()
    labels = [*record.groups, "sum"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    panels = (
        (left, labels, stored([record.contribution[g] for g in labels])),
        (right, [*labels, "motif"], stored([*(record.top1[g] for g in labels), record.motif])),
    )
    for ax, names, points in panels:
        value, low, high = series(points)
        errors = [
            [v - lo for v, lo in zip(value, low, strict=True)],
            [hi - v for v, hi in zip(value, high, strict=True)],
        ]
        bars = ax.bar(
            range(len(names)),
            value,
            color=[_GROUP_COLOURS.get(g, "white") for g in names],
            edgecolor="#333333",
            yerr=errors,
            ecolor="#444444",
            error_kw={"lw": 0.8, "capsize": 2},
        )
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.25, axis="y")
    bars[-1].set_hatch("///")
    right.get_xticklabels()[-1].set_fontweight("bold")
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("direct effect on the answer's\ncentred logit (mean)")
    right.set_ylim(0, 1.05)
    right.set_ylabel(f"share of prompts ranking the answer\nfirst of {record.n_candidates} candidates")
    right.set_title("motif: no group alone ranks it first, the sum does", fontsize=8)
    fig.suptitle(record.provenance.title("Additive motif"), fontsize=10)
    fig.tight_layout()
    return to_svg(fig)


def suppression_figure(record: SuppressionRecord, *, rows: int = 14) -> str:
    """Last-layer direct effects per relation (heatmap), and accuracy / p(answer) before and after mitigation.

    >>> from circuits.records.base import Provenance
    >>> from circuits.records.suppression import DirectEffect, Mitigation
    >>> from circuits.uncertainty import Interval
    >>> iv = Interval(-0.5, -0.7, -0.3)
    >>> each = {"accuracy": iv, "answer_prob": iv}
    >>> record = SuppressionRecord(Provenance("m", "r", n_prompts=2), ["r"], [1], 0.5, 0.5, 0.5,
    ...     {"r": [DirectEffect("m1", iv, 1.0)]}, ["m1"], {"r": Mitigation(2, each, each, each)})
    >>> "m1 *" in suppression_figure(record)
    True
    """
    import numpy as np

    plt = pyplot()
    relations = record.relations
    names = [c.name for c in record.effects[relations[0]]]
    values = np.array([[_finite(c.effect.value) for c in record.effects[r]] for r in relations]).T
    suppressors = set(record.suppressors)
    order = sorted(range(len(names)), key=lambda i: (names[i] not in suppressors, -np.abs(values[i]).mean()))
    order = order[: max(rows, len(suppressors))]
    fig, (heat, acc, prob) = plt.subplots(
        1,
        3,
        figsize=(14, 2.4 + 0.32 * max(len(order), len(relations))),
        gridspec_kw={"width_ratios": [1.3, 1, 1]},
    )
    shown = values[order]
    # clip the colours at the 90th percentile of |effect|, so one large MLP does not wash out the suppressors
    bound = float(np.percentile(np.abs(shown), 90)) or float(np.abs(shown).max()) or 1.0
    image = heat.imshow(shown, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
    for (i, j), v in np.ndenumerate(shown):
        heat.text(
            j,
            i,
            f"{v:.2f}",
            ha="center",
            va="center",
            fontsize=5.5,
            color="white" if abs(v) > 0.7 * bound else "black",
        )
    heat.set_yticks(
        range(len(order)), [names[i] + (" *" if names[i] in suppressors else "") for i in order], fontsize=8
    )
    heat.set_xticks(range(len(relations)), relations, rotation=40, ha="right", fontsize=7)
    bar = fig.colorbar(image, ax=heat, shrink=0.8, extend="both")
    bar.set_label("direct effect on the answer's\ncentred logit (mean; colours clipped)", fontsize=8)
    heat.set_title("last-layer components (* suppressor)", fontsize=9)
    width = 0.4
    for ax, metric, label in ((acc, "accuracy", "top-1 accuracy"), (prob, "answer_prob", "p(answer)")):
        for offset, when, colour in ((-width / 2, "before", "#999999"), (width / 2, "after", "#1b9e77")):
            value, low, high = series(
                stored([getattr(record.mitigation[r], when)[metric] for r in relations])
            )
            errors = [
                [v - lo for v, lo in zip(value, low, strict=True)],
                [hi - v for v, hi in zip(value, high, strict=True)],
            ]
            ax.barh(
                [i + offset for i in range(len(relations))],
                value,
                height=width,
                color=colour,
                xerr=errors,
                ecolor="#444444",
                error_kw={"lw": 0.8, "capsize": 1.5},
                label=f"{when}" + (f" (suppressors × {record.alpha:g})" if when == "after" else ""),
            )
        ax.set_yticks(range(len(relations)), relations, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(f"{label} on held-out prompts")
        ax.grid(alpha=0.25, axis="x")
    acc.set_xlim(0, 1.05)
    prob.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    acc.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False, ncol=2)
    control = record.control
    note = ""
    if "before" in control:
        b, a, c = control["before"], control["after"], control["change"]
        note = (
            f"control: next-token loss on {record.control_texts} other sentences "
            f"{b.value:.3f} → {a.value:.3f} nats (change {c.value:+.3f} [{c.low:+.3f}, {c.high:+.3f}])"
        )
    heading = record.provenance.title("Final-layer suppression")
    fig.suptitle(heading + ("\n" + note if note else ""), fontsize=10)
    fig.tight_layout()
    return to_svg(fig)


def _finite(value: float) -> float:
    return 0.0 if value != value else value  # NaN (no prompts) as 0
