"""Hostile and careless names: nothing a circuit, relation or model name holds can change a diagram or a page.

The three escaping functions of :mod:`circuits.draw.quote` are checked against parsers (pydot, Graphviz's
``dot``, ``html.parser``, ``xml.etree``), then the writers end to end: DOT diagrams rendered to SVG by
``dot`` (the layered writer, the role-lane writer, the diff writer and ``circuits render --diff``), the
SVG heatmap, and the HTML report built from a results folder whose names and values are hostile.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pydot
import pytest
from conftest import run_cli, toy_scored

from circuits.circuit import Circuit
from circuits.compare import ReuseMatrix, cluster
from circuits.draw import circuit_dot, diff_dot, heatmap_svg, render, role_dot
from circuits.draw.dot import _id
from circuits.draw.quote import DOT_HTML_MAX, dot_html, dot_string, markup
from circuits.extract import extract
from circuits.relations.roles import ROLES
from circuits.report import build_report
from circuits.store import write_circuit

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
SVG = "{http://www.w3.org/2000/svg}"
INJECTION = 'X\\"]; evil [URL=<javascript:alert(1)> label=PWNED]; //'

HOSTILE = {
    "issue": INJECTION,
    "issue-unescaped": 'X"]; evil [URL="javascript:alert(1)" label=PWNED]; //',
    "trailing-backslash": "name ends in a backslash\\",
    "graphviz-escapes": r"\N \G \E \T \H \L \l \r \n",
    "html-label": "<<TABLE><TR><TD>PWNED</TD></TR></TABLE>> ]; evil [label=PWNED",
    "newlines-controls": "line one\nline two\r\ttab\x00nul\x1besc\x7fdel\x85nel",
    "script": "<script>alert(1)</script>",
    "img": '"><img src=x onerror=alert(1)>',
    "attribute": "' onmouseover='alert(1)' x='",
    "entities": "&amp; &lt;b&gt; &#60;script&#62; &",
    "quotes": 'it\'s "quoted" `twice`',
    "comment": "/* a */ // b # c -> d -- e",
    "unicode": "ünïcødé 日本語 🙂 \u202eevil\u202c",
    "surrogate": "lone \ud800 surrogate \uffff",
    "javascript": "javascript:alert(document.cookie)",
    "spaces": "  two  spaces  ",
    "long": '<a href="javascript:x">"\\' * 400,
}
NAMES = list(HOSTILE.values())
IDS = list(HOSTILE)
_BLANK = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_GONE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def dot_unquote(quoted: str) -> str:
    """A quoted DOT string as Graphviz reads a label: the string, then ``\\\\``, ``\\n`` and ``&amp;``."""
    assert quoted.startswith('"') and quoted.endswith('"'), quoted
    out, body, i = [], quoted[1:-1], 0
    while i < len(body):
        if body[i] == "\\":
            nxt = body[i + 1]  # a lone trailing backslash would escape the closing quote
            out.append({"n": "\n", "\\": "\\", '"': '"'}[nxt])  # nothing else is left for Graphviz to read
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out).replace("&amp;", "&")


def dot_svg(text: str) -> ET.Element:
    """DOT text rendered by Graphviz's ``dot``, which must succeed."""
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode("utf-8"), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return ET.fromstring(done.stdout)


def node_texts(root: ET.Element) -> dict[str, str]:
    """Each drawn node's text lines (non-breaking spaces as spaces), by node name."""
    out = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            lines = ["".join(t.itertext()).replace("\xa0", " ") for t in g.iter(f"{SVG}text")]
            out[g.find(f"{SVG}title").text] = "\n".join(lines)  # type: ignore[union-attr]
    return out


