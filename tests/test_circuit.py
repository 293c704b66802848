"""Circuit: masks, the networkx view, node semantics; its file round trips (circuits.store.circuits)."""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.circuit import Circuit, component_of
from circuits.graph import GraphShape, ScoredGraph
from circuits.store import (
    CIRCUIT_FORMAT,
    circuit_from_dict,
    circuit_from_json,
    circuit_from_networkx,
    circuit_to_dict,
    circuit_to_json,
    read_circuit,
    write_circuit,
)
from circuits.vocab import InputError

GQA = GraphShape(2, 4, 2)


def random_graph(shape: GraphShape, seed: int = 0) -> ScoredGraph:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(shape.n_senders, shape.n_receivers)).astype(np.float32)
    return ScoredGraph(shape, scores, {"model": "toy", "relation": "r", "score_method": "eap", "seed": seed})


def test_mask_round_trip_exact() -> None:
    graph = random_graph(GQA)
    keep = graph.top_mask(30, by="signed")
    circuit = Circuit.from_mask(graph, keep, extract_method="top-n", params={"n": 30, "by": "signed"})
    assert circuit.n_edges == 30
    assert np.array_equal(circuit.to_mask(), keep)
    for (s, r), score in circuit.edges.items():
        i, j = GQA.sender_names().index(s), GQA.receiver_names().index(r)
        assert score == float(graph.scores[i, j])
    assert circuit.provenance["relation"] == "r"
    assert circuit.relation == "r"
    assert circuit.model == "toy"


def test_non_edges_in_mask_are_ignored_and_bad_edges_rejected() -> None:
    graph = random_graph(GQA)
    full = np.ones_like(graph.mask)
    assert Circuit.from_mask(graph, full).n_edges == graph.n_edges
    with pytest.raises(InputError, match="not an edge"):
        Circuit(GQA, {("a1.h0", "a0.h0<q>"): 1.0})  # reads backwards
    with pytest.raises(InputError, match="not a sender"):
        Circuit(GQA, {("a0.h9x", "logits"): 1.0})
    with pytest.raises(InputError, match="shape"):
        Circuit.from_mask(graph, np.ones((2, 2), dtype=bool))


def test_nodes_and_heads() -> None:
    c = Circuit(
        GQA,
        {
            ("input", "a0.h1<k>"): -1.0,
            ("input", "a1.h2<q>"): -1.0,
            ("a0.h3", "m0"): 0.5,
            ("m0", "logits"): -2.0,
        },
    )
    # a <k> receiver names key/value head 1 (query heads 2, 3): it adds no node by itself
    assert c.nodes() == frozenset({"input", "a1.h2", "a0.h3", "m0", "logits"})
    assert c.heads() == ["a0.h3", "a1.h2"]
    assert c.mlps() == ["m0"]
    assert component_of("a1.h2<q>") == "a1.h2"
    assert component_of("a0.h1<v>") is None


def test_networkx_attributes_and_internal_edges() -> None:
    c = Circuit(
        GQA,
        {("input", "a0.h1<k>"): -1.0, ("a0.h3", "logits"): -3.0, ("input", "a0.h3<q>"): 2.0},
        node_scores={"a0.h3": -4.0, "input": 0.5},
        name="demo",
    )
    g = c.to_networkx()
    assert g.nodes["a0.h3"] == {"kind": "head", "layer": 0, "head": 3, "qkv": None, "score": -4.0}
    assert g.nodes["a0.h1<k>"]["kind"] == "head_input"
    assert g.nodes["a0.h1<k>"]["head"] == 1
    assert g.nodes["logits"]["kind"] == "logits"
    assert g.nodes["logits"]["layer"] is None
    e = g.edges["a0.h3", "logits"]
    assert e == {"score": -3.0, "weight": 3.0, "qkv": "", "internal": False}
    assert g.edges["input", "a0.h1<k>"]["qkv"] == "k"
    # key/value head 1 feeds query heads 2 and 3; only a0.h3 is in the circuit
    assert g.has_edge("a0.h1<k>", "a0.h3")
    assert not g.has_edge("a0.h1<k>", "a0.h2")
    assert g.edges["a0.h3<q>", "a0.h3"]["internal"] is True
    assert nx.has_path(g, "input", "logits")
    assert g.graph["name"] == "demo"
    assert g.graph["shape"] == GQA.as_dict()


def test_networkx_and_json_round_trips_exact() -> None:
    graph = random_graph(GQA, seed=3)
    c = Circuit.from_mask(
        graph, graph.top_mask(40), extract_method="top-n", params={"n": 40, "by": "abs"}, name="x"
    )
    c.faithfulness = 0.123456789
    assert circuit_from_networkx(c.to_networkx()) == c
    back = circuit_from_json(circuit_to_json(c))
    assert back == c
    assert back.edges == c.edges  # float-exact
    assert json.loads(circuit_to_json(c))["graph"]["format"] == "circuits.circuit/1"


def test_the_file_names_its_format_first_and_the_graph_view_does_not() -> None:
    c = Circuit(GQA, {("input", "logits"): -1.0}, name="x")
    data = circuit_to_dict(c)
    assert list(data["graph"])[:2] == ["format", "name"] and data["graph"]["format"] == CIRCUIT_FORMAT
    assert "format" not in c.to_networkx().graph
    data["graph"]["format"] = "circuits.circuit/0"
    with pytest.raises(
        InputError, match=r"^c\.json: graph attribute 'format' is 'circuits\.circuit/0', expected"
    ):
        circuit_from_dict(data, source="c.json")


def test_params_with_tuples_round_trip() -> None:
    c = Circuit(GQA, {("input", "logits"): -1.0}, params={"sizes": (1, 2)})
    assert c.params == {"sizes": [1, 2]}
    assert circuit_from_json(circuit_to_json(c)) == c


def test_save_load_and_errors(tmp_path) -> None:
    c = Circuit(GQA, {("input", "logits"): -1.0}, provenance={"model": "toy", "relation": "r"})
    path = write_circuit(c, tmp_path / "sub" / "c.json")
    assert read_circuit(path) == c
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary files left
    with pytest.raises(InputError, match="no such circuit file"):
        read_circuit(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: malformed JSON"):
        read_circuit(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not circuit JSON"):
        read_circuit(tmp_path / "other.json")
    with pytest.raises(InputError, match="node_scores"):
        Circuit(GQA, {("input", "logits"): -1.0}, node_scores={"a0.h0": 1.0})


def test_with_edges_keeps_provenance() -> None:
    graph = random_graph(GQA)
    c = Circuit.from_mask(graph, graph.top_mask(10))
    keep = list(c.edges)[:3]
    sub = c.with_edges(keep, extract_method="sub")
    assert list(sub.edges) == keep
    assert sub.extract_method == "sub"
    assert sub.provenance == c.provenance
    assert set(sub.node_scores) <= {s for s, _ in keep}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 60), kv=st.sampled_from([1, 2, 4]))
def test_round_trips_property(seed: int, n: int, kv: int) -> None:
    shape = GraphShape(2, 4, kv)
    graph = random_graph(shape, seed)
    c = Circuit.from_mask(graph, graph.top_mask(n, by="signed"), extract_method="top-n")
    assert np.array_equal(c.to_mask(), graph.top_mask(n, by="signed"))
    assert circuit_from_networkx(c.to_networkx()) == c
    assert circuit_from_json(circuit_to_json(c)) == c
