"""The computation graph: edge counts, names, grouped-query receivers, networkx bridge."""

from __future__ import annotations

import numpy as np
import pytest

from circuits.graph import GraphShape, ScoredGraph, edge_mask, to_networkx
from circuits.vocab import InputError, parse_node


def test_gpt2_small_has_32491_edges():
    assert edge_mask(GraphShape(12, 12, 12)).sum() == 32_491


def test_smollm2_shape_has_70651_edges():
    assert edge_mask(GraphShape(30, 9, 3)).sum() == 70_651


def test_parallel_blocks_drop_same_layer_head_to_mlp_edges():
    serial, parallel = GraphShape(2, 3, 3), GraphShape(2, 3, 3, parallel=True)
    assert edge_mask(serial).sum() - edge_mask(parallel).sum() == 2 * 3
    mask = edge_mask(parallel)
    assert not mask[parallel.head_sender(1, 0), parallel.mlp_receiver(1)]
    assert mask[parallel.head_sender(0, 0), parallel.mlp_receiver(1)]


def test_edges_only_point_forward():
    shape = GraphShape(3, 4, 2)
    mask = edge_mask(shape)
    # a head never feeds its own layer's q/k/v, an MLP never feeds its own layer
    for layer in range(3):
        cols = shape.attn_receivers(layer)
        assert not mask[shape.head_sender(layer, 0), cols].any()
        assert not mask[shape.mlp_sender(layer), shape.mlp_receiver(layer)]
        assert mask[shape.head_sender(layer, 3), shape.mlp_receiver(layer)]
    assert mask[:, shape.logits_receiver].all()


def test_grouped_query_receivers_are_per_key_value_head():
    shape = GraphShape(2, 4, 2)
    names = shape.receiver_names()
    assert names[: shape.receivers_per_layer] == [
        "a0.h0<q>",
        "a0.h1<q>",
        "a0.h2<q>",
        "a0.h3<q>",
        "a0.h0<k>",
        "a0.h1<k>",
        "a0.h0<v>",
        "a0.h1<v>",
        "m0",
    ]
    assert names[shape.k_receiver(1, 1)] == "a1.h1<k>"
    assert names[shape.v_receiver(1, 0)] == "a1.h0<v>"
    nxg = to_networkx(ScoredGraph(shape, np.ones((shape.n_senders, shape.n_receivers))))
    # key/value head 1 is read by query heads 2 and 3
    assert sorted(nxg.successors("a1.h1<k>")) == ["a1.h2", "a1.h3"]
    assert sorted(nxg.successors("a1.h0<v>")) == ["a1.h0", "a1.h1"]


def test_names_round_trip_through_parse():
    shape = GraphShape(2, 2, 1)
    for name in shape.sender_names()[1:] + shape.receiver_names()[:-1]:
        kind, layer, head, qkv = parse_node(name)
        rebuilt = f"m{layer}" if kind == "mlp" else f"a{layer}.h{head}" + (f"<{qkv}>" if qkv else "")
        assert rebuilt == name
    with pytest.raises(InputError, match="not a node name"):
        parse_node("attn0")


def test_scored_graph_zeroes_non_edges_and_ranks():
    shape = GraphShape(1, 1, 1)
    scores = np.array([[-3.0, 1.0, 0.5, 2.0, 0.1], [7.0, 7.0, 7.0, -1.0, 4.0], [9.0, 9.0, 9.0, 9.0, -5.0]])
    graph = ScoredGraph(shape, scores)
    assert graph.n_edges == 8
    assert graph.scores[1, 0] == 0.0  # head -> its own q is no edge
    best_abs = graph.top_mask(1, by="abs")
    assert best_abs[2, 4]
    assert best_abs.sum() == 1
    best_signed = graph.top_mask(2, by="signed")
    assert best_signed[2, 4]
    assert best_signed[0, 0]
    with pytest.raises(InputError):
        graph.ranked(by="size")


def test_bad_shapes_are_refused():
    with pytest.raises(InputError, match="multiple"):
        GraphShape(2, 3, 2)
    with pytest.raises(InputError, match="shape"):
        ScoredGraph(GraphShape(1, 1, 1), np.zeros((2, 2)))
