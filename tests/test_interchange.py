"""EAP-IG / MIB graph files: round trips, hand-written files, grouped-query folding, errors, sizes, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from circuits.circuit import Circuit
from circuits.graph import GraphShape, ScoredGraph
from circuits.store import load_scored, save_scored
from circuits.store.mib import IMPORTED_CIRCUIT, export_mib, load_graph_or_circuit
from circuits.store.mib_format import (
    ENGINE_KEY,
    KV_MARKER,
    MIB_SIZES,
    mib_n_edges,
    mib_receiver_names,
    mib_size,
)
from circuits.store.mib_graph import MibGraph
from circuits.store.mib_json import from_mib_json, read_mib_json, to_mib_json, write_mib_json
from circuits.store.mib_pt import from_mib_pt, read_mib_pt, to_mib_pt, write_mib_pt
from circuits.vocab import InputError

GALLERY = Path(__file__).resolve().parent.parent / "graphs" / "smollm2-135m" / "country_capital_city"


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama"])
def scored(request):
    """A scored graph of each tiny model: multi-head GPT-2 and grouped-query Llama (4 heads, 2 kv heads)."""
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings
    from circuits.models import load_model

    settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    graph, _ = score_relation(load_model(request.param), "country_capital_city", settings, progress=False)
    return graph


def write(path: Path, fmt: str, source, **options) -> Path:
    return (write_mib_json if fmt == "json" else write_mib_pt)(path, source, **options)


def read(path: Path, fmt: str, **options):
    return (read_mib_json if fmt == "json" else read_mib_pt)(path, **options)


def raw_in_graph(path: Path) -> set[str]:
    """Names of the edges a file marks in_graph, read without this engine's reader."""
    if path.suffix == ".json":
        return {name for name, e in json.loads(path.read_text())["edges"].items() if e["in_graph"]}
    data = torch.load(path, map_location="cpu", weights_only=True)
    rows, cols = torch.nonzero(data["edges_in_graph"], as_tuple=True)
    return {
        f"{data['src_nodes'][s]}->{data['dst_nodes'][r]}"
        for s, r in zip(rows.tolist(), cols.tolist(), strict=True)
    }


def fold(name: str, shape: GraphShape) -> tuple[str, str]:
    """Their edge name as our edge: a query head's <k>/<v> receiver becomes its key/value head's."""
    sender, receiver = name.split("->")
    if receiver.endswith(("<k>", "<v>")):
        layer, head = receiver[1:-3].split(".h")
        receiver = f"a{layer}.h{int(head) // shape.group}{receiver[-3:]}"
    return sender, receiver


def their_edge_names(n_layers: int, n_heads: int, parallel: bool = False) -> set[str]:
    """Every edge EAP-IG's graph has, enumerated by its construction rule (residual stream order)."""
    names, stream = set(), ["input"]
    for layer in range(n_layers):
        heads = [f"a{layer}.h{h}" for h in range(n_heads)]
        names |= {f"{s}->{h}<{x}>" for s in stream for h in heads for x in "qkv"}
        readers = stream if parallel else stream + heads
        names |= {f"{s}->m{layer}" for s in readers}
        stream = [*stream, *heads, f"m{layer}"]
    return names | {f"{s}->logits" for s in stream}


# ------------------------------------------------------------------ (a) scored graphs round trip
@pytest.mark.parametrize("fmt", ["json", "pt"])
def test_scored_graph_round_trip_is_bit_exact(scored, fmt, tmp_path):
    path = write(tmp_path / f"g.{fmt}", fmt, scored)
    back = read(path, fmt)
    assert back.ours and back.circuit is None
    assert back.graph.shape == scored.shape
    assert back.graph.scores.dtype == np.float32
    assert np.array_equal(back.graph.scores.view(np.uint32), scored.scores.view(np.uint32))
    assert back.graph.metadata == scored.metadata
    assert raw_in_graph(path) == set()


