"""Graphviz export, SVG heatmaps, the graphs/ store and the graph subcommands."""

from __future__ import annotations

import argparse
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydot
import pytest

from circuits import export
from circuits.circuit import Circuit
from circuits.compare import ReuseMatrix, cluster
from circuits.export import GRAPHVIZ_HINT, circuit_dot, diff_dot, heatmap_svg, render
from circuits.extract import prune, top_n
from circuits.gallery import CIRCUIT_FILE, MANIFEST, Gallery, circuit_name, safe_name
from circuits.graph import GraphShape, ScoredGraph
from circuits.graphs_cli import add_parsers
from circuits.store import save_scored
from circuits.vocab import InputError

HAS_DOT = shutil.which("dot") is not None
SHAPE = GraphShape(2, 4, 2)
CIRCUIT = Circuit(SHAPE, {("input", "a0.h1<q>"): -2.0, ("a0.h1", "m0"): -1.0, ("m0", "logits"): -4.0,
                          ("input", "a1.h0<k>"): 0.5, ("a1.h1", "logits"): -1.0, ("input", "logits"): 1.0},
                  node_scores={"a0.h1": -3.0}, provenance={"model": "toy", "relation": "rel"}, method="top-n",
                  params={"n": 6, "by": "signed"}, faithfulness=0.75)  # fmt: skip


def parsed(dot: pydot.Dot) -> pydot.Dot:
    graphs = pydot.graph_from_dot_data(dot.to_string())
    assert graphs and len(graphs) == 1
    return graphs[0]


def all_nodes(g: pydot.Dot) -> dict[str, pydot.Node]:
    out = {n.get_name(): n for n in g.get_nodes()}
    for sub in g.get_subgraphs():
        out.update(all_nodes(sub))
    return out


def scored_edges(g: pydot.Dot) -> list[pydot.Edge]:
    return [e for e in g.get_edges() if e.get("style") != "invis" and e.get("penwidth") is not None]


def test_circuit_dot_parses_back_with_styles() -> None:
    g = parsed(circuit_dot(CIRCUIT))
    assert g.get("rankdir") == "BT"
    nodes = all_nodes(g)
    for name in ("n_input", "n_logits", "n_a0_h1", "n_m0", "n_a1_h1", "n_a1_h0_k", "legend"):
        assert name in nodes, name
    assert nodes["n_a0_h1"].get("shape") == "ellipse" and nodes["n_m0"].get("shape") == "box"
    assert "score -3" in nodes["n_a0_h1"].get("tooltip")
    edges = scored_edges(g)
    assert len(edges) == CIRCUIT.n_edges
    by_pair = {(e.get_source(), e.get_destination()): e for e in edges}
    strong, weak = by_pair[("n_m0", "n_logits")], by_pair[("n_a1_h1", "n_logits")]
    assert float(strong.get("penwidth")) > float(weak.get("penwidth"))
    assert strong.get("color").strip('"') == export.SIGN_COLOURS["neg"]
    assert by_pair[("n_input", "n_logits")].get("color").strip('"') == export.SIGN_COLOURS["pos"]
    assert by_pair[("n_input", "n_a1_h0_k")].get("arrowhead") == "diamond"
    assert "score +0.5" in by_pair[("n_input", "n_a1_h0_k")].get("tooltip")
    # key/value head 0 of layer 1 feeds a1.h1 (its group is a1.h0, a1.h1), drawn dashed
    internal = [e for e in g.get_edges() if e.get_source() == "n_a1_h0_k"]
    assert [e.get_destination() for e in internal] == ["n_a1_h1"] and internal[0].get("style") == "dashed"
    # one rank per layer: a rank=same subgraph holds layer 1's heads
    ranks = [sorted(all_nodes(s)) for s in g.get_subgraphs() if s.get("rank") == "same"]
    assert any("n_a1_h1" in r and "axis_1_1" in r for r in ranks)


def test_color_by_qkv_and_errors() -> None:
    g = parsed(circuit_dot(CIRCUIT, color_by="qkv"))
    edges = {(e.get_source(), e.get_destination()): e for e in scored_edges(g)}
    assert edges[("n_input", "n_a0_h1")].get("color").strip('"') == export.QKV_COLOURS["q"]
    assert edges[("n_input", "n_a1_h0_k")].get("style") == "dashed"  # positive score
    with pytest.raises(InputError, match="color_by"):
        circuit_dot(CIRCUIT, color_by="rainbow")


