"""The static HTML report (``circuits report``): pages, links, escaping, optional parts, errors, determinism.

Fast and browser-free; ``test_report_browser.py`` opens the pages in Chromium.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from circuits.report import build_report
from circuits.vocab import InputError

GALLERY = Path(__file__).resolve().parents[1] / "graphs"
MODEL = "smollm2-135m"
SOURCE = GALLERY / MODEL / "country_capital_city"
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200"><rect width="320" height="200" fill="#fff"/>'
    '<path d="M20 180 C 80 20, 160 160, 300 30" stroke="#369" stroke-width="3" fill="none"/>'
    '<circle cx="160" cy="100" r="30" fill="#e66"/><text x="20" y="30" font-size="16">a curve</text></svg>'
)


class Links(HTMLParser):
    """Every ``href``, ``src`` and ``data`` attribute of a page (unescaped), with its tag."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "data") and value is not None:
                self.found.append((tag, name, value))


def links_of(page: Path) -> list[tuple[str, str, str]]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def target_of(page: Path, link: str) -> Path:
    """The file a relative link of ``page`` points at (an absolute link or a URL fails the test)."""
    parts = urlsplit(link)
    assert not parts.scheme and not parts.netloc and not link.startswith("/"), (
        f"{page}: non-relative {link!r}"
    )
    return (page.parent / unquote(parts.path)).resolve()


def pages_of(out: Path) -> list[Path]:
    return sorted(out.rglob("*.html"))


def snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def gallery_report(tmp_path_factory):
    """The report of the committed gallery, built into a temporary folder."""
    return build_report(GALLERY, out=tmp_path_factory.mktemp("gallery") / "report")


def make_results(root: Path, relation: str = "rel_a", circuit: str = "top-n-signed-150") -> Path:
    """A small results folder: one relation's scored metadata and circuit, copied from the gallery."""
    folder = root / MODEL / relation
    (folder / "scored").mkdir(parents=True)
    for name in ("graph.json", "relation.json"):
        shutil.copy(SOURCE / "scored" / name, folder / "scored" / name)
    shutil.copytree(SOURCE / "top-n-signed-150", folder / circuit)
    return folder


def interval(value: float, half: float = 0.05) -> dict[str, float]:
    return {"value": value, "low": round(value - half, 6), "high": round(value + half, 6)}


def write_evaluation(folder: Path, circuit: str, faithfulness: dict[str, float]) -> None:
    """An ``evaluation.json`` shaped like ``Evaluation.as_dict()`` plus the evaluated circuit, and its figure."""
    fractions = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    curve = [round(0.1 * i, 3) for i in range(10)]
    curves = {k: curve for k in ("signed", "absolute", "random", "hit_at_10")}
    data = {
        "clean_metric": 5.0,
        "corrupt_metric": -1.0,
        "fractions": fractions,
        **curves,
        "cpr": 0.8,
        "cmd": 0.2,
        "random_cpr": 0.1,
        "n_pairs": 10,
        "n_edges": 70651,
        "extra": {"split": "heldout"},
        "intervals": {
            **{k: [interval(v) for v in curve] for k in curves},
            "cpr": interval(0.8),
            "cmd": interval(0.2),
            "random_cpr": interval(0.1),
            "clean_metric": interval(5.0),
            "corrupt_metric": interval(-1.0),
            "n_boot": 200,
            "seed": 0,
        },
        "circuit": {"name": circuit, "n_edges": 150, "target": None, "faithfulness": faithfulness},
    }
    (folder / "evaluation").mkdir()
    (folder / "evaluation" / "evaluation.json").write_text(json.dumps(data))
    (folder / "evaluation" / "evaluation.svg").write_text(SVG)


# --------------------------------------------------------------------------- the gallery


def gallery_relations() -> list[str]:
    return sorted(p.name for p in (GALLERY / MODEL).iterdir() if (p / "scored" / "graph.json").is_file())


def shown_circuit(relation: str) -> Path:
    """The circuit folder the report shows: the evaluated one, else the only (or first) one."""
    folder = GALLERY / MODEL / relation
    evaluation = folder / "evaluation" / "evaluation.json"
    if evaluation.is_file():
        return folder / json.loads(evaluation.read_text())["circuit"]["name"]
    return sorted(p.parent for p in folder.glob("*/circuit.json"))[0]


def test_gallery_report_has_every_page(gallery_report):
    out = gallery_report.parent
    relations = gallery_relations()
    assert len(relations) >= 10 and "country_capital_city" in relations
    expected = {"index.html", f"{MODEL}/reuse.html", *(f"{MODEL}/{r}.html" for r in relations)}
    if (GALLERY / MODEL / "channels").is_dir():
        expected.add(f"{MODEL}/channels.html")
    assert {p.relative_to(out).as_posix() for p in pages_of(out)} == expected
    assert not list(out.parent.glob(".report.*")), "a staging folder was left behind"


