"""Extraction algorithms on hand-built graphs with exact expected circuits."""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.circuit import Circuit
from circuits.extract import (
    extract,
    greedy,
    minimal_circuit,
    node_circuit,
    path_circuit,
    prune,
    pruned_top_n,
    strongest_paths,
    threshold,
    top_n,
)
from circuits.graph import GraphShape, ScoredGraph, to_networkx
from circuits.vocab import InputError

SHAPE = GraphShape(2, 2, 1)  # two layers, two query heads sharing one key/value head


def build(shape: GraphShape, edges: dict[tuple[str, str], float]) -> ScoredGraph:
    scores = np.zeros((shape.n_senders, shape.n_receivers), dtype=np.float32)
    s_names, r_names = shape.sender_names(), shape.receiver_names()
    for (s, r), v in edges.items():
        scores[s_names.index(s), r_names.index(r)] = v
    graph = ScoredGraph(shape, scores, {"model": "toy", "relation": "hand"})
    for s, r in edges:
        assert graph.mask[s_names.index(s), r_names.index(r)], (s, r)
    return graph


HAND = {
    ("a1.h0", "logits"): -5.0,
    ("m0", "a1.h0<q>"): -4.0,
    ("input", "m0"): -3.0,
    ("a0.h1", "logits"): 2.5,
    ("input", "a0.h0<k>"): -2.0,  # key/value head 0 feeds a0.h0 and a0.h1
    ("a1.h1", "m1"): -1.5,  # m1 sends nothing: dangling
    ("a0.h0", "m0"): -1.0,
    ("input", "logits"): -0.5,
}


def test_top_n_signed_and_abs() -> None:
    g = build(SHAPE, HAND)
    assert set(top_n(g, 3, by="signed").edges) == {("a1.h0", "logits"), ("m0", "a1.h0<q>"), ("input", "m0")}
    assert set(top_n(g, 4, by="abs").edges) == {
        ("a1.h0", "logits"),
        ("m0", "a1.h0<q>"),
        ("input", "m0"),
        ("a0.h1", "logits"),
    }
    assert top_n(g, 0).n_edges == 0
    assert top_n(g, 4, by="signed").params == {"n": 4, "by": "signed"}
    with pytest.raises(InputError, match="'signed'"):
        top_n(g, 3, by="max")
    with pytest.raises(InputError, match="non-negative"):
        top_n(g, -1)


def test_threshold() -> None:
    g = build(SHAPE, HAND)
    assert set(threshold(g, 2.0, by="signed").edges) == {
        ("a1.h0", "logits"),
        ("m0", "a1.h0<q>"),
        ("input", "m0"),
        ("input", "a0.h0<k>"),
    }
    assert ("a0.h1", "logits") in threshold(g, 2.0, by="abs").edges
    assert threshold(g, 10.0).n_edges == 0


def test_greedy_grows_from_logits() -> None:
    g = build(SHAPE, HAND)
    c = greedy(g, 4, by="signed")
    # a1.h0 -> logits first, then its q input from m0, then m0's input from input; the fourth:
    # a0.h0 -> m0 (-1.0) beats input -> logits (-0.5); input -> a0.h0<k> is not connected (a0.h0
    # sends no chosen edge yet) and a1.h1 -> m1 is never connected (m1 sends nothing)
    assert set(c.edges) == {("a1.h0", "logits"), ("m0", "a1.h0<q>"), ("input", "m0"), ("a0.h0", "m0")}
    c5 = greedy(g, 5, by="signed")
    assert ("input", "a0.h0<k>") in c5.edges
    assert ("a1.h1", "m1") not in greedy(g, 40).edges or greedy(g, 40).n_edges == g.n_edges


def test_greedy_edges_always_connected() -> None:
    rng = np.random.default_rng(0)
    shape = GraphShape(3, 4, 2)
    g = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    c = greedy(g, 60, by="abs")
    nxg = c.to_networkx()
    for _, receiver in c.edges:  # every chosen receiver reaches the logits inside the circuit
        assert receiver == "logits" or nx.has_path(nxg, receiver, "logits")


def test_prune_exact() -> None:
    g = build(SHAPE, HAND)
    pruned = prune(Circuit.from_mask(g, g.mask & (g.scores != 0)))
    # kept: input -> m0 -> a1.h0<q> -> a1.h0 -> logits; input -> a0.h0<k> -> a0.h0 -> m0;
    # input -> logits. Dropped: a0.h1 -> logits (a0.h1's inputs are not in the circuit... its k/v
    # input is: kv head 0 feeds a0.h1, so it stays), a1.h1 -> m1 (dead and dangling).
    assert set(pruned.edges) == {
        ("a1.h0", "logits"),
        ("m0", "a1.h0<q>"),
        ("input", "m0"),
        ("input", "a0.h0<k>"),
        ("a0.h0", "m0"),
        ("input", "logits"),
        ("a0.h1", "logits"),
    }
    assert pruned.params["pruned"] is True
    assert pruned.params["n_before_pruning"] == 8
    assert prune(pruned) == pruned.with_edges(
        set(pruned.edges), params={**pruned.params, "n_before_pruning": 7}
    )


