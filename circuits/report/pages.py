"""The report's plan (which page lives where, the navigation bar) and its overview and relation pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.relations.samples import MIN_HELDOUT, MIN_SCORING
from circuits.report.across import ModelData
from circuits.report.collect import RelationData
from circuits.report.figures import figure_html, missing_diagram_html
from circuits.report.html import Nav, NavItem, esc, fmt_interval, fmt_num, href, page, table
from circuits.report.job_section import job_section

__all__ = ["Site", "index_page", "plan", "relation_page"]

INDEX = "index.html"
REUSE, CHANNELS = ":reuse", ":channels"


@dataclass(frozen=True)
class Site:
    """Where every page goes under ``out`` (by ``(model, relation)`` or ``(model, ":reuse")``) and the nav."""

    out: Path
    root: Path
    models: list[ModelData]
    pages: dict[tuple[str, str], str]
    nav: Nav

    def link(self, model: str, key: str, here: str) -> str:
        """Relative link from page ``here`` to the page of ``(model, key)``."""
        return href(self.out / self.pages[(model, key)], (self.out / here).parent)


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"
    slug, i = base, 2
    while slug.lower() in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug.lower())
    return slug


def plan(out: Path, root: Path, models: list[ModelData]) -> Site:
    """Page paths of every model's relations, reuse and channels pages, and the navigation bar."""
    pages: dict[tuple[str, str], str] = {}
    groups, top = [], {INDEX.lower()}
    for model in models:
        folder = _slug(model.name, top)
        taken = {"reuse.html", "channels.html"}
        items = []
        for rel in model.relations:
            pages[(model.name, rel.name)] = f"{folder}/{_slug(rel.name, taken)}.html"
            items.append(NavItem(rel.name, pages[(model.name, rel.name)]))
        if model.reuse is not None or model.analyses:
            pages[(model.name, REUSE)] = f"{folder}/reuse.html"
            items.append(NavItem("Reuse across relations", pages[(model.name, REUSE)]))
        if model.channels is not None:
            pages[(model.name, CHANNELS)] = f"{folder}/channels.html"
            items.append(NavItem("Channels", pages[(model.name, CHANNELS)]))
        groups.append((model.name, tuple(items)))
    return Site(out, root, models, pages, Nav(INDEX, tuple(groups)))


def _pairs(rel: RelationData) -> str:
    scoring, heldout = rel.meta.get("n_pairs_scoring"), rel.meta.get("n_pairs_heldout")
    if scoring is None and heldout is None:
        return "—"
    few = (isinstance(scoring, int) and scoring < MIN_SCORING) or (
        isinstance(heldout, int) and heldout < MIN_HELDOUT
    )
    return f"{fmt_num(scoring)} + {fmt_num(heldout)}" + (" (few: noisy)" if few else "")


def _prompt_lead(meta: dict[str, Any]) -> str:
    """How the prompts were made (escaped HTML): the formats, and each template's yield if one was chosen."""
    prompt = meta.get("prompt")
    if not isinstance(prompt, dict) or not isinstance(prompt.get("formats"), list):
        template = meta.get("template")
        return f"prompt template <code>{esc(template)}</code>" if isinstance(template, str) else ""
    formats = [f for f in prompt["formats"] if isinstance(f, dict)]
    shown = ", ".join(f"{esc(f.get('shots'))}-shot <code>{esc(f.get('template'))}</code>" for f in formats)
    rows = [r for r in prompt.get("per_format", []) if isinstance(r, dict)]
    if prompt.get("templates") == "best" and len(rows) > 1:
        known = ", ".join(esc(r.get("n_known")) for r in rows)
        return f"prompts {shown}: the best {len(formats)} of {len(rows)} formats tried (facts known: {known})"
    return f"prompts {shown}"


def _facts(rel: RelationData) -> str:
    known, total = rel.meta.get("n_known"), rel.meta.get("n_facts")
    return "—" if known is None and total is None else f"{fmt_num(known)} of {fmt_num(total)}"


