"""The report's page across models: the stored comparison (``compare-models/comparison.json``)
and its figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.report.figures import Figure, figure_html, svg_size
from circuits.report.html import Nav, esc, href, page, table

__all__ = ["MODELS_PAGE", "comparison_page"]

MODELS_PAGE = "models.html"

_FIGURES = (
    (
        "curves.svg",
        "Faithfulness curves",
        "Each relation's graph: faithfulness on held-out pairs against "
        "the share of edges kept, most relied-on first; the dotted line is the target.",
    ),
    (
        "depth.svg",
        "Depth profiles",
        "Share of each circuit's |score| per tenth of relative depth "
        "(an edge sits midway between its ends: input 0, a layer-l node (l + 0.5)/L, logits 1).",
    ),
    (
        "knockout.svg",
        "Attention knockout",
        "Relative change of p(answer) when the last position cannot "
        "read a role in a window of layers starting at that relative depth.",
    ),
    (
        "reuse.svg",
        "Reuse matrices",
        "Edge Jaccard between the relations' equal-size circuits in each "
        "model, and the pairs of relations set against each other.",
    ),
)


def _size_table(comparison: dict[str, Any]) -> str:
    models = comparison["models"]
    header = ["relation"] + [f"{m}: {k}" for m in models for k in ("edges", "share", "F (held-out)")]
    header.append("depth overlap")
    rows = []
    for row in comparison["relations"]:
        cells: list[Any] = [row["relation"]]
        for m in models:
            d = row["models"][m]
            cells += [
                f"{d['n_edges']}{'' if d.get('target_reached', True) else '*'}",
                None if d.get("share") is None else f"{100 * d['share']:.1f}%",
                d.get("faithfulness"),
            ]
        cells.append(", ".join(f"{v:.2f}" for v in row["depth_overlap"].values()))
        rows.append(cells)
    return table(header, rows)


def _dla_table(comparison: dict[str, Any]) -> str:
    models = comparison["models"]
    kinds = ("subject", "relation", "mixed")
    rows = []
    for row in comparison["relations"]:
        counts = [row["models"][m].get("dla_counts") or {} for m in models]
        rows.append([row["relation"], *[c.get(k) for c in counts for k in kinds]])
    return table(["relation", *[f"{m}: {k}" for m in models for k in kinds]], rows)


def _reuse_text(reuse: dict[str, Any] | None) -> str:
    if reuse is None:
        return "<p>Fewer than three shared relations have a reuse matrix in both models.</p>"
    rho = reuse.get("spearman")
    corr = (
        "undefined (a matrix is constant)"
        if rho is None
        else f"{rho:.2f} (permutation p = {reuse['p']:.3f} over {reuse['n_perm']} shuffles of the labels)"
    )
    first = " and ".join(" ~ ".join(map(str, pair)) for pair in reuse.get("first_merge", []))
    same = "the same pair" if reuse.get("same_first_merge") else "different pairs"
    return (
        f"<p>Spearman correlation of the pairs' edge Jaccard between the models: {esc(corr)}. "
        f"First to merge in each model: {esc(first)} ({same}).</p>"
    )


def comparison_page(comparison: dict[str, Any], folder: Path, *, nav: Nav, out: Path) -> str:
    """The page: circuit sizes at the target, figures side by side, DLA roles, the reuse matrices compared."""
    here = (out / MODELS_PAGE).parent
    models = comparison["models"]
    body = [
        "<h1>Across models</h1>",
        f'<p class="lead">{len(comparison["relations"])} relations on {esc(", ".join(models))}: each '
        f"model's smallest circuit reaching F ≥ {esc(comparison.get('target'))} on its scoring pairs "
        "(* none did), its share of the model's edges and its held-out faithfulness with a 95% "
        "interval.</p>",
        _size_table(comparison),
    ]
    for name, title, caption in _FIGURES:
        path = folder / name
        if path.is_file():
            body.append(figure_html(Figure(path, title, caption, svg_size(path)), here, heading="h2"))
            if name == "knockout.svg":
                body.append("<h3>DLA roles (heads per class)</h3>" + _dla_table(comparison))
    body.append("<h2>Do the same relations cluster?</h2>" + _reuse_text(comparison.get("reuse")))
    link = href(folder / "comparison.json", here)
    body.append(f'<h2>Files</h2><p><a href="{link}">comparison.json</a></p>')
    return page("Across models", "\n".join(body), nav=nav, current=MODELS_PAGE, out=out)
