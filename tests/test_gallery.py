"""The gallery holds what a reader looks at: SVG diagrams up to the limit, no DOT beside them, a size budget.

Stores built here from random graphs (no model), the report built over them,
and the committed ``graphs/`` folder itself.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_helpers import links_of, target_of

from circuits.circuit import Circuit
from circuits.draw import circuit_dot, render
from circuits.extract import prune, top_n
from circuits.graph import N_ROLES, GraphShape, ScoredGraph
from circuits.jobs import diagram_writer
from circuits.report import build_report
from circuits.store import CIRCUIT_FILE, MANIFEST, Gallery, read_circuit, write_circuit
from circuits.store.diagrams import DIAGRAM_LIMIT, diagram_size

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
COMMITTED = Path(__file__).resolve().parents[1] / "graphs"
BUDGET_MB = 20
"""The committed gallery's size budget (README, "Where results go"): at most 20 MB of files."""
SHAPE = GraphShape(4, 4, 4)  # 346 edges: room for circuits on both sides of the limit


def graph(relation: str = "rel", *, roles: bool = False, seed: int = 0) -> ScoredGraph:
    """A random graph of ``SHAPE``; with ``roles`` every edge scores the same at every role."""
    scores = np.random.default_rng(seed).normal(size=(SHAPE.n_senders, SHAPE.n_receivers))
    meta = {"model": "org/toy", "relation": relation, "score_method": "eap", "seed": seed}
    if not roles:
        return ScoredGraph(SHAPE, scores, meta)
    per_role = np.stack([scores / N_ROLES] * N_ROLES)
    return ScoredGraph(SHAPE, scores, meta, role_scores=per_role)


