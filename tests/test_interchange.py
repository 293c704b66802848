"""EAP-IG / MIB graph files: round trips of scored graphs and circuits, grouped-query folding, MIB's sizes.

Files written by hand and malformed ones are in ``test_interchange_files``, the commands in
``test_interchange_cli``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits.circuit import Circuit
from circuits.graph import GraphShape, ScoredGraph
from circuits.store import save_scored, write_circuit
from circuits.store.mib import export_mib, load_graph_or_circuit
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
from circuits.store.mib_pt import read_mib_pt, to_mib_pt, write_mib_pt
from circuits.vocab import InputError


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
    write_circuit(circuit, tmp_path / "c.json")
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
