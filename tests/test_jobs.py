"""The jobs of circuits.jobs: score -> store -> evaluate, extract/draw/compare stored circuits, reuse."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pydot
import pytest
from conftest import toy_scored

from circuits.attribution.score import score_relation
from circuits.attribution.settings import ScoreSettings
from circuits.compare import METRICS, compare
from circuits.compare.ceilings import NoiseSettings
from circuits.evaluate.heldout import evaluate_scored
from circuits.extract import prune, top_n
from circuits.jobs import compare_files, extract_stored, load_circuit, render_circuit_file, run_reuse
from circuits.jobs.compare_record import CircuitComparison
from circuits.jobs.reuse import ReuseReport
from circuits.store import MANIFEST, Gallery, read_circuit, save_scored
from circuits.vocab import InputError, NotEnoughFactsError, ScoreMethod

ALL = 10**9  # a rank threshold every fact passes: tiny random models know nothing


# ------------------------------------------------------------------ scoring and evaluation


def test_exact_method_refines_top_edges(tiny_gpt2, tmp_path):
    settings = ScoreSettings(score_method="exact", max_pairs=6, max_rank=10**9, exact_top=20)
    graph, _ = score_relation(tiny_gpt2, "country_language", settings, progress=False)
    assert graph.metadata["exact_refined_edges"] == 20


def test_user_relation_file_is_evaluated_from_its_copy(tiny_gpt2, tmp_path):
    rel = tmp_path / "mine.json"
    samples = [
        {"subject": s, "object": o}
        for s, o in [
            ("France", "Paris"),
            ("Spain", "Madrid"),
            ("Italy", "Rome"),
            ("Germany", "Berlin"),
            ("Greece", "Athens"),
            ("Egypt", "Cairo"),
            ("Peru", "Lima"),
            ("Cuba", "Havana"),
        ]
    ]
    rel.write_text(
        json.dumps({"name": "mine", "prompt_templates": ["The capital of {} is"], "samples": samples})
    )
    graph, pairs = score_relation(
        tiny_gpt2, rel, ScoreSettings(score_method="eap", max_rank=10**9), progress=False
    )
    save_scored(tmp_path / "out", graph, pairs.relation)
    rel.unlink()  # the evaluation must not need the original file
    result, _ = evaluate_scored(tmp_path / "out", model=tiny_gpt2, progress=False)
    assert result.n_pairs == len(pairs.heldout)


def test_settings_reject_unknown_names():
    with pytest.raises(InputError, match="unknown score method"):
        ScoreSettings(score_method="acdc")
    with pytest.raises(InputError, match="unknown ablation"):
        ScoreSettings(ablation="resample")


def test_settings_steps_and_what_a_stored_graph_must_match():
    eap = ScoreSettings(score_method="eap", ig_steps=7)
    assert eap.score_method is ScoreMethod.EAP
    assert eap.steps == 1  # EAP takes one gradient step whatever ig_steps says
    assert ScoreSettings(ig_steps=7).steps == 7
    want = ScoreSettings(score_method="eap-ig", ig_steps=3, max_pairs=8, seed=2).stored_as()
    assert want == {
        "score_method": "eap-ig",
        "metric": "logit-diff",
        "ablation": "counterfactual",
        "ig_steps": 3,
        "seed": 2,
        "max_pairs": 8,
        "heldout_fraction": 0.4,
        "known_filter": {"max_rank": 1, "min_prob": 0.0, "heldout_fraction": 0.4},
        "prompt_request": {"templates": "best", "shots": None},
        "pair_edges": 4096,
        "positions": "summed",
    }
    with pytest.raises(InputError, match="at least 1"):
        ScoreSettings(ig_steps=0)
    with pytest.raises(InputError, match="at least 1"):
        ScoreSettings(batch_size=0)
    with pytest.raises(InputError, match="max_pairs must be at least 2"):
        ScoreSettings(max_pairs=1)


def test_score_metadata_and_evaluation_curve(tiny_llama, tiny_gpt2, tmp_path):
    settings = ScoreSettings(score_method="eap", max_pairs=10, max_rank=ALL, seed=3)
    graph, pairs = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    meta = graph.metadata
    assert meta["model"] == "tiny-llama"
    assert meta["relation"] == "country_capital_city"
    assert meta["score_method"] == "eap"
    assert meta["ig_steps"] == 1
    assert meta["seed"] == 3
    assert meta["max_pairs"] == 10
    assert meta["n_pairs_scoring"] + meta["n_pairs_heldout"] == len(pairs.pairs) <= 10
    assert meta["known_filter"]["max_rank"] == ALL
    save_scored(tmp_path, graph, pairs.relation)
    result, back = evaluate_scored(tmp_path, model=tiny_llama, progress=False)
    assert np.array_equal(back.scores, graph.scores)
    assert result.n_pairs == len(pairs.heldout)
    assert result.n_edges == graph.n_edges
    assert result.absolute[-1] == pytest.approx(1.0, abs=1e-4)  # every edge kept
    assert result.extra == {
        "split": "heldout",
        "relation": "country_capital_city",
        "model": "tiny-llama",
        "score_method": "eap",
        "positions": "summed",
    }
    scoring, _ = evaluate_scored(tmp_path, model=tiny_llama, progress=False, split="scoring")
    assert scoring.n_pairs == len(pairs.scoring)
    with pytest.raises(InputError, match="shape"):
        evaluate_scored(tmp_path, model=tiny_gpt2, progress=False)


# ------------------------------------------------------------------ stored circuits


def test_extract_stored_writes_next_to_the_graph_or_into_a_store(tmp_path: Path) -> None:
    graph = toy_scored("r1")
    save_scored(tmp_path / "r1", graph)
    circuit, out, message = extract_stored(tmp_path / "r1", size=12)
    assert out == tmp_path / "r1" / "top-n-signed-12.circuit.json"
    assert message == ""
    assert read_circuit(out) == circuit
    assert circuit.edges == prune(top_n(graph, 12)).edges
    assert circuit.name == "top-n-signed-12"
    assert circuit.n_edges <= 12
    assert circuit.faithfulness is None  # not evaluated
    named, out, _ = extract_stored(
        tmp_path / "r1",
        extract_method="greedy",
        fraction=0.1,
        by="abs",
        pruned=False,
        name="mine",
        out=tmp_path / "x" / "c.json",
    )
    assert out == tmp_path / "x" / "c.json"
    assert named.name == "mine"
    assert named.extract_method == "greedy"
    assert named.n_edges == round(0.1 * graph.n_edges)
    stored, folder, _ = extract_stored(tmp_path / "r1", size=12, store=tmp_path / "g", formats=("dot",))
    assert folder == tmp_path / "g" / "org__toy" / "r1" / "top-n-signed-12"
    assert (folder / "circuit.dot").is_file()
    assert load_circuit(folder) == stored
    assert "org__toy/r1/top-n-signed-12" in json.loads((tmp_path / "g" / MANIFEST).read_text())["entries"]
    # a store relation folder works as well as the scored folder itself
    Gallery(tmp_path / "g").save_scored(graph)
    again, _, _ = extract_stored(tmp_path / "g" / "org__toy" / "r1", size=12, out=tmp_path / "again.json")
    assert again.edges == stored.edges
    with pytest.raises(InputError, match="not a scored-graph directory"):
        extract_stored(tmp_path, size=3)


def test_compare_files_and_render_circuit_file(tmp_path: Path) -> None:
    for name, seed in (("r1", 0), ("r2", 1)):
        save_scored(tmp_path / name, toy_scored(name, seed))
    _, a, _ = extract_stored(tmp_path / "r1", size=20)
    _, b, _ = extract_stored(tmp_path / "r2", size=20)
    same = compare_files(a, a)
    assert same.similarities["edge_jaccard"] == 1.0 and same.measure("edge_jaccard") == 1.0
    assert same.diff is None and same.noise is None and "diff" not in same.to_dict()
    assert same.common_edges == same.edges_a == same.edges_b and same.units is None
    result = compare_files(a, b, diff=tmp_path / "d")
    assert result.a == "top-n-signed-20"
    assert 0.0 <= result.similarities["edge_jaccard"] <= 1.0
    assert list(result.similarities) == list(METRICS)
    assert result.diff is not None and result.diff[0] == str(tmp_path / "d.dot")
    # the record is compare()'s dictionary and the diff's files, and reads back
    assert result.to_dict() == {**compare(load_circuit(a), load_circuit(b)), "diff": result.diff}
    assert CircuitComparison.from_dict(result.to_dict()) == result
    # without the scored graphs' per-pair scores at hand, the noise references say why they are missing
    lonely = tmp_path / "lonely.json"
    lonely.write_text(a.read_text())
    skipped = compare_files(lonely, b, noise=NoiseSettings(5, 2, 2, 0))
    assert skipped.noise is not None and skipped.noise.similarities is None
    assert "no scored graph beside" in str(skipped.noise.skipped)
    assert CircuitComparison.from_dict(skipped.to_dict()).to_dict() == skipped.to_dict()
    assert pydot.graph_from_dot_file(str(tmp_path / "d.dot"))
    rendered = render_circuit_file(a, formats=("dot",))
    assert rendered.written == [a.with_suffix(".dot")]
    assert rendered.message == ""
    rendered = render_circuit_file(a, diff=b, formats=("dot",))
    assert rendered.written == [tmp_path / "r1" / "top-n-signed-20.circuit-vs-top-n-signed-20.circuit.dot"]
    rendered = render_circuit_file(a, color_by="qkv", out=tmp_path / "out.svg", formats=("dot",))
    assert rendered.written == [tmp_path / "out.dot"]
    with pytest.raises(InputError, match="no such circuit file"):
        render_circuit_file(tmp_path / "missing.json")


# ------------------------------------------------------------------ the reuse sweep

PICKS = ["country_capital_city", "country_language", "country_continent"]


def test_reuse_on_tiny_llama_stores_everything_and_reuses_it(tiny_llama, tmp_path: Path) -> None:
    settings = ScoreSettings(max_pairs=8, max_rank=ALL)
    report = run_reuse(PICKS, model=tiny_llama, settings=settings, size=20, store=tmp_path, progress=False)
    assert report.model == "tiny-llama"
    assert report.relations == PICKS
    assert report.skipped == {}
    assert report.similarity == "edge_jaccard"
    assert [row.relation for row in report.circuits] == PICKS
    for row in report.circuits:
        assert row.source == "scored"
        assert row.faithfulness is not None
        assert np.isfinite(row.faithfulness)
        assert 0 < row.n_edges <= 20
    folder = Path(report.folder)
    assert folder == tmp_path / "tiny-llama" / "reuse"
    for name in (
        "edge_jaccard.csv",
        "node_jaccard.csv",
        "weighted_jaccard.csv",
        "edge_overlap.csv",
        "head_share.csv",
        "spearman.csv",
        "heatmap.svg",
        "heads.svg",
        "cross_task.csv",
        "cross_task.svg",
        "core.json",
        "core.svg" if shutil.which("dot") else "core.dot",  # the gallery keeps the DOT only without Graphviz
        "clustering.json",
        "report.json",
    ):
        assert (folder / name).is_file(), name
    rows = list(csv.reader(io.StringIO((folder / "edge_jaccard.csv").read_text())))
    assert rows[0] == ["edge_jaccard", *PICKS]
    assert [row[0] for row in rows[1:]] == PICKS
    matrix = np.array([[float(v) for v in row[1:]] for row in rows[1:]])
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(np.diag(report.matrices["edge_jaccard"].values), 1.0)
    assert report.matrices["edge_jaccard"].names == PICKS
    assert len(report.cross_task) == len(PICKS) ** 2
    assert set(report.clustering.order) == set(PICKS)
    # report.json is the record's stored layout (the similarity under "metric"), and reads back
    stored = json.loads((folder / "report.json").read_text())
    unstored = ("folder", "seconds")  # known once the folder is written
    assert stored == json.loads(json.dumps({k: v for k, v in report.to_dict().items() if k not in unstored}))
    assert stored["relations"] == PICKS and stored["metric"] == "edge_jaccard"
    assert ReuseReport.from_dict(stored).to_dict() == stored
    entries = json.loads((tmp_path / MANIFEST).read_text())["entries"]
    key = folder.relative_to(tmp_path).as_posix()
    assert entries[key]["kind"] == "reuse"
    assert entries[key]["relations"] == PICKS
    assert "edge_jaccard.csv" in entries[key]["files"]
    for rel in PICKS:
        assert entries[f"tiny-llama/{rel}/scored"]["kind"] == "scored"
        assert entries[f"tiny-llama/{rel}/top-n-signed-20"]["kind"] == "circuit"
    first = Gallery(tmp_path).circuits("tiny-llama")
    assert sorted(first) == sorted(PICKS)

    # a second run (the model loaded again by name) reuses the stored graphs and finds the same circuits
    again = run_reuse(
        PICKS, model="tiny-llama", settings=settings, size=20, store=tmp_path, progress=False, cross=False
    )
    assert {row.source for row in again.circuits} == {"stored"}
    assert again.relations == PICKS
    assert Gallery(tmp_path).circuits("tiny-llama") == first
    for before, after in zip(report.circuits, again.circuits, strict=True):
        assert {k: v for k, v in after.to_dict().items() if k not in ("source", "seconds")} == {
            k: v for k, v in before.to_dict().items() if k not in ("source", "seconds")
        }
    assert again.matrices["edge_jaccard"].as_dict() == report.matrices["edge_jaccard"].as_dict()
    assert again.cross_task == []
    assert not (folder / "cross_task.csv").exists()  # the reuse folder is replaced as one unit

    # a stored graph made under another known-fact filter is not reused: tiny-llama knows no fact at
    # rank 1, so asking for top-1 facts must rescore (and fail), never return the max_rank=ALL graph
    strict = ScoreSettings(max_pairs=8, max_rank=1)
    with pytest.raises(NotEnoughFactsError):
        run_reuse(PICKS, model=tiny_llama, settings=strict, size=20, store=tmp_path, progress=False)


def test_reuse_refuses_bad_arguments(tiny_llama, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 2 relations"):
        run_reuse(["country_language"], model=tiny_llama, store=tmp_path, progress=False)
    with pytest.raises(InputError, match="unknown --similarity"):
        run_reuse(PICKS, model=tiny_llama, similarity="cosine", store=tmp_path, progress=False)
    with (
        pytest.deprecated_call(match="'metric' is now 'similarity'"),
        pytest.raises(InputError, match="cosine"),
    ):
        run_reuse(PICKS, model=tiny_llama, metric="cosine", store=tmp_path, progress=False)
    with pytest.raises(TypeError, match="similarity= only"):
        run_reuse(PICKS, model=tiny_llama, metric="head_share", similarity="node_jaccard", store=tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
def test_reuse_on_embedded_model(tmp_path: Path) -> None:
    picks = ["country_capital_city", "country_language"]
    report = run_reuse(
        picks,
        model="smollm2-135m",
        settings=ScoreSettings(max_pairs=8, ig_steps=2),
        size=150,
        store=tmp_path,
        progress=False,
    )
    assert len(report.relations) == 2
    folder = Path(report.folder)
    assert (folder / "edge_jaccard.csv").is_file()
    assert (folder / "heatmap.svg").is_file()
    for row in report.circuits:
        assert row.faithfulness is not None
    # a second run reuses the stored graphs
    again = run_reuse(
        picks,
        model="smollm2-135m",
        settings=ScoreSettings(max_pairs=8, ig_steps=2),
        size=150,
        store=tmp_path,
        progress=False,
        cross=False,
    )
    assert {row.source for row in again.circuits} == {"stored"}