def _overview_table(site: Site, model: ModelData) -> str:
    with_eval = any(r.evaluation is not None for r in model.relations)
    header = [
        "relation",
        "facts known",
        "pairs (scoring + held-out)",
        "score method",
        "circuit",
        "edges",
        "nodes",
        "held-out faithfulness [95%]",
    ] + (["CPR [95%]"] if with_eval else [])
    rows = []
    for rel in model.relations:
        link = f'<a href="{site.link(model.name, rel.name, INDEX)}">{esc(rel.name)}</a>'
        c = rel.circuit
        row: list[Any] = [
            link,
            _facts(rel),
            _pairs(rel),
            rel.meta.get("score_method", "—"),
            c.name if c else "—",
            c.n_edges if c else None,
            c.n_nodes if c else None,
            rel.faithfulness,
        ]
        if with_eval:
            row.append(rel.evaluation.interval("cpr") if rel.evaluation else None)
        rows.append(row)
    return table(header, rows, raw=1)


def index_page(site: Site) -> str:
    """The overview: per model a row per relation, links to the pages across relations, the job summary."""
    body = [
        "<h1>Circuit report</h1>",
        f'<p class="lead">Stored results in <code>{esc(site.root.name)}/</code>: '
        f"{len(site.models)} model{'s' if len(site.models) != 1 else ''}. Faithfulness is normalised "
        "(all edges 1, none 0) on held-out prompt pairs, with 95% bootstrap intervals over the pairs.</p>",
    ]
    if not site.models:
        body.append("<p>No stored results were found.</p>")
    for model in site.models:
        body.append(f"<h2>{esc(model.name)}</h2>")
        links = []
        if (model.name, REUSE) in site.pages:
            links.append(f'<a href="{site.link(model.name, REUSE, INDEX)}">Reuse across relations</a>')
        if (model.name, CHANNELS) in site.pages:
            links.append(f'<a href="{site.link(model.name, CHANNELS, INDEX)}">Channels</a>')
        if links:
            body.append("<p>" + " · ".join(links) + "</p>")
        if model.relations:
            body.append(_overview_table(site, model))
        else:
            body.append("<p>No relation results are stored for this model.</p>")
        if model.job is not None and model.job_path is not None:
            job = href(model.job_path, site.out)
            body.append(job_section(model.job, job))
    return page("Circuit report", "\n".join(body), nav=site.nav, current=INDEX, out=site.out)


def _pager(site: Site, model: ModelData, i: int, here: str) -> str:
    rels = model.relations
    prev = (
        f'<a href="{site.link(model.name, rels[i - 1].name, here)}">← {esc(rels[i - 1].name)}</a>'
        if i > 0
        else "<span></span>"
    )
    nxt = (
        f'<a href="{site.link(model.name, rels[i + 1].name, here)}">{esc(rels[i + 1].name)} →</a>'
        if i + 1 < len(rels)
        else "<span></span>"
    )
    return f'<div class="pager">{prev}{nxt}</div>'


