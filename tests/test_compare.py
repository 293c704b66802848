"""Similarities, cross-task faithfulness, shared core, reuse matrices and clustering."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuits.circuit import Circuit
from circuits.compare import (
    METRICS,
    ReuseMatrix,
    cluster,
    compare,
    cross_task_faithfulness,
    cross_task_matrix,
    edge_jaccard,
    head_share,
    node_jaccard,
    overlap_coefficient,
    rank_correlation,
    rank_correlation_matrix,
    reuse_matrix,
    shared_core,
    specific_parts,
    weighted_jaccard,
)
from circuits.extract import prune, pruned_top_n, top_n
from circuits.graph import GraphShape, ScoredGraph
from circuits.vocab import InputError

SHAPE = GraphShape(2, 2, 1)
A = Circuit(
    SHAPE,
    {("input", "a0.h0<q>"): -2.0, ("a0.h0", "logits"): -1.0, ("input", "m1"): -1.0},
    provenance={"model": "toy", "relation": "a"},
)
B = Circuit(
    SHAPE,
    {("input", "a0.h0<q>"): -1.0, ("a1.h1", "logits"): -3.0},
    provenance={"model": "toy", "relation": "b"},
)


def test_exact_values_on_hand_built_circuits() -> None:
    assert edge_jaccard(A, B) == pytest.approx(1 / 4)
    # nodes: A {input, a0.h0, logits, m1}, B {input, a0.h0, a1.h1, logits}
    assert node_jaccard(A, B) == pytest.approx(3 / 5)
    assert overlap_coefficient(A, B) == pytest.approx(1 / 2)
    assert overlap_coefficient(A, B, level="node") == pytest.approx(3 / 4)
    # union weights: min 1 (shared edge); max 2 + 1 + 1 + 3 = 7
    assert weighted_jaccard(A, B) == pytest.approx(1 / 7)
    assert head_share(A, B) == pytest.approx(1 / 2)  # {a0.h0} vs {a0.h0, a1.h1}
    result = compare(A, B)
    assert result["common_heads"] == ["a0.h0"]
    assert result["common_edges"] == 1
    assert result["heads_of_a_in_b"] == 1.0
    assert result["heads_of_b_in_a"] == 0.5
    with pytest.raises(InputError, match="'edge' or 'node'"):
        overlap_coefficient(A, B, level="head")


def test_empty_circuits() -> None:
    empty = Circuit(SHAPE, {})
    for name, fn in METRICS.items():
        assert fn(empty, empty) == 1.0, name
        assert 0.0 <= fn(empty, A) <= 1.0, name


edge_lists = st.lists(st.tuples(st.integers(0, 200), st.floats(-5, 5, allow_nan=False)), max_size=25)


def circuit_from(items: list[tuple[int, float]], graph_edges: list[tuple[str, str]]) -> Circuit:
    return Circuit(GraphShape(2, 4, 2), {graph_edges[i % len(graph_edges)]: v for i, v in items})


EDGES = [(s, r) for s, r, _ in ScoredGraph(GraphShape(2, 4, 2), np.zeros((11, 19))).edges()]


@settings(max_examples=60, deadline=None)
@given(a=edge_lists, b=edge_lists)
def test_similarity_properties(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    ca, cb = circuit_from(a, EDGES), circuit_from(b, EDGES)
    for name, fn in METRICS.items():
        ab, ba = fn(ca, cb), fn(cb, ca)
        assert ab == pytest.approx(ba), name  # symmetric
        assert -1e-12 <= ab <= 1 + 1e-12, name  # in range
        assert fn(ca, ca) == pytest.approx(1.0), name  # 1 against itself


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), by=st.sampled_from(["signed", "abs"]))
def test_rank_correlation_properties(seed: int, by: str) -> None:
    rng = np.random.default_rng(seed)
    shape = GraphShape(2, 2, 1)
    g1 = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    g2 = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    r = rank_correlation(g1, g2, by=by)
    assert r == pytest.approx(rank_correlation(g2, g1, by=by))
    assert -1.0 <= r <= 1.0
    assert rank_correlation(g1, g1, by=by) == 1.0


def test_rank_correlation_exact() -> None:
    shape = GraphShape(1, 1, 1)
    g = ScoredGraph(shape, np.arange(15, dtype=float).reshape(3, 5))
    reverse = ScoredGraph(shape, -g.scores)
    assert rank_correlation(g, reverse) == pytest.approx(-1.0)
    assert rank_correlation(g, ScoredGraph(shape, 2 * g.scores + 1)) == pytest.approx(1.0)
    assert math.isnan(rank_correlation(g, ScoredGraph(shape, np.zeros((3, 5)))))
    with pytest.raises(InputError, match="shapes"):
        rank_correlation(g, ScoredGraph(GraphShape(2, 1, 1), np.zeros((5, 9))))
    m = rank_correlation_matrix({"g": g, "r": reverse})
    assert np.allclose(m.values, [[1, -1], [-1, 1]])


def test_shared_core_and_specific_parts() -> None:
    c = Circuit(
        SHAPE,
        {("input", "a0.h0<q>"): -3.0, ("input", "m1"): -1.0},
        provenance={"model": "toy", "relation": "c"},
    )
    core = shared_core([A, B, c], 2)
    assert core.edges == {("input", "a0.h0<q>"): pytest.approx(-2.0), ("input", "m1"): -1.0}
    assert shared_core([A, B, c], 3).edges == {("input", "a0.h0<q>"): pytest.approx(-2.0)}
    assert shared_core([A, B, c], 1).n_edges == 4
    assert core.provenance == {"model": "toy", "relations": ["a", "b", "c"]}
    parts = specific_parts([A, B, c], 2)
    assert set(parts["a"].edges) == {("a0.h0", "logits")}
    assert set(parts["b"].edges) == {("a1.h1", "logits")}
    assert parts["c"].n_edges == 0
    with pytest.raises(InputError, match="k must lie"):
        shared_core([A, B], 3)
    with pytest.raises(InputError, match="no circuits"):
        shared_core([])


def test_reuse_matrix_and_clustering() -> None:
    rng = np.random.default_rng(1)
    shape = GraphShape(3, 4, 2)
    base = rng.normal(size=(shape.n_senders, shape.n_receivers))
    graphs = {}
    for name, noise in [("x1", 0.05), ("x2", 0.05), ("y1", 3.0)]:
        scores = base + noise * rng.normal(size=base.shape) if name != "y1" else rng.normal(size=base.shape)
        graphs[name] = ScoredGraph(shape, scores, {"model": "toy", "relation": name})
    graphs["y2"] = ScoredGraph(
        shape, graphs["y1"].scores + 0.05 * rng.normal(size=base.shape), {"model": "toy", "relation": "y2"}
    )
    circuits = {n: top_n(g, 40) for n, g in graphs.items()}
    m = reuse_matrix(circuits, "edge_jaccard")
    assert np.allclose(m.values, m.values.T)
    assert np.allclose(np.diag(m.values), 1)
    assert m.pairs()[0][:2] in {("x1", "x2"), ("y1", "y2")}
    tree = cluster(m)
    assert set(tree.order) == set(circuits)
    assert {frozenset(tree.order[:2]), frozenset(tree.order[2:])} == {
        frozenset({"x1", "x2"}),
        frozenset({"y1", "y2"}),
    }
    assert tree.newick.endswith(";")
    assert all(n in tree.newick for n in circuits)
    custom = reuse_matrix(list(circuits.values()), lambda a, b: 0.5 if a is not b else 1.0)
    assert custom.metric == "<lambda>"
    assert custom.values[0, 1] == 0.5
    csv = m.to_csv().splitlines()
    assert csv[0] == "edge_jaccard,x1,x2,y1,y2"
    assert csv[1].startswith("x1,1,")
    with pytest.raises(InputError, match="unknown similarity"):
        reuse_matrix(circuits, "cosine")
    with pytest.raises(InputError, match="share labels"):
        reuse_matrix([A, A])
    assert cluster(ReuseMatrix(["only"], np.ones((1, 1)), "x")).order == ["only"]


def test_cross_task_faithfulness_with_fake_evaluator() -> None:
    rng = np.random.default_rng(2)
    shape = GraphShape(2, 2, 1)
    ga = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)), {"relation": "a"})
    gb = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)), {"relation": "b"})

    def faith_on_b(mask: np.ndarray) -> float:  # share of B's negative mass kept
        return float(-(gb.scores[mask]).clip(max=0).sum() / -(gb.scores[gb.mask]).clip(max=0).sum())

    ca = prune(top_n(ga, 20))
    ca.name = "a"
    assert ca.n_edges > 0
    result = cross_task_faithfulness(ca, gb, faith_on_b)
    own = pruned_top_n(gb, ca.n_edges)
    assert own.n_edges <= ca.n_edges
    assert result.source == "a"
    assert result.target == "b"
    assert result.n_edges == ca.n_edges
    assert result.transferred == pytest.approx(faith_on_b(ca.to_mask()))
    assert result.own == pytest.approx(faith_on_b(own.to_mask()))
    assert result.ratio == pytest.approx(result.transferred / result.own)
    cb = prune(top_n(gb, 20))
    matrix, rows = cross_task_matrix(
        {"a": ca, "b": cb}, {"a": ga, "b": gb}, {"a": faith_on_b, "b": faith_on_b}
    )
    assert matrix.symmetric is False
    assert len(rows) == 4
    expected = cross_task_faithfulness(ca, gb, faith_on_b, own=cb if cb.n_edges == ca.n_edges else None)
    assert matrix.values[0, 1] == pytest.approx(expected.ratio)
    assert matrix.values[1, 1] == pytest.approx(1.0)  # B's own circuit against itself
    with pytest.raises(InputError, match="shapes"):
        cross_task_faithfulness(ca, ScoredGraph(GraphShape(1, 1, 1), np.zeros((3, 5))), faith_on_b)