class Page(HTMLParser):
    """Start tags with their attributes, and the text, of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return "".join(self.data)


def parse_html(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


# --------------------------------------------------------------------------- the three functions


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_dot_string_is_one_token_that_reads_back_as_the_name(name: str) -> None:
    quoted = dot_string(name)
    assert re.fullmatch(r'"([^"\\\n]|\\[\\"n])*"', quoted, flags=re.S), quoted  # only \\, \" and \n escapes
    graphs = pydot.graph_from_dot_data(f"digraph G {{ a [label={quoted} tooltip={quoted}]; b; a -> b; }}")
    assert graphs is not None and len(graphs) == 1
    (graph,) = graphs
    assert sorted(n.get_name() for n in graph.get_nodes()) == ["a", "b"]
    assert len(graph.get_edges()) == 1
    node = graph.get_node("a")[0]
    assert dot_unquote(node.get("label")) == _BLANK.sub(" ", name)
    assert set(node.get_attributes()) == {"label", "tooltip"}


@needs_dot
@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_graphviz_shows_a_dot_string_and_an_html_label_as_the_text_itself(name: str) -> None:
    table = f'<<TABLE><TR><TD TITLE="{dot_html(name)}">{dot_html(name)}</TD></TR></TABLE>>'
    root = dot_svg(
        f"digraph G {{ a [label={dot_string(name)}]; b [shape=plaintext label={table}]; a -> b; }}"
    )
    texts = node_texts(root)
    assert sorted(texts) == ["a", "b"]  # no node was added
    assert texts["a"] == _BLANK.sub(" ", name)  # backslashes, \N, entities and quotes kept as written
    cut = name if len(name) <= DOT_HTML_MAX else name[: DOT_HTML_MAX - 1] + "…"  # a long text is cut
    assert texts["b"] == _GONE.sub("", cut.replace("\t", " ").replace("\n", " "))
    assert not [e for e in root.iter() if {"href", "{http://www.w3.org/1999/xlink}href"} & set(e.attrib)]


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_markup_is_text_to_html_and_xml_parsers(name: str) -> None:
    clean = _GONE.sub("", name)
    page = parse_html(f"<p title=\"{markup(name)}\" class='{markup(name)}'>{markup(name)}</p>")
    assert page.tags == [("p", [("title", clean), ("class", clean)])]
    assert page.text == clean
    element = ET.fromstring(f"<t a=\"{markup(name)}\" b='{markup(name)}'>{markup(name)}</t>")
    assert list(element) == [] and element.text == (clean or None)
    assert element.get("a") == element.get("b") == clean.replace("\t", " ").replace("\n", " ")
    assert not set("<>\"'") & set(markup(name)) and not _GONE.search(markup(name))
    assert markup(name).encode("utf-8")  # never a lone surrogate


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_dot_html_holds_no_markup_and_no_graphviz_escape(name: str) -> None:
    text = dot_html(name)
    assert not set("<>\"'\n\t") & set(text) and not _GONE.search(text)
    assert "\\" not in text.replace("\\\\", "")  # every backslash doubled: Graphviz reads \N in HTML labels
    assert len(text.encode("utf-8")) <= 6 * DOT_HTML_MAX  # a few fit the 16384 bytes of one HTML-like label


@pytest.mark.parametrize("name", NAMES, ids=IDS)
def test_node_ids_are_plain_whatever_the_name(name: str) -> None:
    assert re.fullmatch(r"n_[A-Za-z0-9_]*", _id(name))


def test_quote_does_not_import_torch() -> None:
    code = "import sys, circuits.draw.quote; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- diagrams end to end


def toy_circuit(name: str) -> Circuit:
    """A small circuit of the toy graph whose name, model and relation are ``name``."""
    circuit = extract(toy_scored(), "top-n", size=8)
    return dataclasses.replace(
        circuit, name=name, provenance={**circuit.provenance, "model": name, "relation": name}
    )


def with_roles(c: Circuit) -> Circuit:
    """The same circuit, position-aware: each edge kept at one role, the roles in turn (logits at last)."""
    roles = {
        e: {"last" if e[1] == "logits" else ROLES[i % len(ROLES)]: s}
        for i, (e, s) in enumerate(c.edges.items())
    }
    return dataclasses.replace(c, roles=roles)


def svg_counts(root: ET.Element) -> Counter[str]:
    return Counter(str(g.get("class")) for g in root.iter(f"{SVG}g") if g.get("class") in ("node", "edge"))


def assert_nothing_injected(root: ET.Element) -> None:
    """No link, and no attribute anywhere that carries the injected link or label."""
    for element in root.iter():
        assert not {k for k in element.attrib if k.endswith("href")}, element.attrib
        for value in element.attrib.values():
            assert "javascript:" not in value and "PWNED" not in value, (element.tag, value)


def rendered(graph: pydot.Dot, stem: Path) -> ET.Element:
    """``graph`` written by :func:`render` (DOT and SVG); the DOT file it left renders again with ``dot``."""
    result = render(graph, stem, formats=("svg",))
    assert [p.suffix for p in result.written] == [".dot", ".svg"]
    again = subprocess.run(["dot", "-Tsvg", str(stem.with_suffix(".dot"))], capture_output=True, check=False)
    assert again.returncode == 0, again.stderr
    return ET.parse(stem.with_suffix(".svg")).getroot()


DRAWINGS = {
    "circuit_dot": lambda name: circuit_dot(toy_circuit(name)),
    "circuit_dot-qkv": lambda name: circuit_dot(toy_circuit(name), color_by="qkv"),
    "role_dot": lambda name: role_dot(with_roles(toy_circuit(name))),
    "diff_dot": lambda name: diff_dot(toy_circuit(name), extract(toy_scored(seed=1), "top-n", size=8)),
    "diff_dot-same-names": lambda name: diff_dot(toy_circuit(name), toy_circuit(name)),
}


@needs_dot
@pytest.mark.parametrize("name", NAMES, ids=IDS)
@pytest.mark.parametrize("draw", DRAWINGS.values(), ids=list(DRAWINGS))
def test_a_hostile_circuit_draws_the_same_diagram(draw, name: str, tmp_path: Path) -> None:
    plain = rendered(draw("plain"), tmp_path / "plain")
    hostile = draw(name)
    graphs = pydot.graph_from_dot_data(hostile.to_string())
    assert graphs is not None and len(graphs) == 1
    root = rendered(hostile, tmp_path / "hostile")
    assert svg_counts(root) == svg_counts(plain)
    assert sorted(node_texts(root)) == sorted(node_texts(plain))  # the same node names
    assert_nothing_injected(root)
    shown = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text")).replace("\xa0", " ")
    for line in _BLANK.sub(" ", name).split("\n"):  # the name is shown as it is (the legend joins lines)
        assert line.strip() in shown


@needs_dot
def test_render_diff_of_circuits_with_hostile_names(tmp_path: Path, capsys) -> None:
    a, b = toy_circuit(INJECTION), toy_circuit(HOSTILE["trailing-backslash"])
    write_circuit(a, tmp_path / "a.circuit.json")
    write_circuit(dataclasses.replace(b, edges=dict(list(b.edges.items())[:5])), tmp_path / "b.circuit.json")
    code, out, err = run_cli(
        capsys, "render", tmp_path / "a.circuit.json", "--diff", tmp_path / "b.circuit.json"
    )
    assert code == 0, err
    stem = tmp_path / "a.circuit-vs-b.circuit"
    assert f"wrote {stem}.dot" in out and f"wrote {stem}.svg" in out
    again = subprocess.run(["dot", "-Tsvg", f"{stem}.dot"], capture_output=True, check=False)
    assert again.returncode == 0, again.stderr
    root = ET.parse(f"{stem}.svg").getroot()
    assert_nothing_injected(root)
    assert "evil" not in node_texts(root) and all(
        n.startswith(("n_", "axis_", "legend")) for n in node_texts(root)
    )


# --------------------------------------------------------------------------- the heatmap


@pytest.mark.parametrize("clustered", [False, True])
def test_heatmap_with_hostile_relation_names_is_the_same_svg(clustered: bool) -> None:
    def draw(names: list[str], title: str) -> ET.Element:
        values = np.linspace(0, 1, len(names) ** 2).reshape(len(names), len(names))
        m = ReuseMatrix(names, (values + values.T) / 2, title)
        tips = [[f"{a} vs {b}" for b in names] for a in names]
        m = dataclasses.replace(m, extra={"tooltips": tips})
        return ET.fromstring(heatmap_svg(m, title=title, clustering=cluster(m) if clustered else None))

    plain = draw([f"r{i}" for i in range(len(NAMES))], "plain")
    root = draw(NAMES, INJECTION)
    assert Counter(e.tag for e in root.iter()) == Counter(e.tag for e in plain.iter())
    assert [sorted(e.attrib) for e in root.iter()] == [sorted(e.attrib) for e in plain.iter()]
    texts = {"".join(e.itertext()) for e in root.iter(f"{SVG}text")}
    assert {_GONE.sub("", n) for n in NAMES} <= texts
    assert _GONE.sub("", INJECTION) in texts


# --------------------------------------------------------------------------- the report

GALLERY_RELATION = Path(__file__).resolve().parents[1] / "graphs" / "smollm2-135m" / "country_capital_city"
TINY_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10"/></svg>'
)


def folder_safe(name: str) -> bool:
    try:
        return "/" not in name and "\x00" not in name and len(name.encode("utf-8")) < 200
    except UnicodeEncodeError:
        return False


FOLDER_NAMES = [n for n in NAMES if folder_safe(n)]


def write_results(root: Path, folder_names: list[str], value: str) -> None:
    """A results folder: model and relation folders named ``folder_names``, every stored text ``value``."""
    model = root / folder_names[0]
    for i, name in enumerate(folder_names):
        rel = model / name
        (rel / "scored").mkdir(parents=True)
        meta = json.loads((GALLERY_RELATION / "scored" / "graph.json").read_text())
        meta.update(model=value, relation=value, template=value, score_method=value, metric=value)
        (rel / "scored" / "graph.json").write_text(json.dumps(meta))
        lre = json.loads((GALLERY_RELATION / "scored" / "relation.json").read_text())
        (rel / "scored" / "relation.json").write_text(json.dumps({**lre, "name": value}))
        circuit = json.loads((GALLERY_RELATION / "top-n-signed-150" / "circuit.json").read_text())
        circuit["graph"]["name"] = value
        folder = rel / (name if i == 0 else "top-n")
        folder.mkdir()
        (folder / "circuit.json").write_text(json.dumps(circuit))
        (folder / "circuit.svg").write_text(TINY_SVG)
        (rel / "mechanisms").mkdir()
        (rel / "mechanisms" / "knockout.json").write_text(json.dumps({"n_prompts": 3, "effect": value}))
        (rel / "mechanisms" / "knockout.svg").write_text(TINY_SVG)
    pair = {"a": value, "b": value, "value": value, "head_share": value, "noise": {"relative": value}}
    job = {
        "seconds": 1.5,
        "stages_run": value,
        "stages_reused": value,
        value: value,
        "reuse": {
            "most_similar": pair,
            "least_similar": {**pair, "b": value},
            "core": {"n_edges": value, "k": value, "heads": [value]},
        },
        "channels": [{"relation": value, "auc_component": value}],
        "relations": [{"relation": folder_names[0], "findings": {value: value}}],
    }
    (model / "job.json").write_text(json.dumps(job))
    reuse = model / "reuse"
    reuse.mkdir()
    report = {
        "metric": value,
        "relations": [value, value],
        "core": {"heads": [value], "k": value},
        "most_similar": pair,
        "clustering": {"linkage_method": value},
    }
    (reuse / "report.json").write_text(json.dumps(report))
    (reuse / "heatmap.svg").write_text(TINY_SVG)
    (reuse / f"{folder_names[-1]}.csv").write_text("a,b\n1,2\n")
    with (reuse / "noise.csv").open("w", newline="") as handle:
        # no lone surrogate (a file's text cannot hold one), no line break (read_csv splits fields at them)
        text = " ".join(re.sub("[\ud800-\udfff]", "", value).splitlines())
        csv.writer(handle).writerows([["a", "b", text], [text, text, "0.5"], ["x", "y", "z"]])
    (model / "channels").mkdir()
    channels = {
        "channels": [{"writer": value, "reader": value, "kind": value, "z": 1.0}],
        "validation": [{"relation": value, "auc_whole": value}],
        "settings": {value: value},
        "overlay": {"relation": value, "circuit": value},
    }
    (model / "channels" / "channels.json").write_text(json.dumps(channels))
    (model / "channels" / "overlay.svg").write_text(TINY_SVG)


def structure(out: Path) -> Counter[tuple[tuple[str, tuple[str, ...]], ...]]:
    """The pages' start tags with their attribute names, page by page (in any order: names sort apart)."""
    pages = [parse_html(p.read_text("utf-8")) for p in out.rglob("*.html")]
    return Counter(tuple((t, tuple(a for a, _ in attrs)) for t, attrs in page.tags) for page in pages)