def big_circuit(relation: str = "rel") -> Circuit:
    circuit = top_n(graph(relation), DIAGRAM_LIMIT + 40)
    assert circuit.n_edges > DIAGRAM_LIMIT
    return circuit


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@needs_dot
def test_a_small_circuit_is_stored_with_its_svg_and_no_dot(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    circuit = prune(top_n(graph(), 30))
    folder, message = gallery.save_circuit(circuit, draw=diagram_writer(circuit))
    assert message == ""
    assert files(folder) == [CIRCUIT_FILE, "circuit.svg"]
    assert (folder / "circuit.svg").read_text().lstrip().startswith("<?xml")
    entry = gallery.manifest()["entries"]["org__toy/rel/" + folder.name]
    assert entry["files"] == [CIRCUIT_FILE, "circuit.svg"]
    size = circuit.n_edges
    assert entry["diagram"] == {
        "drawn": True,
        "size": size,
        "counted": "edges",
        "limit": DIAGRAM_LIMIT,
        "files": ["circuit.svg"],
    }
    assert gallery.check() == []


def test_without_graphviz_the_dot_file_is_the_only_diagram(tmp_path: Path, monkeypatch) -> None:
    from circuits.draw import graphviz

    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    gallery = Gallery(tmp_path)
    circuit = prune(top_n(graph(), 30))
    folder, message = gallery.save_circuit(circuit, draw=diagram_writer(circuit))
    assert "Graphviz" in message
    assert files(folder) == ["circuit.dot", CIRCUIT_FILE]  # nothing else to look at, so it stays
    diagram = gallery.manifest()["entries"]["org__toy/rel/" + folder.name]["diagram"]
    assert diagram["drawn"] is False and "Graphviz" in diagram["reason"]
    assert gallery.check() == []


def test_a_circuit_over_the_limit_keeps_its_json_and_gets_no_diagram(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path / "graphs")
    circuit = big_circuit()
    drawn = []
    folder, message = gallery.save_circuit(circuit, draw=lambda d: drawn.append(d) or "")
    assert drawn == []  # not even drawn to be thrown away
    assert files(folder) == [CIRCUIT_FILE]
    assert read_circuit(folder / CIRCUIT_FILE) == circuit
    n = circuit.n_edges
    reason = f"too large to draw: {n} edges, over the limit of {DIAGRAM_LIMIT}"
    expected = {"drawn": False, "size": n, "counted": "edges", "limit": DIAGRAM_LIMIT, "reason": reason}
    entries = json.loads((gallery.root / MANIFEST).read_text())["entries"]
    assert entries[f"org__toy/rel/{folder.name}"]["diagram"] == expected
    assert reason in message
    assert f"circuits render {folder.as_posix()} --out {folder.name}.svg" in message
    assert gallery.check() == []
    assert gallery.rebuild_manifest()["entries"][f"org__toy/rel/{folder.name}"]["diagram"] == expected


def test_a_position_aware_circuit_is_measured_in_units(tmp_path: Path) -> None:
    circuit = top_n(graph(roles=True), DIAGRAM_LIMIT + 20, positions="roles")
    assert circuit.n_edges <= DIAGRAM_LIMIT < circuit.n_units  # drawn by its edges, refused by its units
    assert diagram_size(circuit) == (circuit.n_units, "units")
    gallery = Gallery(tmp_path)
    folder, message = gallery.save_circuit(circuit, draw=diagram_writer(circuit))
    assert files(folder) == [CIRCUIT_FILE]
    diagram = gallery.manifest()["entries"][f"org__toy/rel/{folder.name}"]["diagram"]
    assert diagram["counted"] == "units" and diagram["size"] == circuit.n_units
    assert f"{circuit.n_units} units" in message


@needs_dot
def test_a_folder_of_files_keeps_the_svg_of_a_small_circuit_only(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    small, big = prune(top_n(graph(), 20)), big_circuit()

    def draw(folder: Path) -> None:
        for name, circuit in (("small", small), ("core", big)):
            write_circuit(circuit, folder / f"{name}.json")
            render(circuit_dot(circuit), folder / name, formats=("svg",))

    folder = gallery.save_files("org/toy", "reuse", {"report.json": "{}"}, {}, after=draw)
    assert files(folder) == ["core.json", "report.json", "small.json", "small.svg"]
    diagrams = gallery.manifest()["entries"]["org__toy/reuse"]["diagrams"]
    assert diagrams["small"]["drawn"] is True
    assert diagrams["core"]["drawn"] is False and "too large to draw" in diagrams["core"]["reason"]
    assert gallery.check() == []


def test_tidy_brings_an_older_gallery_under_the_rules(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    small, big = prune(top_n(graph(), 20)), big_circuit("other")
    folders = []
    for circuit in (small, big):  # as written before the rules: the DOT and an image beside every circuit
        folder, _ = gallery.save_circuit(circuit)
        (folder / "circuit.dot").write_text("digraph G {}")
        (folder / "circuit.svg").write_text("<svg/>")
        folders.append(folder)
    gallery.save_files("org/toy", "gone", {"a.txt": "x"}, {})
    shutil.rmtree(tmp_path / "org__toy" / "gone")
    before = gallery.manifest()["entries"]
    problems = gallery.check()
    assert any("a DOT file beside its image" in p for p in problems)
    assert any("too large to draw" in p and "other" in p for p in problems)
    assert any(p.startswith("org__toy/gone: listed") for p in problems)
    entries = gallery.tidy()["entries"]
    assert gallery.check() == []
    assert set(entries) == set(before) - {"org__toy/gone"}
    small_folder, big_folder = folders
    assert files(small_folder) == [CIRCUIT_FILE, "circuit.svg"]
    assert files(big_folder) == [CIRCUIT_FILE]
    key = big_folder.relative_to(tmp_path).as_posix()
    assert entries[key]["diagram"]["drawn"] is False and entries[key]["date"] == before[key]["date"]


def test_the_report_says_a_circuit_is_too_large_and_links_what_exists(tmp_path: Path) -> None:
    root = tmp_path / "graphs"
    gallery = Gallery(root)
    circuit = big_circuit()
    folder, _ = gallery.save_circuit(circuit, draw=diagram_writer(circuit))
    out = build_report(root).parent
    page = out / "org__toy" / "rel.html"
    text = page.read_text(encoding="utf-8")
    assert f"Too large to draw: {circuit.n_edges} edges, over the limit of {DIAGRAM_LIMIT} edges" in text
    assert f"circuits render graphs/org__toy/rel/{folder.name} --out {folder.name}.svg" in text
    targets = {target_of(page, link) for _, _, link in links_of(page)}
    assert folder / CIRCUIT_FILE in targets
    assert not any(t.suffix in (".svg", ".dot") and t.parent == folder for t in targets)
    for _, _, link in links_of(page):
        assert target_of(page, link).is_file(), link


# --------------------------------------------------------------------------- the committed gallery


def test_the_committed_gallery_fits_its_budget_and_its_rules() -> None:
    stored = [p for p in COMMITTED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in stored) <= BUDGET_MB * 10**6
    assert [p for p in stored if p.suffix == ".dot"] == []
    drawn = 0
    for image in (p for p in stored if p.suffix in (".svg", ".png")):
        source = image.parent / CIRCUIT_FILE if image.stem == "circuit" else image.with_suffix(".json")
        data = json.loads(source.read_text()) if source.is_file() else {}
        if isinstance(data.get("graph"), dict) and data["graph"].get("format") == "circuits.circuit/1":
            n, counted = diagram_size(read_circuit(source))
            assert n <= DIAGRAM_LIMIT, f"{image}: a diagram of a circuit of {n} {counted}"
            drawn += 1
    assert drawn >= 1  # the rule was applied to the gallery's circuit diagrams
    assert Gallery(COMMITTED).check() == []
