"""The pages across a model's relations: circuit reuse (with suppression and the reuse test) and channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.report.across import Analysis, ModelData, Reuse
from circuits.report.figures import figure_html, missing_diagram_html
from circuits.report.html import esc, fmt_num, href, page, table, value_html
from circuits.report.pages import CHANNELS, REUSE, Site

__all__ = ["channels_page", "reuse_page"]

_CHANNEL_COLUMNS = ("sender", "receiver", "kind", "z", "score", "whole_z", "rank", "share")
_VALIDATION = (
    ("relation", "relation"),
    ("score_method", "score method"),
    ("n_pairs", "pairs"),
    ("n_edges", "edges"),
    ("n_important", "important edges"),
    ("top_fraction", "top fraction"),
    ("auc_whole", "AUC (whole)"),
    ("auc_component", "AUC (component)"),
    ("precision_whole", "precision (whole)"),
    ("precision_component", "precision (component)"),
)


def _is_interval(x: Any) -> bool:
    return isinstance(x, dict) and "value" in x and "low" in x


def _interval_grid(data: dict[str, Any], first: str) -> str:
    """A ``{row: {column: interval}}`` mapping as a table (rows of anything but intervals left out)."""
    rows = {k: v for k, v in data.items() if isinstance(v, dict) and v and all(map(_is_interval, v.values()))}
    columns = list(dict.fromkeys(c for v in rows.values() for c in v))
    return table([first, *columns], [[k, *[v.get(c) for c in columns]] for k, v in rows.items()])


def _ceilings(reuse: Reuse, here: Path) -> str:
    noise = reuse.report.get("noise") if isinstance(reuse.report.get("noise"), dict) else {}
    ceilings = noise.get("ceilings") if isinstance(noise.get("ceilings"), dict) else {}
    out = []
    if ceilings:
        out.append(
            "<h3>Split-half ceilings</h3><p>Each relation's circuits from two disjoint halves of its "
            "pairs, compared with each other: how similar a relation's circuit is to itself.</p>"
            + _interval_grid(ceilings, "relation")
        )
    if reuse.noise is not None:
        header, rows = reuse.noise
        metric = reuse.report.get("metric")
        note = ""
        if "metric" in header and metric is not None:
            col = header.index("metric")
            rows = [r for r in rows if len(r) > col and r[col] == metric]
            note = f" Rows for {metric}; the file holds every similarity."
        link = href(reuse.folder / "noise.csv", here)
        out.append(
            f'<h3>Noise per pair (<a href="{link}">noise.csv</a>)</h3><p>Similarity with its interval, '
            "the two split-half ceilings, the similarity relative to them, the permutation null and its "
            f"p-value.{esc(note)}"
            "</p>" + table(header, [[_number(x) for x in r] for r in rows], digits=3)
        )
    return "".join(out)


def _number(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _similar(reuse: Reuse) -> str:
    rows = []
    for key, label in (("most_similar", "most similar"), ("least_similar", "least similar")):
        pair = reuse.report.get(key)
        if not isinstance(pair, dict):
            continue
        noise = pair.get("noise") if isinstance(pair.get("noise"), dict) else {}
        rows.append(
            [
                label,
                pair.get("a"),
                pair.get("b"),
                noise or {"value": pair.get("value")},
                noise.get("ceiling_a"),
                noise.get("ceiling_b"),
                noise.get("relative"),
                noise.get("null"),
                noise.get("p"),
                pair.get("head_share"),
            ]
        )
    if not rows:
        return ""
    header = [
        "pair",
        "a",
        "b",
        f"{reuse.report.get('metric', 'similarity')} [95%]",
        "ceiling a",
        "ceiling b",
        "relative",
        "null [95%]",
        "p",
        "head share",
    ]
    return "<h2>Most and least similar circuits</h2>" + table(header, rows)


def _analysis(analysis: Analysis, here: Path) -> str:
    out = [f"<h2>{esc(analysis.title)}</h2>"]
    if analysis.figure is not None:
        out.append(figure_html(analysis.figure, here))
    data = analysis.data
    if isinstance(data.get("suppressors"), list):
        rows = [
            [s.get("component"), len(s.get("relations") or []), ", ".join(map(str, s.get("relations") or []))]
            for s in data["suppressors"]
            if isinstance(s, dict)
        ]
        out.append("<h3>Suppressors</h3>" + table(["component", "relations", "which"], rows))
    if isinstance(data.get("pooled"), dict):
        out.append("<h3>Pooled over relations</h3>" + _interval_grid(data["pooled"], "measure"))
        if isinstance(data.get("drop"), str):
            out.append(f'<p class="muted">{esc(data["drop"])}</p>')
    if analysis.record is not None:
        out.append(f'<p>Record: <a href="{href(analysis.record, here)}">{esc(analysis.record.name)}</a></p>')
    return "".join(out)


def reuse_page(site: Site, model: ModelData) -> str:
    """Reuse heatmaps with the dendrogram, noise ceilings, extreme pairs, cross-task faithfulness, core."""
    current = site.pages[(model.name, REUSE)]
    here = (site.out / current).parent
    body = ["<h1>Reuse across relations</h1>"]
    reuse = model.reuse
    if reuse is not None:
        r = reuse.report
        relations = r.get("relations") if isinstance(r.get("relations"), list) else []
        body.append(
            f'<p class="lead">{esc(model.name)}: {len(relations)} relations compared by '
            f"{esc(r.get('metric', 'similarity'))}.</p>"
        )
        shown = [
            figure_html(reuse.figures[k], here)
            for k in ("heatmap", "heatmap_relative", "heads")
            if k in reuse.figures
        ]
        body.append(f'<div class="pair">{"".join(shown)}</div>')
        ceilings = _ceilings(reuse, here)
        if ceilings:
            body.append("<h2>Noise ceilings</h2>" + ceilings)
        body.append(_similar(reuse))
        for key in ("cross_task", "core"):
            if key in reuse.figures:
                body.append(figure_html(reuse.figures[key], here, heading="h2"))
        if "core" not in reuse.figures and (reuse.folder / "core.json").is_file():  # over the diagram limit
            body.append(
                "<h2>Shared core</h2>" + missing_diagram_html(reuse.folder / "core.json", here, site.root)
            )
        core = r.get("core") if isinstance(r.get("core"), dict) else {}
        if isinstance(core.get("heads"), list):
            body.append(f"<p>Core heads: {esc(', '.join(map(str, core['heads'])))}</p>")
        files = [*reuse.csvs, reuse.folder / "report.json"]
        links = [f'<a href="{href(p, here)}">{esc(p.name)}</a>' for p in files if p.is_file()]
        if links:
            body.append("<h2>Files</h2><p>" + " · ".join(links) + "</p>")
    else:
        body.append(f'<p class="lead">{esc(model.name)}: no reuse sweep is stored.</p>')
    body += [_analysis(a, here) for a in model.analyses]
    return page(f"Reuse · {model.name}", "\n".join(body), nav=site.nav, current=current, out=site.out)


def channels_page(site: Site, model: ModelData) -> str:
    """Validation of the predicted channels against patching, the strongest channels, the overlay diagram."""
    current = site.pages[(model.name, CHANNELS)]
    here = (site.out / current).parent
    ch = model.channels
    assert ch is not None
    data = ch.data
    body = [
        "<h1>Channels</h1>",
        f'<p class="lead">{esc(model.name)}: low-rank sender → receiver channels '
        "predicted from the weights (composition scores of the sender's OV components), checked "
        "against the relations' patching scores.</p>",
    ]
    validation = [v for v in data.get("validation") or [] if isinstance(v, dict)]
    if validation:
        body.append(
            "<h2>Validation against patching</h2><p>How well the channel scores rank each relation's "
            "important sender → q/k/v edges: ROC AUC and precision among the top edges.</p>"
        )
        body.append(
            table(
                [label for _, label in _VALIDATION],
                [[v.get(k) for k, _ in _VALIDATION] for v in validation],
                digits=3,
            )
        )
    if ch.overlay is not None:
        body.append(figure_html(ch.overlay, here, heading="h2"))
    channels = [c for c in data.get("channels") or [] if isinstance(c, dict)]
    if channels:
        columns = [c for c in _CHANNEL_COLUMNS if any(c in row for row in channels)]
        body.append(
            f"<h2>Strongest channels</h2><p>{fmt_num(min(len(channels), 30))} of {len(channels)}.</p>"
        )
        body.append(table(columns, [[row.get(c) for c in columns] for row in channels[:30]]))
    rest = {
        k: v
        for k, v in data.items()
        if k in ("settings", "share", "by", "n_senders", "n_receivers", "seconds")
    }
    if rest:
        body.append("<h2>Settings</h2>" + value_html(rest))
    if (ch.folder / "channels.json").is_file():
        body.append(f'<p>Record: <a href="{href(ch.folder / "channels.json", here)}">channels.json</a></p>')
    return page(f"Channels · {model.name}", "\n".join(body), nav=site.nav, current=current, out=site.out)