def test_gallery_links_are_relative_and_resolve(gallery_report):
    out = gallery_report.parent
    for page in pages_of(out):
        found = links_of(page)
        assert found, page
        for tag, attr, link in found:
            assert target_of(page, link).is_file(), f"{page.name}: <{tag} {attr}={link!r}> points nowhere"
        text = page.read_text(encoding="utf-8")
        assert "http:" not in text and "https:" not in text and "<script" not in text and "<link" not in text


def test_gallery_report_refers_to_the_stored_figures_and_stays_small(gallery_report):
    out = gallery_report.parent
    assert not list(out.rglob("*.svg")), "figures are linked, not copied"
    assert sum(p.stat().st_size for p in out.rglob("*")) < 1_000_000
    for relation in gallery_relations():
        page = out / MODEL / f"{relation}.html"
        targets = {(tag, target_of(page, link)) for tag, _, link in links_of(page)}
        assert ("object", shown_circuit(relation) / "circuit.svg") in targets
        for svg in (GALLERY / MODEL / relation / "mechanisms").glob("*.svg"):
            assert ("img", svg) in targets
    reuse = out / MODEL / "reuse.html"
    objects = {target_of(reuse, link).name for tag, _, link in links_of(reuse) if tag == "object"}
    assert {"heatmap.svg", "heatmap_relative.svg", "heads.svg", "cross_task.svg", "core.svg"} <= objects


def test_gallery_overview_numbers_and_navigation(gallery_report):
    out = gallery_report.parent
    index = gallery_report.read_text(encoding="utf-8")
    for relation in gallery_relations():
        folder = GALLERY / MODEL / relation
        evaluation = folder / "evaluation" / "evaluation.json"
        if evaluation.is_file():
            iv = json.loads(evaluation.read_text())["circuit"]["faithfulness"]
        else:
            circuit = json.loads((shown_circuit(relation) / "circuit.json").read_text())["graph"]
            iv = circuit["params"]["faithfulness_interval"]
        meta = json.loads((folder / "scored" / "graph.json").read_text())
        row = index[index.index("<table") :].split(f">{relation}</a>")[1].split("</tr>")[0]
        assert f"{iv['value']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]" in row
        assert f"{meta['n_known']} of {meta['n_facts']}" in row
        assert f"{meta['n_pairs_scoring']} + {meta['n_pairs_heldout']}" in row
    assert ("CPR [95%]" in index) == any((GALLERY / MODEL).glob("*/evaluation/evaluation.json"))
    relations = gallery_relations()
    relation_pages = [out / MODEL / f"{r}.html" for r in relations]
    for page in pages_of(out):
        reached = {target_of(page, link) for _, _, link in links_of(page)}
        assert set(relation_pages) <= reached | {page.resolve()}, f"{page.name}: the nav misses a page"
    i = relations.index("country_capital_city")
    page = (out / MODEL / "country_capital_city.html").read_text(encoding="utf-8")
    assert f"← {relations[i - 1]}</a>" in page and f">{relations[i + 1]} →" in page
    reuse = (out / MODEL / "reuse.html").read_text(encoding="utf-8")
    assert "Split-half ceilings" in reuse and "most similar" in reuse and "Final-layer suppression" in reuse


