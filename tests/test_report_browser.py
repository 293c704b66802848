"""The report in a real browser: every page of the gallery's report opens in headless Chromium cleanly.

One browser, driven over the DevTools protocol (``browser.py`` beside this file), visits
every page and records uncaught exceptions, ``console.error`` calls, error log
entries and failed resource loads; each page's screenshot and each figure's
must show something (many colours, not all white); every embedded diagram must
carry tooltips; every link must lead to a file that exists, and every page
must be reachable from the overview. A deliberately broken page proves the
detectors fire. Chromium is required: without it the test fails (``make test``
installs Debian's chromium).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from browser import Browser, find_chromium, png_stats
from report_helpers import MODEL, make_results, write_evaluation

from circuits.report import build_report

GALLERY = Path(__file__).resolve().parents[1] / "graphs"
BLANK_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="200"></svg>'


MISSING = (
    "Chromium was not found (looked for $CHROMIUM, chromium, chromium-browser, google-chrome): run "
    "`make test`, which installs Debian's chromium (or `apt-get install chromium`)"
)


def test_chromium_is_installed():
    if find_chromium() is None:
        pytest.fail(MISSING)


@pytest.fixture(scope="module")
def browser():
    executable = find_chromium()
    if executable is None:
        pytest.fail(MISSING)
    with Browser(executable, timeout=30) as b:
        yield b


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return build_report(GALLERY, out=tmp_path_factory.mktemp("browser") / "report").parent


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL names (fragment and query dropped), else None."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def problems_of(result) -> list[str]:
    """Everything wrong with one loaded page, as readable lines."""
    out = list(result.errors)
    colours, nonwhite = png_stats(result.screenshot)
    if colours < 50 or nonwhite < 0.01:
        out.append(f"the page looks blank ({colours} colours, {nonwhite:.1%} not white)")
    for fig, shot in zip(result.figures, result.figure_shots, strict=True):
        stats = png_stats(shot) if shot else (0, 0.0)
        if stats[0] < 20 or stats[1] < 0.02:
            out.append(f"figure {fig['src']} looks blank ({stats[0]} colours, {stats[1]:.1%} not white)")
        if fig["tag"] == "object" and result.tooltips.get(fig["src"], 0) == 0:
            out.append(f"diagram {fig['src']} has no tooltips in its loaded document")
    for link in result.links:
        path = local_path(link)
        if path is None:
            out.append(f"link leaves the report's files: {link}")
        elif not path.exists():
            out.append(f"broken link: {link}")
    return out


def test_every_page_opens_cleanly_renders_and_links(browser, report):
    pages = sorted(report.rglob("*.html"))
    relations = [p for p in (GALLERY / "smollm2-135m").iterdir() if (p / "scored").is_dir()]
    assert len(pages) >= len(relations) + 2 >= 12  # the overview, the relations, reuse (and channels)
    problems, links, objects = {}, {}, 0
    for page in pages:
        result = browser.open(page.as_uri())
        problems[page.name] = problems_of(result)
        links[page.resolve()] = {local_path(u) for u in result.links if local_path(u) is not None}
        objects += sum(f["tag"] == "object" for f in result.figures)
        assert result.figures or page.name == "index.html", f"{page.name} shows no figure"
    assert {name: p for name, p in problems.items() if p} == {}
    drawn = len(list((GALLERY / "smollm2-135m").glob("*/*/circuit.svg")))  # within the diagram limit
    assert objects >= min(drawn, len(relations)) + 4  # drawn circuits; the reuse page's heatmaps
    reached, todo = set(), [(report / "index.html").resolve()]
    while todo:
        page = todo.pop()
        if page not in reached:
            reached.add(page)
            todo += [p.resolve() for p in links[page] if p.suffix == ".html" and p.resolve() in links]
    assert reached == set(links), "pages not reachable from the overview"


def test_pages_of_the_parts_the_gallery_lacks_open_cleanly(browser, tmp_path):
    """An evaluation, a second circuit, channels and a job summary: parts the committed gallery lacks."""
    folder = make_results(tmp_path)
    shutil.copytree(folder / "top-n-signed-150", folder / "top-n-signed-80")
    write_evaluation(folder, "top-n-signed-80", {"value": 0.91, "low": 0.86, "high": 0.95})
    channels = tmp_path / MODEL / "channels"
    channels.mkdir()
    record = {
        "channels": [{"writer": "a1.h0", "reader": "a5.h2<k>", "kind": "k", "z": 7.5, "rank": 2}],
        "validation": [{"relation": "rel_a", "auc_whole": 0.7, "auc_component": 0.8}],
        "overlay": {"relation": "rel_a", "circuit": "top-n-signed-80"},
    }
    (channels / "channels.json").write_text(json.dumps(record))
    shutil.copy(folder / "top-n-signed-150" / "circuit.svg", channels / "overlay.svg")
    (tmp_path / MODEL / "job.json").write_text(json.dumps({"model": MODEL, "seconds": {"score": 12.5}}))
    out = build_report(tmp_path).parent
    pages = sorted(out.rglob("*.html"))
    assert [p.name for p in pages] == ["index.html", "channels.html", "rel_a.html"]
    for page in pages:
        result = browser.open(page.as_uri())
        assert problems_of(result) == [], page.name
    assert {Path(unquote(urlsplit(f["src"]).path)).name for f in result.figures} == {
        "circuit.svg",
        "evaluation.svg",
    }


def test_the_detectors_catch_a_broken_page(browser, tmp_path):
    (tmp_path / "blank.svg").write_text(BLANK_SVG)
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!DOCTYPE html><html><body><h1>broken</h1><img src="missing.png" alt="x">'
        '<object type="image/svg+xml" data="blank.svg"></object>'
        '<object type="image/svg+xml" data="absent.svg"></object>'
        '<a href="nowhere.html">a dead link</a>'
        "<script>throw new Error('deliberate failure')</script></body></html>"
    )
    found = "\n".join(problems_of(browser.open(broken.as_uri())))
    assert "failed load (Image): net::ERR_FILE_NOT_FOUND" in found
    assert "failed load (Document): net::ERR_FILE_NOT_FOUND" in found  # the missing <object> diagram
    assert "image not loaded" in found and "missing.png" in found
    assert "exception" in found and "deliberate failure" in found
    assert "blank.svg looks blank" in found and "blank.svg has no tooltips" in found
    assert "broken link" in found and "nowhere.html" in found
    (tmp_path / "empty.html").write_text("<!DOCTYPE html><html><body></body></html>")
    assert any("looks blank" in p for p in problems_of(browser.open((tmp_path / "empty.html").as_uri())))
    logged = tmp_path / "logged.html"
    logged.write_text("<!DOCTYPE html><html><body><script>console.error('said so')</script></body></html>")
    assert "console.error: said so" in browser.open(logged.as_uri()).errors