def _key_numbers(rel: RelationData) -> str:
    m, c, ev = rel.meta, rel.circuit, rel.evaluation
    facts: list[tuple[str, Any]] = [
        ("model", m.get("model")),
        ("score method", m.get("score_method")),
        ("metric", m.get("metric")),
        ("ablation", m.get("ablation")),
        ("facts known", _facts(rel)),
        ("pairs (scoring + held-out)", _pairs(rel)),
    ]
    if c is not None:
        facts += [
            ("circuit", c.name),
            ("extraction", f"{c.extract_method} by {c.params.get('by', '—')}"),
            ("edges", c.n_edges),
            ("nodes (heads, MLPs)", f"{c.n_nodes} ({c.n_heads}, {c.n_mlps})"),
        ]
    facts.append(("held-out faithfulness [95%]", fmt_interval(rel.faithfulness)))
    target = ev.circuit if ev is not None else {}
    if target.get("target") is not None:
        reached = target.get("target_reached", True)
        facts.append(
            (
                "target (scoring pairs)",
                f"F ≥ {fmt_num(target['target'])}: "
                + (
                    "reached"
                    if reached
                    else f"not reached by the capped search; {fmt_num(target.get('n_edges'))} edges kept"
                ),
            )
        )
    if ev is not None:
        facts += [
            (name, fmt_interval(ev.interval(key)))
            for key, name in (
                ("cpr", "CPR [95%]"),
                ("cmd", "CMD [95%]"),
                ("random_cpr", "random CPR [95%]"),
                ("clean_metric", "clean metric"),
                ("corrupt_metric", "corrupted metric"),
            )
        ]
    items = "".join(
        f"<div><dt>{esc(k)}</dt><dd>{esc(fmt_num(v))}</dd></div>" for k, v in facts if v is not None
    )
    return f'<dl class="facts">{items}</dl>'


def _findings(model: ModelData, relation: str) -> str:
    """The main job's one-line findings for the relation (``job.json``'s row of it), when it has them."""
    rows = (model.job or {}).get("relations")
    for row in rows if isinstance(rows, list) else []:
        if (
            isinstance(row, dict)
            and row.get("relation") == relation
            and isinstance(row.get("findings"), dict)
        ):
            items = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in row["findings"].items() if v)
            return f"<h2>Findings</h2><ul>{items}</ul>" if items else ""
    return ""


def _curve_table(rel: RelationData) -> str:
    ev = rel.evaluation
    if ev is None or not isinstance(ev.data.get("fractions"), list):
        return ""
    intervals = ev.data.get("intervals") or {}
    names = [
        ("signed", "by signed score"),
        ("absolute", "by |score|"),
        ("random", "random"),
        ("hit_at_10", "Hit@10 (signed)"),
    ]
    names = [(k, label) for k, label in names if isinstance(ev.data.get(k), list)]
    rows = []
    for i, fraction in enumerate(ev.data["fractions"]):
        row: list[Any] = [f"{fmt_num(100 * fraction, 1)}%" if isinstance(fraction, int | float) else fraction]
        for key, _ in names:
            curve = intervals.get(key) if isinstance(intervals.get(key), list) else ev.data[key]
            row.append(fmt_interval(curve[i] if i < len(curve) else None))
        rows.append(row)
    return table(["edges kept", *[label for _, label in names]], rows)


def relation_page(site: Site, model: ModelData, i: int) -> str:
    """One relation: key numbers, circuit diagram, faithfulness curve, mechanism figures and files."""
    rel = model.relations[i]
    current = site.pages[(model.name, rel.name)]
    here = (site.out / current).parent
    lead = [esc(rel.lre.get("name", "")) if isinstance(rel.lre.get("name"), str) else ""]
    lead.append(_prompt_lead(rel.meta))
    body = [
        _pager(site, model, i, current),
        f"<h1>{esc(rel.name)}</h1>",
        f'<p class="lead">{esc(model.name)}{"; " if any(lead) else ""}{"; ".join(x for x in lead if x)}</p>',
        _key_numbers(rel),
        _findings(model, rel.name),
        "<h2>Circuit</h2>",
    ]
    if rel.circuit is not None and rel.circuit.diagram is not None:
        body.append(figure_html(rel.circuit.diagram, here))
    elif rel.circuit is not None:
        body.append(missing_diagram_html(rel.circuit.folder / "circuit.json", here, site.root))
    else:
        body.append("<p>No circuit is stored for this relation.</p>")
    if rel.others:
        items = "".join(
            f'<li><a href="{href(o.folder / ("circuit.svg" if o.diagram else "circuit.json"), here)}">'
            f"{esc(o.name)}</a>: {o.n_edges} edges, {o.n_nodes} nodes, faithfulness "
            f"{esc(fmt_interval(o.faithfulness))}</li>"
            for o in rel.others
        )
        body.append(f"<h3>Other stored circuits</h3><ul>{items}</ul>")
    body.append("<h2>Faithfulness</h2>")
    if rel.evaluation is None:
        body.append(
            "<p>No evaluation is stored for this relation; the held-out faithfulness above is the "
            "circuit's own.</p>"
        )
    else:
        if rel.evaluation.figure is not None:
            body.append(figure_html(rel.evaluation.figure, here))
        body.append(_curve_table(rel))
    body += _positions(rel, here)
    body.append("<h2>Mechanisms</h2>")
    body += [figure_html(f, here) for f in rel.mechanisms] or ["<p>No mechanism analyses are stored.</p>"]
    if rel.records:
        body.append(
            "<p>Records without a figure: "
            + ", ".join(f'<a href="{href(p, here)}">{esc(p.name)}</a>' for p in rel.records)
            + "</p>"
        )
    body.append(_files(rel, here))
    body.append(_pager(site, model, i, current))
    return page(f"{rel.name} · {model.name}", "\n".join(body), nav=site.nav, current=current, out=site.out)