def test_prune_drops_dead_branch() -> None:
    g = build(SHAPE, {("a0.h1", "logits"): -1.0, ("a1.h0", "logits"): -1.0, ("input", "a1.h0<q>"): -1.0})
    assert set(prune(Circuit.from_mask(g, g.scores != 0)).edges) == {
        ("a1.h0", "logits"),
        ("input", "a1.h0<q>"),
    }
    assert prune(Circuit.from_mask(g, np.zeros_like(g.mask))).n_edges == 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 80))
def test_prune_keeps_exactly_the_edges_on_paths(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    shape = GraphShape(3, 2, 1)
    g = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    c = top_n(g, n, by="abs")
    pruned = prune(c)
    full = to_networkx(g, edges=c.to_mask())  # the engine's own bridge, independent of Circuit
    for u, v in c.edges:
        on_path = (u == "input" or ("input" in full and nx.has_path(full, "input", u))) and (
            v == "logits" or ("logits" in full and nx.has_path(full, v, "logits"))
        )
        assert ((u, v) in pruned.edges) == on_path


def test_minimal_circuit_finds_smallest_size() -> None:
    g = build(SHAPE, HAND)
    order = g.ranked(by="signed")
    total = float(-g.scores.ravel()[order].clip(max=0).sum())

    def evaluate(mask: np.ndarray) -> float:  # monotone fake faithfulness: share of negative mass kept
        return float(-(g.scores[mask]).clip(max=0).sum()) / total

    c = minimal_circuit(g, evaluate, 0.8, by="signed", pruned=False)
    expected = next(n for n in range(1, 20) if evaluate(g.top_mask(n, by="signed")) >= 0.8)
    assert c.params["n"] == expected
    assert c.extract_method == "minimal"
    assert c.faithfulness == pytest.approx(evaluate(c.to_mask()))
    assert c.faithfulness >= 0.8
    assert all(f < 0.8 for n, f in c.params["search"] if n < expected)
    grid = minimal_circuit(g, evaluate, 0.8, sizes=[1, 2, 8, 3, 4], pruned=False)
    # the smallest grid size that reaches the target (sizes are tried in increasing order)
    assert grid.params["n"] == min(n for n in (1, 2, 3, 4, 8) if evaluate(g.top_mask(n, by="signed")) >= 0.8)
    assert grid.params["n"] == 4
    with pytest.raises(InputError, match="no circuit reaches"):
        minimal_circuit(g, evaluate, 1.5)
    # a cap: no candidate is larger; the search fails when the target needs more edges
    capped = minimal_circuit(g, evaluate, 0.8, pruned=False, max_size=expected)
    assert capped.params["n"] == expected and max(n for n, _ in capped.params["search"]) <= expected
    with pytest.raises(InputError, match=f"no circuit reaches faithfulness 0.8 within {expected - 1} edges"):
        minimal_circuit(g, evaluate, 0.8, pruned=False, max_size=expected - 1)
    with pytest.raises(InputError, match="positive"):
        minimal_circuit(g, evaluate, -1)


class FakeEvaluator:
    def __init__(self, value: float) -> None:
        self.value, self.calls = value, 0

    def run_mask(self, mask: np.ndarray):
        self.calls += 1
        return type("Run", (), {"faithfulness": self.value if mask.any() else 0.0})()


def test_minimal_circuit_accepts_an_evaluator() -> None:
    g = build(SHAPE, HAND)
    fake = FakeEvaluator(0.9)
    c = minimal_circuit(g, fake, 0.5, pruned=False)
    assert c.params["n"] == 1
    assert fake.calls == 1
    # pruned, the top 1 and top 2 edges reach no input: the first live circuit has 3 edges
    c = minimal_circuit(g, FakeEvaluator(0.9), 0.5)
    assert c.params["n"] == 3
    assert c.n_edges == 3
    assert [n for n, _ in c.params["search"]] == [1, 2, 3, 4]


def brute_force_paths(g: ScoredGraph, by: str) -> list[float]:
    full = to_networkx(g)
    out = []
    for path in nx.all_simple_paths(full, "input", "logits"):
        logs = []
        for u, v in itertools.pairwise(path):
            data = full.edges[u, v]
            if data["internal"]:
                continue
            s = data["score"]
            strength = abs(s) if by == "abs" else -s
            logs.append(math.log(strength) if strength > 0 else -math.inf)
        out.append(sum(logs))
    return sorted((x for x in out if x > -math.inf), reverse=True)


@pytest.mark.parametrize("by", ["signed", "abs"])
@pytest.mark.parametrize(
    "shape", [GraphShape(2, 2, 1), GraphShape(2, 2, 2), GraphShape(2, 1, 1, parallel=True)]
)
def test_strongest_paths_match_brute_force(by: str, shape: GraphShape) -> None:
    rng = np.random.default_rng(7)
    g = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    expected = brute_force_paths(g, by)[:6]
    paths = strongest_paths(g, 6, by=by)
    assert [p.log_strength for p in paths] == pytest.approx(expected)
    assert len({p.nodes for p in paths}) == len(paths)
    full = to_networkx(g)
    for p in paths:
        assert p.nodes[0] == "input"
        assert p.nodes[-1] == "logits"
        assert all(full.has_edge(u, v) for u, v in itertools.pairwise(p.nodes))
        assert set(p.edges) <= {(u, v) for u, v in itertools.pairwise(p.nodes)}


def test_strongest_paths_hand_built_and_circuit() -> None:
    g = build(SHAPE, HAND)
    paths = strongest_paths(g, 3, by="signed")
    assert paths[0].nodes == ("input", "m0", "a1.h0<q>", "a1.h0", "logits")
    assert paths[0].strength == pytest.approx(60.0)
    assert paths[1].nodes == ("input", "a0.h0<k>", "a0.h0", "m0", "a1.h0<q>", "a1.h0", "logits")
    assert paths[2].nodes == ("input", "logits")
    assert len(paths) == 3  # no other all-negative path exists
    c = path_circuit(g, 2)
    assert set(c.edges) == {
        ("input", "m0"),
        ("m0", "a1.h0<q>"),
        ("a1.h0", "logits"),
        ("input", "a0.h0<k>"),
        ("a0.h0", "m0"),
    }
    assert c.params["paths"][0]["nodes"][1] == "m0"


def test_node_circuit_exact() -> None:
    g = build(SHAPE, HAND)
    # node scores: a1.h0 -5, m0 -4, a0.h1 2.5, a1.h1 -1.5, a0.h0 -1
    c = node_circuit(g, 2, by="signed")
    assert c.params["nodes"] == ["m0", "a1.h0"]
    assert c.nodes() == frozenset({"input", "m0", "a1.h0", "logits"})
    expected = {
        (s, r)
        for s, r in [
            ("input", "m0"),
            ("input", "a1.h0<q>"),
            ("input", "a1.h0<k>"),
            ("input", "a1.h0<v>"),
            ("input", "logits"),
            ("m0", "a1.h0<q>"),
            ("m0", "a1.h0<k>"),
            ("m0", "a1.h0<v>"),
            ("m0", "logits"),
            ("a1.h0", "logits"),
        ]
    }
    assert set(c.edges) == expected
    assert node_circuit(g, 1, by="abs").params["nodes"] == ["a1.h0"]


def test_extract_dispatch() -> None:
    g = build(SHAPE, HAND)
    assert extract(g, "top-n", size=3) == prune(top_n(g, 3))
    assert extract(g, "top-n", size=3, pruned=False) == top_n(g, 3)
    assert extract(g, "greedy", fraction=1.0, pruned=False).n_edges == g.n_edges
    assert extract(g, "threshold", value=2.0, pruned=False).n_edges == 4
    assert extract(g, "threshold", value=2.0).n_edges == 3  # input -> a0.h0<k> dangles
    assert extract(g, "nodes", size=1).params["nodes"] == ["a1.h0"]
    assert extract(g, "paths", size=1).n_edges == 3
    for kwargs, message in [
        ({"extract_method": "best"}, "unknown extraction"),
        ({"extract_method": "top-n"}, "needs a size"),
        ({"extract_method": "threshold"}, "threshold value"),
        ({"extract_method": "minimal"}, "target"),
        ({"extract_method": "top-n", "fraction": 2.0}, "fraction"),
    ]:
        with pytest.raises(InputError, match=message):
            extract(g, **kwargs)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 60))
def test_pruned_top_n_is_the_largest_that_fits(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    shape = GraphShape(3, 2, 1)
    g = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    c = pruned_top_n(g, n)
    m = c.params["n"]
    assert c.n_edges <= n
    assert c == prune(top_n(g, m)).with_edges(set(c.edges), params=c.params)
    if m < g.n_edges:
        assert prune(top_n(g, m + 1)).n_edges > n