def test_multi_head_attention_merges_kv_into_heads() -> None:
    c = Circuit(GraphShape(2, 2, 2), {("input", "a1.h1<v>"): -1.0, ("a1.h1", "logits"): -1.0})
    g = parsed(circuit_dot(c))
    assert ("n_input", "n_a1_h1") in {(e.get_source(), e.get_destination()) for e in scored_edges(g)}
    assert "n_a1_h1_v" not in all_nodes(g)


def test_diff_dot_three_styles() -> None:
    other = Circuit(SHAPE, {("m0", "logits"): -1.0, ("a1.h1", "m1"): -2.0},
                    provenance={"model": "toy", "relation": "other"})  # fmt: skip
    g = parsed(diff_dot(CIRCUIT, other))
    styles = [e.get("style") for e in scored_edges(g)]
    assert styles.count("solid") == 1 and styles.count("dashed") == 5 and styles.count("dotted") == 1
    assert "1 shared, 5 only in rel, 1 only in other" in diff_dot(CIRCUIT, other).to_string()
    with pytest.raises(InputError, match="shapes"):
        diff_dot(CIRCUIT, Circuit(GraphShape(1, 1, 1), {}))


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_render_svg_and_png(tmp_path: Path) -> None:
    result = render(circuit_dot(CIRCUIT), tmp_path / "c.svg", formats=("svg", "png"))
    assert [p.suffix for p in result.written] == [".dot", ".svg", ".png"] and not result.message
    svg = (tmp_path / "c.svg").read_text()
    titles = {e.get("{http://www.w3.org/1999/xlink}title") for e in ET.fromstring(svg).iter()}
    assert "m0 → logits: score -4" in titles and "a0.h1 (head, layer 0) score -3" in titles
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pydot.graph_from_dot_file(str(tmp_path / "c.dot"))


def test_render_without_dot_writes_dot_and_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export.shutil, "which", lambda name: None)
    result = render(circuit_dot(CIRCUIT), tmp_path / "c", formats=("svg",))
    assert result.written == [tmp_path / "c.dot"] and result.missing == ["svg"]
    assert "apt-get install graphviz" in result.message and result.message == GRAPHVIZ_HINT
    assert not (tmp_path / "c.svg").exists()
    with pytest.raises(InputError, match="unknown format"):
        render(circuit_dot(CIRCUIT), tmp_path / "c", formats=("gif",))


def test_heatmap_svg_is_valid_and_ordered() -> None:
    values = np.array([[1, 0.1, 0.9], [0.1, 1, 0.2], [0.9, 0.2, 1]])
    m = ReuseMatrix(["a", "b<&>", "c"], values, "edge_jaccard")
    svg = heatmap_svg(m, clustering=cluster(m), title="t")
    root = ET.fromstring(svg)
    rects = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(rects) == 1 + 9
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2  # dendrogram links
    assert "b&lt;&amp;&gt;" in svg
    signed = heatmap_svg(ReuseMatrix(["a", "b"], np.array([[1, -0.5], [-0.5, np.nan]]), "spearman"))
    assert ET.fromstring(signed) is not None and "#dddddd" in signed


# ------------------------------------------------------------------ store


def scored(relation: str = "rel", seed: int = 0) -> ScoredGraph:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(SHAPE.n_senders, SHAPE.n_receivers))
    return ScoredGraph(
        SHAPE, scores, {"model": "org/toy", "relation": relation, "method": "eap", "seed": seed}
    )


def test_gallery_layout_manifest_and_round_trip(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path / "graphs")
    graph = scored()
    folder = gallery.save_scored(graph)
    assert folder == tmp_path / "graphs" / "org__toy" / "rel" / "scored"
    assert gallery.find_scored("org/toy", "rel", method="eap", seed=0) is not None
    assert gallery.find_scored("org/toy", "rel", method="eap-ig") is None
    assert gallery.find_scored("org/toy", "other") is None
    circuit = prune(top_n(graph, 30))
    circuit.faithfulness = 0.5
    path, message = gallery.save_circuit(circuit, formats=("svg",) if HAS_DOT else ("dot",))
    assert path.name == circuit_name(circuit) == "top-n-signed-30" and not message
    assert gallery.load_circuit("org/toy", "rel", "top-n-signed-30") == circuit
    assert gallery.circuits("org/toy") == {"rel": circuit}
    entries = json.loads((tmp_path / "graphs" / MANIFEST).read_text())["entries"]
    entry = entries["org__toy/rel/top-n-signed-30"]
    assert entry["kind"] == "circuit" and entry["size"] == circuit.n_edges and entry["faithfulness"] == 0.5
    assert entry["model"] == "org/toy" and entry["package_version"] and entry["date"]
    assert CIRCUIT_FILE in entry["files"] and "circuit.dot" in entry["files"]
    assert entries["org__toy/rel/scored"]["kind"] == "scored"
    rebuilt = gallery.rebuild_manifest()["entries"]
    assert set(rebuilt) == set(entries) and rebuilt["org__toy/rel/top-n-signed-30"]["size"] == circuit.n_edges
    assert safe_name("a b/c") == "a_b__c"
    with pytest.raises(InputError, match="cannot name"):
        safe_name("//")