def test_a_report_of_hostile_names_and_values_has_nothing_injected(tmp_path: Path) -> None:
    value = "\n".join([*NAMES, "\ud800"])  # every hostile text at once, in every stored text field
    order = sorted(FOLDER_NAMES)  # plain names in the same order, so each page has its plain twin
    plain_names = [f"plain{order.index(name):02d}" for name in FOLDER_NAMES]
    write_results(tmp_path / "plain", plain_names, ("plain text " * len(value))[: len(value)])  # as long
    write_results(tmp_path / "hostile", FOLDER_NAMES, value)
    plain = build_report(tmp_path / "plain").parent
    index = build_report(tmp_path / "hostile")
    out = index.parent
    assert structure(out) == structure(plain)  # the same elements and attributes, page by page
    shown = ""
    for page in sorted(out.rglob("*.html")):
        parsed = parse_html(page.read_text("utf-8"))
        for tag, attrs in parsed.tags:
            assert tag not in ("script", "iframe", "embed", "base", "form", "meta") or (tag, attrs) in [
                ("meta", [("charset", "utf-8")]),
                ("meta", [("name", "viewport"), ("content", "width=device-width, initial-scale=1")]),
                ("meta", [("name", "generator"), ("content", "circuits report")]),
            ], (page, tag, attrs)
            assert not [a for a, _ in attrs if a.startswith("on")], (page, tag, attrs)
            for a, link in attrs:
                if a in ("href", "src", "data"):
                    parts = urlsplit(link or "")
                    assert not parts.scheme and not parts.netloc and not (link or "").startswith("/"), link
                    assert (page.parent / unquote(parts.path)).exists(), (page, link)
        shown += parsed.text
    for name in FOLDER_NAMES:  # relation, model and circuit folder names are shown as they are
        assert _GONE.sub("", name) in shown
    assert _GONE.sub("", value) in shown