@pytest.mark.parametrize("fmt", ["json", "pt"])
def test_in_graph_set_survives_and_folds_as_the_file_says(scored, fmt, tmp_path):
    path = write(tmp_path / f"g.{fmt}", fmt, scored, fraction=0.05, by="signed")
    marked = raw_in_graph(path)
    assert len(marked) == mib_size(mib_n_edges(scored.shape), 0.05) > 0
    back = read(path, fmt)
    assert set(back.circuit.edges) == {fold(name, scored.shape) for name in marked}
    assert np.array_equal(back.graph.scores, scored.scores)
    if scored.shape.n_kv_heads == scored.shape.n_heads:  # ungrouped ranking is ours
        assert np.array_equal(back.circuit.to_mask(), scored.top_mask(len(marked), by="signed"))


def test_every_edge_of_their_graph_is_written_with_their_node_list(scored):
    data = to_mib_json(scored)
    shape = scored.shape
    assert set(data["edges"]) == their_edge_names(shape.n_layers, shape.n_heads, shape.parallel)
    assert list(data["nodes"]) == [*shape.sender_names(), "logits"]
    assert all(isinstance(n["in_graph"], bool) for n in data["nodes"].values())
    assert {"n_layers", "n_heads", "parallel_attn_mlp", "d_model"} <= set(data["cfg"])
    assert data["cfg"]["d_model"] == 32  # tiny models
    assert data["cfg"][KV_MARKER] == "circuit-graph-engine"
    pt = to_mib_pt(scored)
    assert pt["src_nodes"] == shape.sender_names() and pt["dst_nodes"] == mib_receiver_names(shape)
    assert tuple(pt["edges_scores"].shape) == (shape.n_senders, shape.n_layers * (3 * shape.n_heads + 1) + 1)
    assert pt["nodes_in_graph"].dtype == torch.bool and pt["edges_in_graph"].dtype == torch.bool


@pytest.mark.parametrize("fmt", ["json", "pt"])
def test_parallel_blocks_write_their_edges_and_read_back(fmt, tmp_path):
    shape = GraphShape(2, 4, 2, parallel=True)
    rng = np.random.default_rng(0)
    graph = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)), {"relation": "r"})
    assert set(to_mib_json(graph)["edges"]) == their_edge_names(2, 4, parallel=True)
    assert to_mib_json(graph)["cfg"]["parallel_attn_mlp"] is True
    back = read(write(tmp_path / f"p.{fmt}", fmt, graph), fmt)
    assert back.graph.shape == shape and np.array_equal(back.graph.scores, graph.scores)


# ------------------------------------------------------------------ (b) circuits round trip
@pytest.mark.parametrize("fmt", ["json", "pt"])
@pytest.mark.parametrize("with_scores", [False, True])
def test_circuit_round_trip_is_identical(scored, fmt, with_scores, tmp_path):
    circuit = Circuit.from_mask(
        scored,
        scored.top_mask(12, by="signed"),
        extract_method="top-n",
        params={"n": 12, "by": "signed"},
        name="top12",
    )
    circuit.faithfulness = 0.625
    path = write(tmp_path / f"c.{fmt}", fmt, circuit, scored=scored if with_scores else None)
    back = read(path, fmt)
    assert back.circuit == circuit
    expected = scored.scores if with_scores else np.where(circuit.to_mask(), scored.scores, 0)
    assert np.array_equal(back.graph.scores, expected)
    # nodes in_graph: send an in-graph edge and receive one (input always receives)
    data = to_mib_json(circuit)
    inside = {n for n, e in data["nodes"].items() if e["in_graph"]}
    assert "logits" in inside and inside - {"logits"} <= circuit.senders()


def test_circuit_without_provenance_reads_back_as_a_foreign_circuit(scored):
    circuit = Circuit.from_mask(scored, scored.top_mask(8, by="abs"), name="c")
    back = from_mib_json(to_mib_json(circuit, provenance=False))
    assert back.ours  # the cfg marker stays: k/v copies are still read as repeats
    assert back.circuit.name == "imported" and back.circuit.extract_method == "custom"
    assert set(back.circuit.edges) == set(circuit.edges)
    assert back.circuit.edges == circuit.edges


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


