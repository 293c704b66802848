"""Results on disk: scored graphs (round trip, errors), the graphs/ gallery, its manifest, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY_SHAPE, toy_scored

from circuits.attribution.score import score_relation
from circuits.attribution.settings import ScoreSettings
from circuits.circuit import Circuit
from circuits.extract import prune, top_n
from circuits.jobs import diagram_writer
from circuits.relations import load_relation
from circuits.store import (
    CIRCUIT_FILE,
    MANIFEST,
    META,
    RELATION,
    SCORES,
    Gallery,
    circuit_name,
    load_scored,
    safe_name,
    save_scored,
    scored_dir,
)
from circuits.vocab import InputError

HAS_DOT = shutil.which("dot") is not None
SHAPE = TOY_SHAPE
scored = toy_scored


# ------------------------------------------------------------------ scored graphs


def test_scored_graph_round_trips_bit_for_bit(tiny_llama, tmp_path):
    settings = ScoreSettings(score_method="eap-ig", ig_steps=2, max_pairs=8, max_rank=10**9)
    graph, pairs = score_relation(tiny_llama, "country_language", settings, progress=False)
    save_scored(tmp_path, graph, pairs.relation)
    back = load_scored(tmp_path)
    assert np.array_equal(back.scores, graph.scores)
    assert back.scores.dtype == np.float32
    assert back.metadata == json.loads(json.dumps(graph.metadata))
    for key in (
        "model",
        "relation",
        "score_method",
        "metric",
        "ablation",
        "ig_steps",
        "n_pairs_scoring",
        "split_seed",
        "package_version",
    ):
        assert key in back.metadata
    assert back.metadata["ig_steps"] == 2
    assert back.metadata["n_pairs_scoring"] == len(pairs.scoring)


def test_save_scored_writes_three_files_and_no_temporaries(tmp_path: Path) -> None:
    graph = scored(seed=2)
    relation = load_relation("country_language")
    out = save_scored(tmp_path / "new" / "dir", graph, relation)
    assert out == tmp_path / "new" / "dir"
    assert sorted(p.name for p in out.iterdir()) == sorted([SCORES, META, RELATION])
    back = load_scored(out)
    assert back.shape == SHAPE
    assert np.array_equal(back.scores, graph.scores.astype(np.float32))
    assert back.metadata == graph.metadata
    assert load_relation(out / RELATION).facts == relation.facts
    # saving again over the old files leaves no temporary file behind either
    save_scored(out, scored(seed=3))
    assert sorted(p.name for p in out.iterdir()) == sorted([SCORES, META, RELATION])
    assert np.array_equal(load_scored(out).scores, scored(seed=3).scores.astype(np.float32))


def test_load_scored_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not a scored-graph directory \(graph\.json is missing\)"):
        load_scored(tmp_path)
    save_scored(tmp_path, scored())
    meta = tmp_path / META
    text = meta.read_text()
    meta.write_text("{")
    with pytest.raises(InputError, match=r"graph\.json: malformed JSON"):
        load_scored(tmp_path)
    meta.write_text("[1, 2]")
    with pytest.raises(InputError, match="top level must be an object, not list"):
        load_scored(tmp_path)
    data = json.loads(text)
    meta.write_text(json.dumps({k: v for k, v in data.items() if k != "shape"}))
    with pytest.raises(InputError, match="field 'shape' is missing"):
        load_scored(tmp_path)
    meta.write_text(json.dumps({**data, "shape": {"layers": 2}}))
    with pytest.raises(InputError, match="field 'shape' is invalid"):
        load_scored(tmp_path)
    (tmp_path / SCORES).unlink()
    meta.write_text(text)
    with pytest.raises(InputError, match=r"scores\.safetensors is missing"):
        load_scored(tmp_path)


def test_scores_are_stored_compactly_and_the_dense_files_still_load(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from circuits.graph import PairScores

    graph = scored(seed=4)
    top = graph.ranked(by="abs")[:6]
    graph.pair_scores = PairScores(top, np.round(np.random.default_rng(0).normal(size=(3, 6)), 2))
    save_scored(tmp_path / "new", graph)
    tensors = load_file(str(tmp_path / "new" / SCORES))
    # only existing edges; pair edges as int32; pair scores that float16 cannot hold exactly stay float32
    assert tensors["edge_scores"].shape == (graph.n_edges,) and "scores" not in tensors
    assert tensors["pair_edges"].dtype == np.int32 and tensors["pair_scores"].dtype == np.float32
    back = load_scored(tmp_path / "new")
    assert np.array_equal(back.scores, graph.scores)
    assert np.array_equal(back.pair_scores.edges, top)
    assert np.array_equal(back.pair_scores.values, graph.pair_scores.values)
    # a file of version 0.3 (the dense matrix under 'scores') still reads the same
    save_file({"scores": graph.scores}, str(tmp_path / "new" / SCORES))
    assert np.array_equal(load_scored(tmp_path / "new").scores, graph.scores)
    save_file({"edge_scores": np.zeros(5, np.float32)}, str(tmp_path / "new" / SCORES))
    with pytest.raises(InputError, match=r"scores\.safetensors: 'edge_scores' holds \[5\] values"):
        load_scored(tmp_path / "new")


def test_pair_scores_kept_at_half_precision_are_stored_as_float16(tiny, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, pair_edges=40)
    graph, _ = score_relation(tiny, "country_capital_city", settings, progress=False)
    save_scored(tmp_path, graph)
    assert load_file(str(tmp_path / SCORES))["pair_scores"].dtype == np.float16
    assert np.array_equal(load_scored(tmp_path).pair_scores.values, graph.pair_scores.values)


def test_load_scored_reads_the_old_method_key(tmp_path: Path) -> None:
    save_scored(tmp_path, scored())
    data = json.loads((tmp_path / META).read_text())
    data["method"] = data.pop("score_method")
    (tmp_path / META).write_text(json.dumps(data))
    back = load_scored(tmp_path)
    assert back.metadata["score_method"] == "eap"
    assert "method" not in back.metadata


def test_scored_dir_accepts_a_store_relation_folder(tmp_path: Path) -> None:
    folder = Gallery(tmp_path).save_scored(scored())
    assert scored_dir(folder) == folder
    assert scored_dir(folder.parent) == folder
    with pytest.raises(InputError, match="not a scored-graph directory"):
        scored_dir(tmp_path)


# ------------------------------------------------------------------ gallery


def test_gallery_layout_manifest_and_round_trip(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path / "graphs")
    graph = scored()
    folder = gallery.save_scored(graph)
    assert folder == tmp_path / "graphs" / "org__toy" / "rel" / "scored"
    assert gallery.find_scored("org/toy", "rel", score_method="eap", seed=0) is not None
    assert gallery.find_scored("org/toy", "rel", score_method="eap-ig") is None
    assert gallery.find_scored("org/toy", "other") is None
    circuit = prune(top_n(graph, 30))
    circuit.faithfulness = 0.5
    path, message = gallery.save_circuit(
        circuit, draw=diagram_writer(circuit, ("svg",) if HAS_DOT else ("dot",))
    )
    assert path.name == circuit_name(circuit) == "top-n-signed-30"
    assert not message
    assert gallery.load_circuit("org/toy", "rel", "top-n-signed-30") == circuit
    assert gallery.circuits("org/toy") == {"rel": circuit}
    entries = json.loads((tmp_path / "graphs" / MANIFEST).read_text())["entries"]
    entry = entries["org__toy/rel/top-n-signed-30"]
    assert entry["kind"] == "circuit"
    assert entry["size"] == circuit.n_edges
    assert entry["faithfulness"] == 0.5
    assert entry["model"] == "org/toy"
    assert entry["package_version"]
    assert entry["date"]
    assert CIRCUIT_FILE in entry["files"]
    assert entry["files"] == [CIRCUIT_FILE, "circuit.svg"] if HAS_DOT else [CIRCUIT_FILE, "circuit.dot"]
    assert entries["org__toy/rel/scored"]["kind"] == "scored"
    rebuilt = gallery.rebuild_manifest()["entries"]
    assert set(rebuilt) == set(entries)
    assert rebuilt["org__toy/rel/top-n-signed-30"]["size"] == circuit.n_edges
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


def test_gallery_save_files_and_newest_circuit_per_relation(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    graph = scored("r1")
    small, large = prune(top_n(graph, 10)), prune(top_n(graph, 30))
    small_folder, _ = gallery.save_circuit(small)
    large_folder, _ = gallery.save_circuit(large)
    os.utime(small_folder / CIRCUIT_FILE, (2e9, 2e9))
    os.utime(large_folder / CIRCUIT_FILE, (1e9, 1e9))
    assert gallery.circuits("org/toy") == {"r1": small}
    assert gallery.circuits("org/toy", name=circuit_name(small)) == {"r1": small}
    folder = gallery.save_files(
        "org/toy",
        "reuse",
        {"a.csv": "x,y\n", "b.bin": b"\x00\x01"},
        {"metric": "m"},
        after=lambda d: (d / "c.txt").write_text("late"),
    )
    assert folder == tmp_path / "org__toy" / "reuse"
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "b.bin", "c.txt"]
    assert (folder / "b.bin").read_bytes() == b"\x00\x01"
    entry = gallery.manifest()["entries"]["org__toy/reuse"]
    assert entry["kind"] == "reuse"
    assert entry["metric"] == "m"
    assert entry["files"] == ["a.csv", "b.bin", "c.txt"]
    # the rebuilt manifest keeps what it cannot recompute of the reuse entry
    assert gallery.rebuild_manifest()["entries"]["org__toy/reuse"]["metric"] == "m"
    # every model-level folder of files is kept (analyses across relations), relation folders are not
    gallery.save_files("org/toy", "suppression", {"suppression.json": "{}"}, {"relations": ["r1"]})
    (tmp_path / "manifest.json").unlink()
    rebuilt = gallery.rebuild_manifest()["entries"]
    assert rebuilt["org__toy/suppression"] == {
        "kind": "suppression",
        "model": "org__toy",
        "files": ["suppression.json"],
    }
    assert "org__toy/r1" not in rebuilt and "org__toy/reuse" in rebuilt


def test_broken_manifest_and_stored_graph(tmp_path: Path) -> None:
    gallery = Gallery(tmp_path)
    assert gallery.manifest()["entries"] == {}
    gallery.save_scored(scored())
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(InputError, match=r"rebuild it with Gallery\.rebuild_manifest"):
        gallery.manifest()
    (tmp_path / MANIFEST).write_text('{"entries": []}')
    with pytest.raises(InputError, match="field 'entries' must be an object"):
        gallery.manifest()
    assert set(gallery.rebuild_manifest()["entries"]) == {"org__toy/rel/scored"}
    assert set(gallery.manifest()["entries"]) == {"org__toy/rel/scored"}
    # a stored graph that no longer reads is ignored (and rescored by the caller), not an error
    (gallery.folder("org/toy", "rel", "scored") / META).write_text("{")
    assert gallery.find_scored("org/toy", "rel") is None
