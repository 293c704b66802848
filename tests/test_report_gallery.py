"""The HTML report of the committed gallery (``graphs/``): every page, links, figures, numbers, determinism.

The reports of small synthetic results folders are in ``test_report_folders.py``; ``test_report_browser.py``
opens the pages in Chromium.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_helpers import GALLERY, MODEL, links_of, pages_of, snapshot, target_of

from circuits.report import build_report


@pytest.fixture(scope="module")
def gallery_report(tmp_path_factory):
    """The report of the committed gallery, built into a temporary folder."""
    return build_report(GALLERY, out=tmp_path_factory.mktemp("gallery") / "report")


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
        shown = shown_circuit(relation)
        if (shown / "circuit.svg").is_file():
            assert ("object", shown / "circuit.svg") in targets
        else:  # over the diagram limit: the line that says so, with a link to its JSON
            assert ("a", shown / "circuit.json") in targets
            assert "Too large to draw" in page.read_text(encoding="utf-8")
        for svg in (GALLERY / MODEL / relation / "mechanisms").glob("*.svg"):
            assert ("img", svg) in targets
    reuse = out / MODEL / "reuse.html"
    objects = {target_of(reuse, link).name for tag, _, link in links_of(reuse) if tag == "object"}
    drawn_core = (GALLERY / MODEL / "reuse" / "core.svg").is_file()
    assert {"heatmap.svg", "heatmap_relative.svg", "heads.svg", "cross_task.svg"} <= objects
    assert ("core.svg" in objects) == drawn_core
    assert drawn_core or "Too large to draw" in reuse.read_text(encoding="utf-8")


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