def _positions(rel: RelationData, here: Path) -> list[str]:
    """The position-aware circuit: its size and faithfulness against the summed one, figures, a table."""
    pos = rel.positions
    if pos is None:
        return []
    data = pos.data
    c, summed = data.get("circuit") or {}, data.get("summed_circuit") or {}
    out = ["<h2>Position-aware circuit</h2>"]
    if c:
        short = "" if data.get("target_reached", True) else " (the capped search fell short of the target)"
        text = (
            f"The smallest circuit of (edge, role) units reaching F ≥ {fmt_num(data.get('target'))} on the "
            f"scoring pairs keeps {fmt_num(c.get('n_units'))} units on {fmt_num(c.get('n_edges'))} edges"
            f"{short}; held-out F {fmt_interval(c.get('faithfulness_interval'))}."
        )
        if summed:
            text += (
                f" The smallest summed circuit on the same graph keeps {fmt_num(summed.get('n_edges'))} "
                f"edges; held-out F {fmt_interval(summed.get('faithfulness_interval'))}."
            )
        out.append(f"<p>{esc(text)}</p>")
    if pos.circuit is not None and pos.circuit.diagram is not None:
        out.append(figure_html(pos.circuit.diagram, here))
    elif pos.circuit is not None:
        out.append(missing_diagram_html(pos.circuit.folder / "circuit.json", here, rel.folder.parent.parent))
    if pos.figure is not None:
        out.append(figure_html(pos.figure, here))
    rows = [
        [
            f"{fmt_num(100 * r['fraction'])}%",
            fmt_num(r.get("n")),
            fmt_interval(r.get("roles")),
            fmt_interval(r.get("summed")),
            fmt_interval(r.get("difference")),
        ]
        for r in data.get("comparison") or []
        if isinstance(r, dict) and "fraction" in r
    ]
    if rows:
        out.append(
            table(
                [
                    "size (% of units)",
                    "n",
                    "F, n units [95%]",
                    "F, n edges summed [95%]",
                    "difference [95%, paired]",
                ],
                rows,
            )
        )
    return out


def _files(rel: RelationData, here: Path) -> str:
    candidates = [rel.folder / "scored" / "graph.json", rel.folder / "scored" / "relation.json"]
    if rel.circuit is not None:
        candidates += [rel.circuit.folder / "circuit.json", rel.circuit.folder / "circuit.dot"]
    if rel.evaluation is not None:
        candidates.append(rel.evaluation.path)
    if rel.positions is not None:
        candidates.append(rel.positions.path)
    links = [
        f'<a href="{href(p, here)}">{esc(p.relative_to(rel.folder).as_posix())}</a>'
        for p in candidates
        if p.is_file()
    ]
    return "<h2>Files</h2><p>" + " · ".join(links) + "</p>" if links else ""