# ------------------------------------------------------------------ (d) grouped-query attention
def test_foreign_per_query_head_kv_scores_are_summed_and_ored():
    cfg = {"n_layers": 1, "n_heads": 4, "parallel_attn_mlp": False, "d_model": 8, "n_key_value_heads": 2}
    edges = {
        "input->a0.h0<k>": {"score": 1.0, "in_graph": False},
        "input->a0.h1<k>": {"score": 2.0, "in_graph": True},
        "input->a0.h2<v>": {"score": -0.5, "in_graph": False},
        "input->a0.h3<v>": {"score": -0.25, "in_graph": False},
        "input->a0.h3<q>": {"score": 7.0, "in_graph": False},
    }
    back = from_mib_json({"cfg": cfg, "nodes": {}, "edges": edges})
    shape = back.graph.shape
    assert shape == GraphShape(1, 4, 2)
    assert back.graph.scores[0, shape.k_receiver(0, 0)] == 3.0
    assert back.graph.scores[0, shape.v_receiver(0, 1)] == -0.75
    assert back.graph.scores[0, shape.q_receiver(0, 3)] == 7.0
    assert back.circuit.edges == {("input", "a0.h0<k>"): 3.0}
    # without n_key_value_heads in cfg: --kv-heads, else multi-head attention
    plain = {k: v for k, v in cfg.items() if k != "n_key_value_heads"}
    assert from_mib_json({"cfg": plain, "nodes": {}, "edges": edges}, kv_heads=2).graph.shape == shape
    assert from_mib_json({"cfg": plain, "nodes": {}, "edges": edges}).graph.shape == GraphShape(1, 4, 4)
    with pytest.raises(InputError, match="contradicts cfg"):
        from_mib_json({"cfg": cfg, "nodes": {}, "edges": edges}, kv_heads=4)
    with pytest.raises(InputError, match="--kv-heads must be a positive divisor"):
        from_mib_json({"cfg": plain, "nodes": {}, "edges": edges}, kv_heads=3)


def test_our_export_repeats_a_kv_score_on_each_query_head_and_says_so():
    shape = GraphShape(1, 4, 2)
    scores = np.zeros((shape.n_senders, shape.n_receivers))
    scores[0, shape.k_receiver(0, 1)] = 0.3
    circuit = Circuit(shape, {("input", "a0.h1<v>"): -0.7})
    data = to_mib_json(circuit, scored=ScoredGraph(shape, scores))
    assert data["cfg"]["n_key_value_heads"] == 2 and data["cfg"][KV_MARKER] == "circuit-graph-engine"
    k_scores = [data["edges"][f"input->a0.h{h}<k>"]["score"] for h in range(4)]
    assert k_scores == [0.0, 0.0, pytest.approx(0.3), pytest.approx(0.3)]
    assert [data["edges"][f"input->a0.h{h}<v>"] for h in range(4)] == [
        {"score": 0.0, "in_graph": False},
        {"score": 0.0, "in_graph": False},
        {"score": -0.7, "in_graph": True},
        {"score": -0.7, "in_graph": True},
    ]
    back = from_mib_json(data)  # the marker: the copies are one value, not summed
    assert back.graph.scores[0, shape.k_receiver(0, 1)] == np.float32(0.3)
    assert back.circuit == circuit
    foreign = {**data, "cfg": {k: v for k, v in data["cfg"].items() if k != KV_MARKER}}
    del foreign[ENGINE_KEY]
    assert from_mib_json(foreign).circuit.edges == {("input", "a0.h1<v>"): pytest.approx(-1.4)}


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


