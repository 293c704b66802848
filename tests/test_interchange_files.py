"""EAP-IG / MIB graph files this engine did not write: files made by hand, and malformed fields named."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from circuits.graph import GraphShape, ScoredGraph
from circuits.store.mib_format import ENGINE_KEY
from circuits.store.mib_json import from_mib_json, read_mib_json
from circuits.store.mib_pt import from_mib_pt, read_mib_pt, to_mib_pt
from circuits.vocab import InputError

# ------------------------------------------------------------------ (c) files written by hand
HAND = {
    "cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
    "nodes": {
        "input": {"in_graph": True},
        "a0.h0": {"in_graph": False},
        "a0.h1": {"in_graph": True},
        "m0": {"in_graph": False},
        "logits": {"in_graph": True},
    },
    "edges": {
        "input->a0.h0<q>": {"score": 0.01, "in_graph": False},
        "input->a0.h0<k>": {"score": 0.02, "in_graph": False},
        "input->a0.h0<v>": {"score": 0.03, "in_graph": False},
        "input->a0.h1<q>": {"score": 0.04, "in_graph": True},
        "input->a0.h1<k>": {"score": 0.05, "in_graph": False},
        "input->a0.h1<v>": {"score": 0.06, "in_graph": False},
        "input->m0": {"score": 0.07, "in_graph": False},
        "a0.h0->m0": {"score": 0.08, "in_graph": False},
        "a0.h1->m0": {"score": 0.09, "in_graph": False},
        "input->logits": {"score": 0.1, "in_graph": False},
        "a0.h0->logits": {"score": 0.11, "in_graph": False},
        "a0.h1->logits": {"score": -0.12, "in_graph": True},
        "m0->logits": {"score": 0.13, "in_graph": False},
    },
}


def test_a_hand_written_json_file_loads_with_scores_in_place(tmp_path):
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(HAND))
    back = read_mib_json(path)
    g = back.graph
    shape = GraphShape(1, 2, 2)
    assert g.shape == shape and not back.ours
    assert g.metadata["score_method"] == "imported" and g.metadata["d_model"] == 8
    a0h1 = shape.head_sender(0, 1)
    assert g.scores[0, shape.q_receiver(0, 1)] == np.float32(0.04)
    assert g.scores[0, shape.k_receiver(0, 1)] == np.float32(0.05)
    assert g.scores[0, shape.v_receiver(0, 0)] == np.float32(0.03)
    assert g.scores[shape.head_sender(0, 0), shape.mlp_receiver(0)] == np.float32(0.08)
    assert g.scores[a0h1, shape.logits_receiver] == np.float32(-0.12)
    assert g.scores[shape.mlp_sender(0), shape.logits_receiver] == np.float32(0.13)
    assert int((g.scores != 0).sum()) == 13
    assert back.circuit.edges == {
        ("input", "a0.h1<q>"): pytest.approx(0.04),
        ("a0.h1", "logits"): pytest.approx(-0.12),
    }
    # edges left out: score 0, not in the graph
    sparse = {**HAND, "edges": {"m0->logits": {"score": 1.5, "in_graph": True}}}
    back = from_mib_json(sparse)
    assert int((back.graph.scores != 0).sum()) == 1 and list(back.circuit.edges) == [("m0", "logits")]


def test_a_hand_made_pt_file_loads_with_scores_in_place(tmp_path):
    n_layers, n_heads = 2, 2
    senders = ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"]
    receivers = [f"a{layer}.h{h}<{x}>" for layer in range(n_layers) for x in "qkv" for h in range(n_heads)]
    receivers = [*receivers[:6], "m0", *receivers[6:], "m1", "logits"]
    scores = torch.zeros(len(senders), len(receivers))
    column = receivers.index
    scores[senders.index("m0"), column("a1.h1<v>")] = -2.5
    scores[senders.index("a0.h0"), column("m0")] = 0.75
    scores[senders.index("a1.h1"), column("logits")] = 4.0
    in_graph = torch.zeros_like(scores, dtype=torch.bool)
    in_graph[senders.index("m0"), column("a1.h1<v>")] = True
    data = {
        "cfg": {"n_layers": n_layers, "n_heads": n_heads, "parallel_attn_mlp": False, "d_model": 16},
        "src_nodes": senders,
        "dst_nodes": receivers,
        "edges_scores": scores,
        "edges_in_graph": in_graph,
        "nodes_in_graph": torch.zeros(len(senders), dtype=torch.bool),
    }
    torch.save(data, tmp_path / "hand.pt")
    back = read_mib_pt(tmp_path / "hand.pt")
    shape = back.graph.shape
    assert shape == GraphShape(2, 2, 2)
    assert back.graph.scores[shape.mlp_sender(0), shape.v_receiver(1, 1)] == -2.5
    assert back.graph.scores[shape.head_sender(0, 0), shape.mlp_receiver(0)] == 0.75
    assert back.graph.scores[shape.head_sender(1, 1), shape.logits_receiver] == 4.0
    assert back.circuit.edges == {("m0", "a1.h1<v>"): -2.5}
    # src_nodes as a dict (EAP-IG's docstring) reads too
    assert (
        from_mib_pt({**data, "src_nodes": dict.fromkeys(senders, True)}).graph.n_edges == back.graph.n_edges
    )


# ------------------------------------------------------------------ (e) errors
class Pickled:
    """A custom class: weights_only loading must refuse it."""


def test_a_pt_file_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"cfg": {}, "payload": Pickled()}, path)
    with pytest.raises(InputError, match=r"evil\.pt: refused: torch\.load\(weights_only=True\).*Pickled"):
        read_mib_pt(path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"junk\.pt"):
        read_mib_pt(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="no such"):
        read_mib_pt(tmp_path / "missing.pt")


def _with(path: str, value):
    data = json.loads(json.dumps(HAND))
    *parents, last = path.split("/")
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("cfg", KeyError, "field 'cfg' is missing"),
        ("edges", [], "field 'edges' is 'list'; it must be an object"),
        ("cfg/n_heads", "2", r"cfg\['n_heads'\] is '2'; it must be a positive integer"),
        ("cfg/parallel_attn_mlp", KeyError, "cfg has no 'parallel_attn_mlp'"),
        ("cfg/parallel_attn_mlp", 0, r"cfg\['parallel_attn_mlp'\] is 0; it must be true or false"),
        ("cfg/n_key_value_heads", 3, r"cfg\['n_key_value_heads'\] is 3; it must be a positive divisor"),
        (
            "edges/m0->logits/score",
            "big",
            r"edges\['m0->logits'\]\['score'\] is 'big'; it must be a finite number",
        ),
        ("edges/m0->logits/score", float("nan"), r"\['score'\] is nan"),
        (
            "edges/m0->logits/in_graph",
            1,
            r"edges\['m0->logits'\]\['in_graph'\] is 1; it must be true or false",
        ),
        ("edges/m0->logits/in_graph", KeyError, r"\['in_graph'\] is None"),
        ("edges/m0->a0.h0<q>", {"score": 0, "in_graph": False}, r"edges\['m0->a0.h0<q>'\] is not an edge"),
        (
            "edges/m1->logits",
            {"score": 0, "in_graph": False},
            r"the sender of edges\['m1->logits'\] is 'm1'; senders",
        ),
        (
            "edges/input->a0.h2<q>",
            {"score": 0, "in_graph": False},
            r"receiver .* is 'a0.h2<q>'; receivers .* head < 2",
        ),
        ("edges/input=>m0", {"score": 0, "in_graph": False}, "an edge name is 'input=>m0'"),
        ("nodes/a0.h7", {"in_graph": False}, "a node name is 'a0.h7'"),
        ("nodes/m0/in_graph", KeyError, r"nodes\['m0'\]\['in_graph'\] is None"),
        ("nodes/m0/neurons", [True, False], "neuron-level graphs cannot be imported"),
        (ENGINE_KEY, {"format": "other"}, "this engine writes an object with format"),
    ],
)
def test_malformed_json_fields_name_the_file_field_and_value(tmp_path, path, value, message):
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(_with(path, value)))
    with pytest.raises(InputError, match=message) as caught:
        read_mib_json(file)
    assert str(caught.value).startswith(str(file))


def test_malformed_pt_fields_are_named(tmp_path):
    shape = GraphShape(1, 2, 2)
    good = to_mib_pt(ScoredGraph(shape, np.ones((shape.n_senders, shape.n_receivers))))
    cases = [
        ({"edges_in_graph": KeyError}, "field 'edges_in_graph' is missing"),
        (
            {"edges_scores": torch.zeros(4, 7)},
            r"'edges_scores' has shape \(4, 7\); the cfg's graph needs \(4, 8\)",
        ),
        ({"edges_scores": [[0.0]]}, "'edges_scores' is a list; it must be a tensor"),
        ({"dst_nodes": [*good["dst_nodes"][:-1], "out"]}, "'dst_nodes' has 8 names and 'out' at position 7"),
        (
            {"edges_in_graph": torch.ones(4, 8, dtype=torch.bool)},
            r"edges_in_graph\[1, 0\] \(a0.h0->a0.h0<q>\) is true",
        ),
        ({"edges_in_graph": torch.full((4, 8), 0.5)}, "dtype torch.float32; it must be bool"),
        ({"neurons_in_graph": torch.ones(4, 8)}, "neuron-level graphs cannot be imported"),
        ({"cfg": {"n_layers": 1}}, "cfg has no 'n_heads'"),
    ]
    for change, message in cases:
        data = dict(good)
        for key, value in change.items():
            if value is KeyError:
                del data[key]
            else:
                data[key] = value
        torch.save(data, tmp_path / "bad.pt")
        with pytest.raises(InputError, match=message):
            read_mib_pt(tmp_path / "bad.pt")
