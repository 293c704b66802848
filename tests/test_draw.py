"""Drawing: the DOT writer, rendering through Graphviz, SVG heatmaps."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydot
import pytest

from circuits.circuit import Circuit
from circuits.compare import ReuseMatrix, cluster
from circuits.draw import GRAPHVIZ_HINT, circuit_dot, diff_dot, heatmap_svg, render
from circuits.draw import dot as dot_writer
from circuits.draw import graphviz as render_module
from circuits.graph import GraphShape
from circuits.vocab import InputError

HAS_DOT = shutil.which("dot") is not None
SHAPE = GraphShape(2, 4, 2)
CIRCUIT = Circuit(
    SHAPE,
    {
        ("input", "a0.h1<q>"): -2.0,
        ("a0.h1", "m0"): -1.0,
        ("m0", "logits"): -4.0,
        ("input", "a1.h0<k>"): 0.5,
        ("a1.h1", "logits"): -1.0,
        ("input", "logits"): 1.0,
    },
    node_scores={"a0.h1": -3.0},
    provenance={"model": "toy", "relation": "rel"},
    extract_method="top-n",
    params={"n": 6, "by": "signed"},
    faithfulness=0.75,
)


def parsed(dot: pydot.Dot) -> pydot.Dot:
    graphs = pydot.graph_from_dot_data(dot.to_string())
    assert graphs
    assert len(graphs) == 1
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
    assert nodes["n_a0_h1"].get("shape") == "ellipse"
    assert nodes["n_m0"].get("shape") == "box"
    assert "score -3" in nodes["n_a0_h1"].get("tooltip")
    edges = scored_edges(g)
    assert len(edges) == CIRCUIT.n_edges
    by_pair = {(e.get_source(), e.get_destination()): e for e in edges}
    strong, weak = by_pair[("n_m0", "n_logits")], by_pair[("n_a1_h1", "n_logits")]
    assert float(strong.get("penwidth")) > float(weak.get("penwidth"))
    assert strong.get("color").strip('"') == dot_writer.SIGN_COLOURS["neg"]
    assert by_pair[("n_input", "n_logits")].get("color").strip('"') == dot_writer.SIGN_COLOURS["pos"]
    assert by_pair[("n_input", "n_a1_h0_k")].get("arrowhead") == "diamond"
    assert "score +0.5" in by_pair[("n_input", "n_a1_h0_k")].get("tooltip")
    # key/value head 0 of layer 1 feeds a1.h1 (its group is a1.h0, a1.h1), drawn dashed
    internal = [e for e in g.get_edges() if e.get_source() == "n_a1_h0_k"]
    assert [e.get_destination() for e in internal] == ["n_a1_h1"]
    assert internal[0].get("style") == "dashed"
    # one rank per layer: a rank=same subgraph holds layer 1's heads
    ranks = [sorted(all_nodes(s)) for s in g.get_subgraphs() if s.get("rank") == "same"]
    assert any("n_a1_h1" in r and "axis_1_1" in r for r in ranks)


def test_color_by_qkv_and_errors() -> None:
    g = parsed(circuit_dot(CIRCUIT, color_by="qkv"))
    edges = {(e.get_source(), e.get_destination()): e for e in scored_edges(g)}
    assert edges[("n_input", "n_a0_h1")].get("color").strip('"') == dot_writer.QKV_COLOURS["q"]
    assert edges[("n_input", "n_a1_h0_k")].get("style") == "dashed"  # positive score
    with pytest.raises(InputError, match="color_by"):
        circuit_dot(CIRCUIT, color_by="rainbow")


def test_multi_head_attention_merges_kv_into_heads() -> None:
    c = Circuit(GraphShape(2, 2, 2), {("input", "a1.h1<v>"): -1.0, ("a1.h1", "logits"): -1.0})
    g = parsed(circuit_dot(c))
    assert ("n_input", "n_a1_h1") in {(e.get_source(), e.get_destination()) for e in scored_edges(g)}
    assert "n_a1_h1_v" not in all_nodes(g)


def test_diff_dot_three_styles() -> None:
    other = Circuit(
        SHAPE,
        {("m0", "logits"): -1.0, ("a1.h1", "m1"): -2.0},
        provenance={"model": "toy", "relation": "other"},
    )
    g = parsed(diff_dot(CIRCUIT, other))
    styles = [e.get("style") for e in scored_edges(g)]
    assert styles.count("solid") == 1
    assert styles.count("dashed") == 5
    assert styles.count("dotted") == 1
    assert "1 shared, 5 only in rel, 1 only in other" in diff_dot(CIRCUIT, other).to_string()
    with pytest.raises(InputError, match="shapes"):
        diff_dot(CIRCUIT, Circuit(GraphShape(1, 1, 1), {}))


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_render_svg_and_png(tmp_path: Path) -> None:
    result = render(circuit_dot(CIRCUIT), tmp_path / "c.svg", formats=("svg", "png"))
    assert [p.suffix for p in result.written] == [".dot", ".svg", ".png"]
    assert not result.message
    svg = (tmp_path / "c.svg").read_text()
    titles = {e.get("{http://www.w3.org/1999/xlink}title") for e in ET.fromstring(svg).iter()}
    assert "m0 → logits: score -4" in titles
    assert "a0.h1 (head, layer 0) score -3" in titles
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pydot.graph_from_dot_file(str(tmp_path / "c.dot"))


def test_render_without_dot_writes_dot_and_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module.shutil, "which", lambda name: None)
    result = render(circuit_dot(CIRCUIT), tmp_path / "c", formats=("svg",))
    assert result.written == [tmp_path / "c.dot"]
    assert result.missing == ["svg"]
    assert "apt-get install graphviz" in result.message
    assert result.message == GRAPHVIZ_HINT
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
    assert ET.fromstring(signed) is not None
    assert "#dddddd" in signed


def test_render_replaces_the_suffix_and_writes_only_dot_when_asked(tmp_path: Path) -> None:
    result = render(circuit_dot(CIRCUIT), tmp_path / "sub" / "c.png", formats=("dot",))
    assert result.written == [tmp_path / "sub" / "c.dot"]
    assert result.missing == []
    assert result.message == ""
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["c.dot"]  # no temporaries, no image
    assert pydot.graph_from_dot_file(str(tmp_path / "sub" / "c.dot"))
