"""HTML pieces of the report: escaping, relative links, numbers, tables, figures and the page skeleton.

Every text that reaches a page passes through :func:`esc`, the report's name
for :func:`circuits.draw.quote.markup` (names and numbers come from files
someone else wrote); every link is :func:`href`: relative to the page that
holds it, percent-encoded (so no name can make a ``javascript:`` or any other
scheme) and then escaped, so the report opens from ``file://`` wherever the
results folder is moved. The style sheet is inline and nothing is
fetched: the pages work offline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from circuits.draw.quote import markup
from circuits.uncertainty import Interval

__all__ = ["Nav", "NavItem", "esc", "fmt_interval", "fmt_num", "href", "page", "table", "value_html"]

GENERATOR = "circuits report"

CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --soft:#f6f8fa; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system,"Segoe UI",Helvetica,Arial,sans-serif; color:var(--ink); }
header { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
  padding:.5rem 1.5rem; }
header .site { font-weight:600; margin-right:1rem; }
nav { font-size:13px; }
nav .group { display:flex; flex-wrap:wrap; gap:.15rem .35rem; align-items:baseline; margin:.15rem 0; }
nav .model { font-weight:600; color:var(--muted); margin-right:.3rem; }
nav a { padding:.05rem .4rem; border-radius:4px; text-decoration:none; color:var(--accent); }
nav a:hover { background:var(--soft); }
nav a[aria-current=page] { background:var(--accent); color:#fff; }
main { max-width:1240px; margin:0 auto; padding:1rem 1.5rem 3rem; }
h1 { font-size:1.6rem; margin:.6rem 0 .3rem; }
h2 { font-size:1.2rem; margin:2rem 0 .5rem; padding-bottom:.2rem; border-bottom:1px solid var(--line); }
h3 { font-size:1.02rem; margin:1.2rem 0 .4rem; }
p.lead, .muted { color:var(--muted); }
a { color:var(--accent); }
code { font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:var(--soft);
  padding:.05rem .3rem; border-radius:3px; }
table { border-collapse:collapse; margin:.4rem 0 1rem; font-size:13.5px; }
th, td { border-bottom:1px solid var(--line); padding:.3rem .6rem; text-align:left; vertical-align:top; }
th { background:var(--soft); font-weight:600; }
tbody tr:nth-child(even) td { background:#fbfcfd; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
.scroll { overflow-x:auto; }
dl.facts { display:grid; grid-template-columns:repeat(auto-fill,minmax(230px,1fr)); gap:.4rem 1rem;
  margin:.5rem 0 1rem; }
dl.facts div { border:1px solid var(--line); border-radius:6px; padding:.4rem .6rem; }
dl.facts dt { font-size:12px; color:var(--muted); }
dl.facts dd { margin:0; font-weight:600; font-variant-numeric:tabular-nums; overflow-wrap:anywhere; }
figure { margin:1rem 0 1.6rem; border:1px solid var(--line); border-radius:6px; padding:.6rem; }
figure object, figure img { display:block; width:100%; height:auto; margin:0 auto; }
.pair { display:grid; grid-template-columns:repeat(auto-fit,minmax(420px,1fr)); gap:0 1rem; }
figcaption { font-size:13px; color:var(--muted); margin-top:.5rem; }
figcaption b { color:var(--ink); }
.pager { display:flex; justify-content:space-between; font-size:14px; margin:.3rem 0; }
.kv td:first-child { color:var(--muted); white-space:nowrap; }
.kv td { overflow-wrap:anywhere; max-width:80ch; }
details > summary { cursor:pointer; color:var(--accent); }
"""


@dataclass(frozen=True)
class NavItem:
    """One link of the navigation bar: its label and the page it opens (path under the report)."""

    label: str
    page: str


