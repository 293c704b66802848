"""The lane diagram of position-aware circuits (:func:`circuits.draw.role_dot.role_dot`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from typing import Any

import pydot
import pytest

from circuits.circuit import Circuit
from circuits.draw.graphviz import render
from circuits.draw.role_dot import AUTO_HUBS, role_dot
from circuits.graph import GraphShape
from circuits.relations.roles import READERS, ROLES
from circuits.vocab import InputError

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
SHAPE = GraphShape(2, 4, 2)  # group 2: key/value head 1 of layer 1 is read by query heads 2 and 3

# a1.h2 is kept at `last` (it sends to logits there), a1.h3 at `relation` (it sends to m1 there),
# a1.h0 (the other key/value group) at `last`; m0's output at `subject` enters key/value head 1's
# value input, so it reaches a1.h2's output at `last` and a1.h3's at `relation`.
ROLES_OF = {
    ("input", "a0.h1<q>"): {"subject": -1.0},
    ("a0.h1", "m0"): {"subject": -0.5},
    ("m0", "a1.h1<v>"): {"subject": -2.0},
    ("input", "a1.h1<k>"): {"last": 0.25},
    ("a1.h2", "logits"): {"last": -1.5},
    ("a1.h3", "m1"): {"relation": 0.75},
    ("a1.h0", "logits"): {"last": -0.1},
    ("input", "m1"): {"relation": -0.2, "last": -0.3},
    ("m1", "logits"): {"last": -1.0},
}


def circuit(roles=ROLES_OF, **fields) -> Circuit:
    return Circuit(SHAPE, dict.fromkeys(roles, 123.0), roles=roles, **fields)


def node_id(name: str, role: str) -> str:
    """The node id role_dot must use, written out by hand (not with the module's helper)."""
    return "n_" + re.sub(r"\W", "_", name).strip("_") + "__" + role


def parsed(dot: pydot.Dot) -> pydot.Dot:
    """The DOT text read back by pydot's parser (slow: only where the text itself matters)."""
    graphs = pydot.graph_from_dot_data(dot.to_string())
    assert graphs is not None
    assert len(graphs) == 1
    return graphs[0]


def all_nodes(g: pydot.Dot | pydot.Subgraph) -> dict[str, pydot.Node]:
    out = {n.get_name(): n for n in g.get_nodes()}
    for sub in g.get_subgraphs():
        out.update(all_nodes(sub))
    return out


def unit_edges(g: pydot.Dot) -> dict[tuple[Any, ...], pydot.Edge]:
    """Drawn unit edges (they carry a tooltip) by (source, destination, arrowhead)."""
    out = {}
    for e in g.get_edges():
        if e.get("tooltip") is not None:
            key = (e.get_source(), e.get_destination(), e.get("arrowhead"))
            assert key not in out, key
            out[key] = e
    return out


def test_every_unit_is_an_edge_between_its_role_nodes() -> None:
    g = parsed(role_dot(circuit(), kv_hubs=False))
    edges = unit_edges(g)
    expected = {
        (node_id("input", "subject"), node_id("a0.h1", "subject"), "normal"),
        (node_id("a0.h1", "subject"), node_id("m0", "subject"), "vee"),
        (node_id("m0", "subject"), node_id("a1.h2", "last"), "dot"),
        (node_id("m0", "subject"), node_id("a1.h3", "relation"), "dot"),
        # a key read at `last` is read by last-position queries only: a1.h2, not a1.h3 (kept at `relation`)
        (node_id("input", "last"), node_id("a1.h2", "last"), "diamond"),
        (node_id("a1.h2", "last"), node_id("logits", "last"), "vee"),
        (node_id("a1.h3", "relation"), node_id("m1", "relation"), "vee"),
        (node_id("a1.h0", "last"), node_id("logits", "last"), "vee"),
        (node_id("input", "relation"), node_id("m1", "relation"), "vee"),
        (node_id("input", "last"), node_id("m1", "last"), "vee"),
        (node_id("m1", "last"), node_id("logits", "last"), "vee"),
    }
    assert set(edges) == expected
    nodes = all_nodes(g)
    for source, target, _ in expected:
        assert source in nodes and target in nodes
    assert nodes[node_id("m0", "subject")].get("shape") == "box"
    assert nodes[node_id("a1.h2", "last")].get("shape") == "ellipse"
    assert nodes[node_id("m0", "subject")].get("label") == '"m0"'
    # input only where it sends a unit; heads only at the roles they are drawn at
    assert node_id("input", "first") not in nodes
    assert node_id("a1.h2", "subject") not in nodes and node_id("a1.h3", "last") not in nodes


def test_kv_unit_read_at_subject_crosses_into_the_heads_reading_it() -> None:
    edges = unit_edges(role_dot(circuit(), kv_hubs=False))
    cross = edges[(node_id("m0", "subject"), node_id("a1.h2", "last"), "dot")]
    assert cross.get("style") == "dashed"
    assert "a1.h1<v>" in cross.get("tooltip") and "subject" in cross.get("tooltip")
    assert "read by a1.h2 at last" in cross.get("tooltip")
    assert "-2" in cross.get("tooltip")
    # a head of the other key/value group, kept at `last`, is not reached
    assert not [k for k in edges if k[0] == node_id("m0", "subject") and "a1_h0" in k[1]]
    # within one lane the edge is solid
    assert edges[(node_id("input", "last"), node_id("a1.h2", "last"), "diamond")].get("style") is None


def test_kv_read_at_last_does_not_reach_a_head_kept_at_an_earlier_role() -> None:
    # a1.h2 is kept at `subject` only: a last-position key cannot change its output there
    assert READERS["last"] == ("last",)
    roles = {("input", "a1.h1<k>"): {"last": -1.0}, ("a1.h2", "m1"): {"subject": -1.0}}
    g = role_dot(circuit(roles), kv_hubs=False)
    edges = unit_edges(g)
    kv = [k for k in edges if k[0] == node_id("input", "last")]
    # no head qualifies: it ends at the key/value head's diamond in the `last` lane
    assert kv == [(node_id("input", "last"), "n_a1_h1_k__last", "diamond")]
    assert all_nodes(g)["n_a1_h1_k__last"].get("shape") == "diamond"
    assert node_id("a1.h2", "last") not in all_nodes(g)


def test_kv_read_at_first_reaches_heads_at_every_role() -> None:
    roles = {("input", "a1.h1<k>"): {"first": -1.0}, **{("a1.h2", "m1"): dict.fromkeys(ROLES, -0.1)}}
    edges = unit_edges(role_dot(circuit(roles), kv_hubs=False))
    reached = {k[1] for k in edges if k[0] == node_id("input", "first")}
    assert reached == {node_id("a1.h2", role) for role in ROLES}


def test_logits_only_in_the_last_lane() -> None:
    roles = {**ROLES_OF, ("m0", "logits"): {"subject": 0.5}}  # kept at a role logits never read
    g = role_dot(circuit(roles), kv_hubs=False)
    logits = [n for n in all_nodes(g) if n.startswith("n_logits")]
    assert logits == [node_id("logits", "last")]
    edges = unit_edges(g)
    odd = edges[(node_id("m0", "subject"), node_id("logits", "last"), "vee")]
    assert "last position only" in odd.get("tooltip")


def test_sign_colour_and_width() -> None:
    edges = unit_edges(role_dot(circuit(), kv_hubs=False))
    strong = edges[(node_id("a1.h2", "last"), node_id("logits", "last"), "vee")]  # -1.5
    weak = edges[(node_id("a1.h0", "last"), node_id("logits", "last"), "vee")]  # -0.1
    positive = edges[(node_id("a1.h3", "relation"), node_id("m1", "relation"), "vee")]  # +0.75
    assert float(strong.get("penwidth")) > float(weak.get("penwidth"))
    assert strong.get("color") == weak.get("color") != positive.get("color")
    assert "score -1.5" in strong.get("tooltip") and "score +0.75" in positive.get("tooltip")


def test_kv_hubs_draw_each_unit_once() -> None:
    c = circuit()
    g = role_dot(c, kv_hubs=True)
    edges = unit_edges(g)
    hub = "n_a1_h1_k__subject"
    assert (node_id("m0", "subject"), hub, "dot") in edges
    reads = {k[1] for k in edges if k[0] == hub}
    assert reads == {node_id("a1.h2", "last"), node_id("a1.h3", "relation")}
    assert all(edges[(hub, r, "vee")].get("style") == "dashed" for r in reads)
    scored = [e for k, e in edges.items() if not k[0].startswith("n_a1_h1_k")]
    assert len(scored) == c.n_units


def test_hubs_by_default_only_when_units_would_fan_out() -> None:
    small = role_dot(circuit())
    assert not [n for n in all_nodes(small) if n.startswith("n_a1_h1_k")]
    # every head kept at all four roles; four key/value units read at `first`, each read by the two
    # heads of its group at four roles: 8 edges each, 7 more than one
    roles = {(f"a1.h{h}", "logits"): {"last": -1.0} for h in range(4)}
    roles |= {(f"a1.h{h}", "m1"): dict.fromkeys(("first", "subject", "relation"), -1.0) for h in range(4)}
    roles |= {("input", f"a1.h{kv}<{x}>"): {"first": -1.0} for kv in range(2) for x in "kv"}
    c = circuit(roles)
    assert AUTO_HUBS < 4 * 7
    big = role_dot(c)
    assert {"n_a1_h0_k__first", "n_a1_h1_k__first"} <= set(all_nodes(big))
    assert len(unit_edges(role_dot(c, kv_hubs=False))) > len(unit_edges(big))


def test_title_and_lanes() -> None:
    c = circuit(
        provenance={"model": "toy", "relation": "capital"},
        name="c1",
        extract_method="top-n",
        params={"n": 12, "by": "signed"},
        faithfulness=0.8125,
    )
    g = role_dot(c)
    label = g.get_graph_defaults()[0]["label"]
    assert "toy / capital / c1" in label
    assert "top-n n=12 by signed" in label
    assert "10 units on 9 edges" in label
    assert "(subject 3, relation 2, last 5)" in label
    assert "faithfulness 0.812" in label
    nodes = all_nodes(g)
    assert "lane_first" not in nodes  # nothing at `first`
    assert {"lane_subject", "lane_relation", "lane_last", "legend"} <= set(nodes)
    assert role_dot(c, title="mine").get_graph_defaults()[0]["label"] == '"mine"'


def test_summed_circuit_is_refused() -> None:
    summed = Circuit(SHAPE, {("input", "logits"): -1.0}, name="plain")
    with pytest.raises(InputError, match=r"not a position-aware circuit.*circuit_dot"):
        role_dot(summed)


def test_empty_position_aware_circuit_draws() -> None:
    g = role_dot(Circuit(SHAPE, {}, roles={}))
    assert unit_edges(g) == {}
    assert "0 units on 0 edges" in g.get_graph_defaults()[0]["label"]


@needs_dot
def test_lanes_in_order_and_nodes_inside_their_lane() -> None:
    text = role_dot(circuit(), kv_hubs=False).to_string()
    plain = subprocess.run(["dot", "-Tplain"], input=text, capture_output=True, text=True, check=True).stdout
    x = {f[1]: float(f[2]) for f in (line.split() for line in plain.splitlines()) if f[0] == "node"}
    lanes = ["subject", "relation", "last"]
    headers = [x[f"lane_{lane}"] for lane in lanes]
    assert headers == sorted(headers)
    dividers = sorted({x[n] for n in x if re.fullmatch(r"sep\d+_0", n)})
    assert len(dividers) == len(lanes)  # two between the lanes, one closing the last
    bounds = [float("-inf"), *dividers]
    for name, pos in x.items():
        match = re.fullmatch(r"n_.+__(\w+)", name)
        if match:
            i = lanes.index(match[1])
            assert bounds[i] < pos < bounds[i + 1], name
    for i in range(1, len(lanes) + 1):  # fences are straight lines
        assert len({round(x[n], 3) for n in x if re.fullmatch(rf"sep{i}_\d+", n)}) == 1


@needs_dot
def test_hostile_names_are_escaped(tmp_path) -> None:
    bad = '"} digraph x { a -> b } <b>&amp; \\N \\'
    c = circuit(provenance={"model": "m\\", "relation": bad}, name=bad)
    dot = role_dot(c)
    g = parsed(dot)
    assert not {"a", "b", "x"} & set(all_nodes(g))
    result = render(dot, tmp_path / "hostile", formats=("svg",))
    assert [p.suffix for p in result.written] == [".dot", ".svg"]
    root = ET.parse(tmp_path / "hostile.svg").getroot()
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert f"m\\ / {bad} / {bad}" in texts
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "a" not in titles and "b" not in titles


@needs_dot
def test_renders_svg_and_png_with_tooltips(tmp_path) -> None:
    result = render(role_dot(circuit(), kv_hubs=False), tmp_path / "roles", formats=("svg", "png"))
    assert [p.name for p in result.written] == ["roles.dot", "roles.svg", "roles.png"]
    assert (tmp_path / "roles.png").read_bytes().startswith(b"\x89PNG")
    root = ET.parse(tmp_path / "roles.svg").getroot()
    tips = [a.get(f"{XLINK}title") for a in root.iter(f"{SVG}a")]
    assert "m0 → a1.h1<v> at subject, read by a1.h3 at relation: score -2" in tips
    assert any(t and t.startswith("a1.h2 at last (head, layer 1)") for t in tips)
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert {"subject", "relation", "last", "L0 mlp", "L1 attn", "logits"} <= texts
