"""The HTML report (``circuits report``) of small results folders: escaping, optional parts, several models,
evaluations, channels and the job summary, errors, the command, no torch.

Fast and browser-free; the committed gallery's report is in ``test_report_gallery.py`` and
``test_report_browser.py`` opens the pages in Chromium.
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

import pytest
from report_helpers import (
    GALLERY,
    MODEL,
    SVG,
    interval,
    links_of,
    make_results,
    pages_of,
    target_of,
    write_evaluation,
)

from circuits.report import build_report
from circuits.vocab import InputError

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
        "prompts 1-shot <code>&lt;b&gt;{} is in&lt;/b&gt;</code>: "
        "the best 1 of 2 formats tried (facts known: 11, 23)" in page
    )
    assert "9 + 6 (few: noisy)" in index.read_text(encoding="utf-8")