@dataclass(frozen=True)
class Nav:
    """The navigation bar: the overview link, then one group of links per model."""

    index: str
    groups: tuple[tuple[str, tuple[NavItem, ...]], ...]


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes.

    It is :func:`circuits.draw.quote.markup`: ``&``, ``<``, ``>`` and both quotes
    escaped, control characters other than tab and newline removed.

    >>> esc('<script>alert("x")</script> & co'), esc("it's\\x00")
    ('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co', 'it&#x27;s')
    """
    return markup(value)


def href(target: Path, here: Path) -> str:
    """A link to ``target`` from a page in folder ``here``: relative, percent-encoded and escaped.

    Every character but letters, digits, ``_.-~`` and ``/`` is percent-encoded, ``:`` included, so
    a link made from a name never has a scheme (``javascript:`` or any other) nor a host.

    >>> href(Path("/r/m/a b/c#1.svg"), Path("/r/report/m"))
    '../../m/a%20b/c%231.svg'
    >>> href(Path("/r/javascript:alert(1)/x.svg"), Path("/r")), href(Path('/r/"><b>'), Path("/r"))
    ('javascript%3Aalert%281%29/x.svg', '%22%3E%3Cb%3E')
    """
    rel = Path(os.path.relpath(target, here)).as_posix()
    return esc(quote(rel, safe="/"))


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals (integers as they are), else the text itself; None is a dash.

    >>> fmt_num(0.91234), fmt_num(12), fmt_num(None), fmt_num(float("nan")), fmt_num(True)
    ('0.91', '12', '—', '—', 'yes')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{round(value, digits) + 0.0:.{digits}f}"
    return str(value)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def fmt_interval(data: Any, digits: int = 2) -> str:
    """``value [low, high]`` of an ``{"value", "low", "high"}`` mapping (or a bare number).

    >>> fmt_interval({"value": 0.912, "low": 0.861, "high": 0.954})
    '0.91 [0.86, 0.95]'
    >>> fmt_interval({"value": 0.5, "low": None, "high": None}), fmt_interval(None), fmt_interval(0.25)
    ('0.50', '—', '0.25')
    """
    if isinstance(data, dict):
        value, low, high = data.get("value"), data.get("low"), data.get("high")
        if _finite(value) and _finite(low) and _finite(high):
            return Interval(float(value), float(low), float(high)).format(digits)
        return fmt_num(value if _finite(value) else None, digits)
    return fmt_num(data, digits)


def _cell(value: Any, digits: int) -> tuple[str, bool]:
    """Text and whether it is numeric, for one table cell."""
    if isinstance(value, dict) and "value" in value:
        return fmt_interval(value, digits), True
    if _finite(value) or value is None:
        return fmt_num(value, digits), True
    return str(value), False


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, digits: int = 2, raw: int = 0) -> str:
    """A table; numbers and intervals right-aligned. The first ``raw`` columns hold ready HTML (links).

    >>> table(["a", "b"], [["<x>", 0.5]]) == (
    ...     '<div class="scroll"><table><thead><tr><th>a</th><th class="num">b</th></tr></thead>'
    ...     '<tbody><tr><td>&lt;x&gt;</td><td class="num">0.50</td></tr></tbody></table></div>'
    ... )
    True
    """
    body, numeric = [], [True] * len(header)
    rows = [list(row) for row in rows]
    for row in rows:
        for i, value in enumerate(row):
            numeric[i] = numeric[i] and i >= raw and _cell(value, digits)[1]
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = value if i < raw else esc(_cell(value, digits)[0])
            cells.append(f'<td class="num">{text}</td>' if numeric[i] else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if numeric[i] and rows else f"<th>{esc(h)}</th>"
        for i, h in enumerate(header)
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def value_html(value: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: scalars as text, mappings as key/value tables, lists of mappings as tables.

    A long entry of the outermost mapping is folded (``<details>``) under its size.

    >>> value_html({"a": 1, "b": [1, 2], "c": {"d": "<e>"}}) == (
    ...     '<table class="kv"><tr><td>a</td><td>1</td></tr><tr><td>b</td><td>1, 2</td></tr>'
    ...     '<tr><td>c</td><td><table class="kv"><tr><td>d</td><td>&lt;e&gt;</td></tr></table></td></tr>'
    ...     "</table>"
    ... )
    True
    """
    if isinstance(value, dict | list) and not value:
        return "—"
    if isinstance(value, dict):
        if depth > 3 or set(value) >= {"value", "low", "high"}:
            return esc(_flat(value))
        rows = []
        for k, v in value.items():
            shown = value_html(v, depth + 1)
            if depth == 0 and isinstance(v, dict | list) and len(v) > 8:
                shown = f"<details><summary>{len(v)} entries</summary>{shown}</details>"
            rows.append(f"<tr><td>{esc(k)}</td><td>{shown}</td></tr>")
        return f'<table class="kv">{"".join(rows)}</table>'
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value) and depth <= 3:
            keys = list(dict.fromkeys(k for v in value for k in v))
            if len(keys) <= 12 and all(_is_flat(x) for v in value for x in v.values()):
                return table(keys, [[_flat(v.get(k)) for k in keys] for v in value], digits=3)
            return "".join(
                f"<details><summary>{esc(_label(v, i))}</summary>{value_html(v, depth + 1)}</details>"
                for i, v in enumerate(value)
            )
        return esc(", ".join(_flat(v) for v in value))
    return esc(_flat(value))


def _is_flat(value: Any) -> bool:
    """Whether a value fits a table cell: a scalar, an interval or a short list of scalars."""
    if isinstance(value, dict):
        return set(value) >= {"value", "low", "high"}
    if isinstance(value, list):
        return len(value) <= 4 and all(not isinstance(v, dict | list) for v in value)
    return not isinstance(value, str) or len(value) <= 60


def _label(item: dict[str, Any], i: int) -> str:
    """A mapping's first text value (its name, usually), else its position."""
    return next((v for v in item.values() if isinstance(v, str) and v), f"#{i + 1}")


def _short(value: float) -> str:
    """A float with at most three decimals, trailing zeros dropped.

    >>> _short(12.5), _short(0.123456), _short(3.0), _short(-0.0001)
    ('12.5', '0.123', '3', '0')
    """
    if not math.isfinite(value):
        return "—"
    text = f"{round(value, 3) + 0.0:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _flat(value: Any) -> str:
    """Any JSON value as one line of text.

    >>> _flat({"a": [1, 2.5], "b": {"value": 0.5, "low": 0.4, "high": 0.6}})
    'a: 1, 2.5; b: 0.50 [0.40, 0.60]'
    """
    if isinstance(value, dict):
        if set(value) >= {"value", "low", "high"}:
            return fmt_interval(value)
        return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    if isinstance(value, float):
        return _short(value)
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    return fmt_num(value)


def _nav_html(nav: Nav, current: str, here: Path, out: Path) -> str:
    def link(label: str, page_path: str) -> str:
        mark = ' aria-current="page"' if page_path == current else ""
        return f'<a href="{href(out / page_path, here)}"{mark}>{esc(label)}</a>'

    groups = [f'<div class="group">{link("Overview", nav.index)}</div>']
    for model, items in nav.groups:
        links = " ".join(link(item.label, item.page) for item in items)
        groups.append(f'<div class="group"><span class="model">{esc(model)}</span>{links}</div>')
    return "<nav>" + "".join(groups) + "</nav>"


def page(title: str, body: str, *, nav: Nav, current: str, out: Path) -> str:
    """A whole page: head with the inline style sheet, the navigation bar, then ``body`` (ready HTML)."""
    here = (out / current).parent
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{GENERATOR}">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header><span class="site">Circuit report</span>{_nav_html(nav, current, here, out)}</header>\n'
        f"<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