def test_gallery_failed_write_keeps_old_unit(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    gallery.save_scored(scored(seed=1))
    before = gallery.load_scored("org/toy", "rel")

    class BoomError(Exception):
        pass

    def half(folder: Path) -> None:
        (folder / "scores.safetensors").write_bytes(b"half")
        raise BoomError

    with pytest.raises(BoomError):
        gallery._commit(gallery.folder("org/toy", "rel", "scored"), half)
    after = gallery.load_scored("org/toy", "rel")
    assert np.array_equal(after.scores, before.scores)
    assert not [p for p in (tmp_path / "org__toy" / "rel").iterdir() if p.name.startswith(".")]
    # a crash between the two renames: the old folder is restored on the next read
    target = gallery.folder("org/toy", "rel", "scored")
    target.rename(target.parent / ".scored.old-dead")
    assert np.array_equal(gallery.load_scored("org/toy", "rel").scores, before.scores)
    with pytest.raises(InputError, match="model"):
        gallery.save_circuit(Circuit(SHAPE, {}))


# ------------------------------------------------------------------ command line


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="circuits")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_extract_render_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, seed in (("r1", 0), ("r2", 1)):
        save_scored(tmp_path / name, scored(name, seed))
    assert cli(["extract", str(tmp_path / "r1"), "--method", "greedy", "--size", "25"]) == 0
    out = tmp_path / "r1" / "greedy-signed-25.circuit.json"
    assert Circuit.load(out).method == "greedy" and "greedy-signed-25" in capsys.readouterr().out
    assert cli(["extract", str(tmp_path / "r2"), "--fraction", "0.2", "--by", "abs", "--json",
                "--out", str(tmp_path / "b.json")]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["n_edges"] == Circuit.load(tmp_path / "b.json").n_edges
    assert cli(["compare", str(out), str(tmp_path / "b.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 <= result["edge_jaccard"] <= 1 and result["a"] == "greedy-signed-25"
    assert cli(["compare", str(out), str(out)]) == 0
    assert "edge_jaccard          1.0000" in capsys.readouterr().out
    assert cli(["render", str(out), "--format", "dot"]) == 0
    assert pydot.graph_from_dot_file(str(tmp_path / "r1" / "greedy-signed-25.circuit.dot"))
    if HAS_DOT:
        assert cli(["render", str(out), "--diff", str(tmp_path / "b.json")]) == 0
        assert (tmp_path / "r1" / "greedy-signed-25.circuit-vs-b.svg").is_file()
    assert cli(["extract", str(tmp_path / "r1"), "--size", "10", "--store", str(tmp_path / "g"),
                "--format", "dot"]) == 0  # fmt: skip
    assert (tmp_path / "g" / "org__toy" / "r1" / "top-n-signed-10" / "circuit.dot").is_file()
    with pytest.raises(InputError, match="not a scored-graph directory"):
        cli(["extract", str(tmp_path), "--size", "3"])
    with pytest.raises(InputError, match="needs a size"):
        cli(["extract", str(tmp_path / "r1")])


@pytest.mark.integration
def test_reuse_on_embedded_model(tmp_path: Path) -> None:
    from circuits.graphs_cli import run_reuse
    from circuits.pipeline import ScoreSettings

    picks = ["country_capital_city", "country_language"]
    report = run_reuse(picks, model="smollm2-135m", settings=ScoreSettings(max_pairs=8, ig_steps=2),
                       size=150, store=tmp_path, progress=False)  # fmt: skip
    assert len(report["relations"]) == 2
    folder = Path(report["folder"])
    assert (folder / "edge_jaccard.csv").is_file() and (folder / "heatmap.svg").is_file()
    for row in report["circuits"]:
        assert row["faithfulness"] is not None
    # a second run reuses the stored graphs
    again = run_reuse(picks, model="smollm2-135m", settings=ScoreSettings(max_pairs=8, ig_steps=2),
                      size=150, store=tmp_path, progress=False, cross=False)  # fmt: skip
    assert {row["source"] for row in again["circuits"]} == {"stored"}