def test_building_twice_gives_identical_files(tmp_path):
    out = tmp_path / "report"
    build_report(GALLERY, out=out)
    first = snapshot(out)
    build_report(GALLERY, out=out)
    assert snapshot(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


# --------------------------------------------------------------------------- synthetic folders


def test_names_and_texts_from_files_are_escaped(tmp_path):
    nasty = "<script>alert(1)</script>&x"
    folder = make_results(tmp_path, relation="r<script>&amp", circuit="c&<b>")
    data = json.loads((folder / "c&<b>" / "circuit.json").read_text())
    data["graph"]["name"] = nasty
    (folder / "c&<b>" / "circuit.json").write_text(json.dumps(data))
    meta = json.loads((folder / "scored" / "graph.json").read_text())
    meta["template"] = f"{nasty} {{}}"
    (folder / "scored" / "graph.json").write_text(json.dumps(meta))
    (folder / "mechanisms").mkdir()
    (folder / "mechanisms" / "knockout.json").write_text(json.dumps({"n_prompts": 3, "effect": nasty}))
    (folder / "mechanisms" / "knockout.svg").write_text(SVG)
    (tmp_path / MODEL / "job.json").write_text(json.dumps({"note": nasty, "stages": [{"name": nasty}]}))
    index = build_report(tmp_path)
    assert index == tmp_path.resolve() / "report" / "index.html"
    for page in pages_of(index.parent):
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and "<b>" not in text, page
        for _, _, link in links_of(page):
            assert target_of(page, link).exists(), (page, link)
    page = next(p for p in pages_of(index.parent) if p.name != "index.html")
    text = page.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;x" in text and "r&lt;script&gt;&amp;amp" in text
    assert "&lt;script&gt;" in index.read_text(encoding="utf-8")  # the job summary


def test_missing_optional_parts_still_build(tmp_path):
    folder = make_results(tmp_path)
    (folder / "top-n-signed-150" / "circuit.svg").unlink()
    index = build_report(tmp_path, out=tmp_path / "site")
    out = index.parent
    assert {p.relative_to(out).as_posix() for p in pages_of(out)} == {"index.html", f"{MODEL}/rel_a.html"}
    page = (out / MODEL / "rel_a.html").read_text(encoding="utf-8")
    assert (
        "No evaluation is stored" in page and "No mechanism analyses" in page and "No diagram stored" in page
    )
    assert "Reuse" not in index.read_text(encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No stored results" in build_report(empty).read_text(encoding="utf-8")


def test_the_report_moves_with_its_results_folder(tmp_path):
    make_results(tmp_path / "a")
    (tmp_path / "a" / MODEL / "rel_a" / "mechanisms").mkdir()
    (tmp_path / "a" / MODEL / "rel_a" / "mechanisms" / "dla.svg").write_text(SVG)
    build_report(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "elsewhere")
    pages = pages_of(tmp_path / "elsewhere" / "report")
    assert len(pages) == 2
    for page in pages:
        for _, _, link in links_of(page):
            assert target_of(page, link).is_file(), (page, link)


def test_several_models_get_a_section_and_a_folder_each(tmp_path):
    make_results(tmp_path)
    shutil.copytree(tmp_path / MODEL, tmp_path / "gpt2")
    out = build_report(tmp_path).parent
    assert {p.relative_to(out).as_posix() for p in pages_of(out)} == {
        "index.html",
        "gpt2/rel_a.html",
        f"{MODEL}/rel_a.html",
    }
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "<h2>gpt2</h2>" in index and f"<h2>{MODEL}</h2>" in index
    page = out / "gpt2" / "rel_a.html"
    reached = {target_of(page, link) for _, _, link in links_of(page)}
    assert out / MODEL / "rel_a.html" in reached  # the nav bar lists every model's relations


def test_evaluation_channels_and_job_are_shown(tmp_path):
    folder = make_results(tmp_path, circuit="top-n-signed-150")
    shutil.copytree(folder / "top-n-signed-150", folder / "top-n-signed-80")
    write_evaluation(folder, "top-n-signed-80", interval(0.91, 0.05) | {"low": 0.86, "high": 0.95})
    channels = tmp_path / MODEL / "channels"
    channels.mkdir()
    validation = {
        "relation": "rel_a",
        "n_edges": 900,
        "n_important": 9,
        "top_fraction": 0.01,
        "auc_whole": 0.71,
        "auc_component": 0.83,
        "precision_whole": 0.2,
        "precision_component": 0.4,
        "score_method": "eap-ig",
        "n_pairs": 14,
    }
    record = {
        "model": MODEL,
        "channels": [{"writer": "a1.h0", "reader": "a5.h2<k>", "kind": "k", "z": 7.5, "rank": 2}],
        "validation": [validation],
        "overlay": {"relation": "rel_a", "circuit": "top-n-signed-80"},
    }
    (channels / "channels.json").write_text(json.dumps(record))
    shutil.copy(folder / "top-n-signed-150" / "circuit.svg", channels / "overlay.svg")
    job = {
        "model": MODEL,
        "seconds": {"score": 12.5},
        "stages": {f"s{i}": {"seconds": i} for i in range(12)},
        "relations": [{"relation": "rel_a", "findings": {"knockout": "a <b> drop", "dla": ""}}],
    }
    (tmp_path / MODEL / "job.json").write_text(json.dumps(job))
    (tmp_path / MODEL / "stages").mkdir()
    (tmp_path / MODEL / "stages" / "circuit__rel_a.json").write_text("{}")
    index = build_report(tmp_path)
    out = index.parent
    assert [p.name for p in pages_of(out)] == [
        "index.html",
        "channels.html",
        "rel_a.html",
    ]  # "stages" is no relation
    overview = index.read_text(encoding="utf-8")
    assert (
        "0.91 [0.86, 0.95]" in overview and "0.80 [0.75, 0.85]" in overview and "top-n-signed-80" in overview
    )
    assert (
        "What the main job found" in overview
        and "Every field of job.json" in overview
        and "<td>12.5</td>" in overview
        and "<summary>12 entries</summary>" in overview
    )
    page = out / MODEL / "rel_a.html"
    text = page.read_text(encoding="utf-8")
    assert "Other stored circuits" in text and "Faithfulness curve" in text and "CMD [95%]" in text
    assert "<li><b>knockout</b>: a &lt;b&gt; drop</li>" in text and "<b>dla</b>" not in text
    targets = {target_of(page, link) for _, _, link in links_of(page)}
    assert folder / "evaluation" / "evaluation.svg" in targets
    assert (
        folder / "top-n-signed-80" / "circuit.svg" in targets
        and folder / "top-n-signed-150" / "circuit.svg" in targets
    )
    channels_page = (out / MODEL / "channels.html").read_text(encoding="utf-8")
    assert (
        "0.830" in channels_page
        and "a5.h2&lt;k&gt;" in channels_page
        and "top-n-signed-80 of rel_a" in channels_page
    )


def test_the_newest_circuit_in_the_manifest_is_shown_without_an_evaluation(tmp_path):
    folder = make_results(tmp_path, circuit="b-old")
    shutil.copytree(folder / "b-old", folder / "a-new")
    entries = {
        f"{MODEL}/rel_a/b-old": {"date": "2026-01-01T00:00:00+00:00"},
        f"{MODEL}/rel_a/a-new": {"date": "2026-02-01T00:00:00+00:00"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"entries": entries}))
    text = (build_report(tmp_path).parent / MODEL / "rel_a.html").read_text(encoding="utf-8")
    assert "Circuit a-new" in text and ">b-old</a>" in text


@pytest.mark.parametrize(
    "where",
    [
        "smollm2-135m/rel_a/scored/graph.json",
        "smollm2-135m/rel_a/top-n-signed-150/circuit.json",
        "smollm2-135m/rel_a/evaluation/evaluation.json",
        "smollm2-135m/rel_a/mechanisms/dla.json",
        "smollm2-135m/reuse/report.json",
        "smollm2-135m/channels/channels.json",
        "smollm2-135m/job.json",
        "manifest.json",
    ],
)
def test_malformed_json_is_an_input_error_naming_the_file(tmp_path, where):
    make_results(tmp_path)
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"broken": ')
    with pytest.raises(InputError, match=re.escape(str(path.resolve())) + ": malformed JSON"):
        build_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_refuses_to_replace_what_is_not_a_report(tmp_path):
    make_results(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a report"):
        build_report(tmp_path, out=tmp_path / "notes")
    with pytest.raises(InputError, match="cannot hold the results"):
        build_report(tmp_path, out=tmp_path)
    with pytest.raises(InputError, match="no such results folder"):
        build_report(tmp_path / "absent")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_command_prints_the_index_and_its_url(tmp_path):
    from circuits.cli import report

    make_results(tmp_path)
    parser = argparse.ArgumentParser(prog="circuits")
    sub = parser.add_subparsers(dest="command", required=True)
    report.register(
        lambda name, help_text, *parents: sub.add_parser(name, help=help_text, parents=list(parents))
    )
    args = parser.parse_args(["report", str(tmp_path), "--out", str(tmp_path / "site")])
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert args.func(args) == 0
    index = (tmp_path / "site" / "index.html").resolve()
    assert printed.getvalue().split() == [str(index), index.as_uri()]


def test_the_report_does_not_import_torch():
    code = f"""
        import json, sys, tempfile
        import circuits.cli.report
        from circuits.report import build_report
        build_report({str(GALLERY)!r}, out=tempfile.mkdtemp() + "/report")
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"torch": False}


def test_the_relation_page_says_how_its_prompts_were_made_and_flags_few_pairs(tmp_path):
    folder = make_results(tmp_path)
    meta = json.loads((folder / "scored" / "graph.json").read_text())
    meta.update(
        {
            "n_pairs_scoring": 9,
            "n_pairs_heldout": 6,
            "prompt": {
                "templates": "best",
                "shots": None,
                "formats": [{"template": "<b>{} is in</b>", "shots": 1}],
                "per_format": [
                    {"template": "a {}", "shots": 0, "n_known": 11},
                    {"template": "b {}", "shots": 1, "n_known": 23},
                ],
            },
        }
    )
    (folder / "scored" / "graph.json").write_text(json.dumps(meta))
    index = build_report(tmp_path, out=tmp_path / "site")
    page = (index.parent / MODEL / "rel_a.html").read_text(encoding="utf-8")
    assert (
        "prompts 1-shot <code>&lt;b&gt;{} is in&lt;/b&gt;</code>: the best 1 of 2 formats tried (facts known: 11, 23)"
        in page
    )
    assert "9 + 6 (few: noisy)" in index.read_text(encoding="utf-8")