# ------------------------------------------------------------------ (f) MIB's ten sizes
@pytest.mark.parametrize("fmt", ["mib-json", "mib-pt"])
def test_sizes_mib_writes_ten_files_with_the_sizes_in_graph(scored, fmt, tmp_path):
    save_scored(tmp_path / "scored", scored)
    rows = export_mib(tmp_path / "scored", out=tmp_path / "sizes", fmt=fmt, sizes="mib")
    ext = fmt.split("-")[1]
    labels = ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100"]
    assert [Path(r["path"]).name for r in rows] == [f"country_capital_city_{x}.{ext}" for x in labels]
    n = mib_n_edges(scored.shape)
    for row, fraction in zip(rows, MIB_SIZES, strict=True):
        assert len(raw_in_graph(Path(row["path"]))) == row["in_graph"] == int(fraction * n)
    assert len(raw_in_graph(Path(rows[-1]["path"]))) == n
    back = read(Path(rows[6]["path"]), ext)  # 10 %
    assert back.circuit.name == "mib-10" and back.circuit.params["by"] == "abs"
    assert np.array_equal(back.graph.scores, scored.scores)
    smaller = {e for e in read(Path(rows[5]["path"]), ext).circuit.edges}
    assert smaller <= set(back.circuit.edges)  # nested: the top 5 % is inside the top 10 %


def test_sizes_and_options_are_checked(scored, tmp_path):
    save_scored(tmp_path / "scored", scored)
    circuit = Circuit.from_mask(scored, scored.top_mask(5), name="c")
    circuit.save(tmp_path / "c.json")
    with pytest.raises(InputError, match="is a circuit; --sizes"):
        export_mib(tmp_path / "c.json", out=tmp_path / "x", sizes="mib")
    with pytest.raises(InputError, match="--by ranks edges for --sizes"):
        export_mib(tmp_path / "scored", out=tmp_path / "x.json", by="signed")
    with pytest.raises(InputError, match="--scored adds"):
        export_mib(tmp_path / "scored", out=tmp_path / "x.json", scored=tmp_path / "scored")
    with pytest.raises(InputError, match="unknown graph file format"):
        export_mib(tmp_path / "scored", out=tmp_path / "x.json", fmt="graphml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a scored-graph directory"):
        load_graph_or_circuit(tmp_path / "empty")
    assert isinstance(load_graph_or_circuit(tmp_path), ScoredGraph)  # a store relation folder
    assert MibGraph.from_ours(scored, d_model=99).cfg["d_model"] == 99


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"model": "tiny-llama", "d_model": 64}, 64),  # recorded at scoring time: wins over the table
        ({"model": "tiny-llama"}, 32),  # older metadata: KNOWN_D_MODEL by model name
        ({"model": "tiny-llama", "d_model": None}, 32),
        ({"model": "unknown"}, 0),
    ],
)
def test_d_model_prefers_the_metadata_over_the_known_table(metadata, expected):
    shape = GraphShape(1, 2, 1)
    graph = ScoredGraph(shape, np.zeros((shape.n_senders, shape.n_receivers)), metadata)
    assert to_mib_json(graph)["cfg"]["d_model"] == expected
    assert to_mib_json(graph, d_model=8)["cfg"]["d_model"] == 8
    with pytest.raises(InputError, match="--d-model must be a non-negative integer"):
        MibGraph.from_ours(graph, d_model=-1)


# ------------------------------------------------------------------ (g) the command line
def test_export_and_import_commands(scored, capsys, tmp_path):
    save_scored(tmp_path / "scored", scored)
    code, out, _ = run_cli(
        capsys, "export", tmp_path / "scored", "--format", "mib-json", "--out", tmp_path / "g.json"
    )
    assert code == 0 and f"wrote {tmp_path / 'g.json'} (mib-json: " in out
    code, out, _ = run_cli(capsys, "import", tmp_path / "g.json", "--out", tmp_path / "back")
    assert code == 0 and "written by this engine" in out and out.count("wrote") == 1
    back = load_scored(tmp_path / "back")
    assert np.array_equal(back.scores, scored.scores)
    assert back.metadata["imported_from"] == {"path": str(tmp_path / "g.json"), "format": "mib-json"}
    assert {k: v for k, v in back.metadata.items() if k != "imported_from"} == scored.metadata

    circuit = Circuit.from_mask(
        scored, scored.top_mask(9, by="signed"), extract_method="top-n", params={"n": 9, "by": "signed"}
    )
    circuit.save(tmp_path / "c.circuit.json")
    code, out, _ = run_cli(
        capsys,
        "export",
        tmp_path / "c.circuit.json",
        "--format",
        "mib-pt",
        "--out",
        tmp_path / "c.pt",
        "--scored",
        tmp_path / "scored",
        "--json",
    )
    assert code == 0 and json.loads(out)[0]["in_graph"] == sum(
        scored.shape.group if r.endswith(("<k>", "<v>")) else 1 for _, r in circuit.edges
    )
    code, out, _ = run_cli(capsys, "import", tmp_path / "c.pt", "--out", tmp_path / "c", "--json")
    report = json.loads(out)
    assert code == 0 and report["circuit"] == str(tmp_path / "c" / IMPORTED_CIRCUIT)
    assert Circuit.load(report["circuit"]) == circuit
    assert np.array_equal(load_scored(tmp_path / "c").scores, scored.scores)

    code, out, _ = run_cli(
        capsys,
        "export",
        tmp_path / "scored",
        "--format",
        "mib-json",
        "--sizes",
        "mib",
        "--by",
        "signed",
        "--out",
        tmp_path / "ten",
        "--stem",
        "task_model",
    )
    assert code == 0 and out.count("wrote") == 10 and (tmp_path / "ten" / "task_model_0.1.json").is_file()


def test_command_errors_exit_2_with_one_line(capsys, tmp_path):
    (tmp_path / "bad.json").write_text('{"cfg": {}, "nodes": {}, "edges": {}}')
    code, _, err = run_cli(capsys, "import", tmp_path / "bad.json", "--out", tmp_path / "o")
    assert code == 2 and "bad.json: cfg has no 'n_layers'" in err and err.count("\n") == 1
    (tmp_path / "g.txt").write_text("{}")
    code, _, err = run_cli(capsys, "import", tmp_path / "g.txt", "--out", tmp_path / "o")
    assert code == 2 and "cannot tell the format from the suffix '.txt'" in err
    code, _, err = run_cli(
        capsys, "export", tmp_path / "nothing", "--format", "mib-pt", "--out", tmp_path / "x.pt"
    )
    assert code == 2 and "no such file or folder" in err


# ------------------------------------------------------------------ (h) a gallery circuit (no model)
@pytest.mark.skipif(
    not (GALLERY / "top-n-signed-150" / "circuit.json").is_file(), reason="gallery not present"
)
def test_a_gallery_circuit_exports_and_loads_back_identically(tmp_path):
    circuit = load_graph_or_circuit(GALLERY / "top-n-signed-150")
    assert isinstance(circuit, Circuit) and circuit.shape == GraphShape(30, 9, 3)
    data = to_mib_json(circuit)
    assert data["cfg"]["d_model"] == 576 and data["cfg"]["n_key_value_heads"] == 3
    assert len(data["edges"]) == mib_n_edges(circuit.shape) == 123211
    assert from_mib_json(json.loads(json.dumps(data))).circuit == circuit
    rows = export_mib(GALLERY / "top-n-signed-150", out=tmp_path / "c.json", scored=GALLERY)
    back = read_mib_json(rows[0]["path"])
    assert back.circuit == circuit
    assert np.array_equal(back.graph.scores, load_scored(GALLERY / "scored").scores)


def test_json_export_and_import_do_not_import_torch(tmp_path):
    shape = GraphShape(2, 4, 2)
    save_scored(
        tmp_path / "s", ScoredGraph(shape, np.ones((shape.n_senders, shape.n_receivers)), {"model": "m"})
    )
    code = textwrap.dedent(f"""
        import json, sys
        from circuits.cli import main
        assert main(["export", {str(tmp_path / "s")!r}, "--format", "mib-json", "--out", {str(tmp_path / "ten")!r},
                     "--sizes", "mib"]) == 0
        assert main(["import", {str(tmp_path / "ten" / "s_1.json")!r}, "--out", {str(tmp_path / "b")!r}]) == 0
        print(json.dumps({{"torch": "torch" in sys.modules}}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"torch": False}
