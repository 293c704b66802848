"""Per-pair scores, mask pruning, and the noise references of reuse: bootstraps, split halves, nulls."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from circuits.circuit import Circuit
from circuits.compare import METRICS, rank_correlation
from circuits.compare.ceilings import NoiseSettings, family_noise
from circuits.compare.noise import (
    Redraws,
    bootstrap_interval,
    ceiling,
    on_circuits,
    pair_rows,
    permutation_null,
    pooled_rows,
    redraw_bootstrap,
    redraw_halves,
)
from circuits.extract import prune, pruned_top_n, top_n
from circuits.extract.masks import prune_mask, pruned_top_mask
from circuits.graph import GraphShape, PairScores, ScoredGraph
from circuits.store import load_scored, save_scored
from circuits.uncertainty import centred_interval
from circuits.vocab import InputError

SHAPES = [GraphShape(3, 4, 2), GraphShape(2, 3, 3, parallel=True), GraphShape(4, 2, 1)]
EJ = on_circuits(METRICS["edge_jaccard"])


def synthetic(shape: GraphShape, per_pair: np.ndarray, name: str = "r") -> ScoredGraph:
    """A graph whose scores are the mean of ``per_pair`` ([n, S, R]), every edge keeping its pair scores."""
    graph = ScoredGraph(shape, per_pair.mean(0), {"relation": name})
    edges = np.flatnonzero(graph.mask.ravel())
    graph.pair_scores = PairScores(edges, per_pair.reshape(per_pair.shape[0], -1)[:, edges])
    return graph


def noisy_pairs(
    shape: GraphShape, n: int, seed: int, *, signal: np.ndarray | None = None, noise: float = 1.0
):
    rng = np.random.default_rng(seed)
    base = signal if signal is not None else rng.normal(size=(shape.n_senders, shape.n_receivers))
    return base[None] + noise * rng.normal(size=(n, shape.n_senders, shape.n_receivers))


# ------------------------------------------------------------------ per-pair scores


def test_pair_scores_average_to_the_graph_and_survive_storage(tiny, tmp_path: Path) -> None:
    from circuits import ScoreSettings, score_relation

    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, pair_edges=50)
    graph, _ = score_relation(tiny, "country_capital_city", settings, progress=False)
    ps = graph.pair_scores
    assert ps is not None and ps.values.shape == (graph.metadata["n_pairs_scoring"], 50)
    assert np.array_equal(ps.edges, graph.ranked(by="abs")[:50])
    # kept at half precision (11 significant bits): their mean is the graph's score to about 1e-3
    np.testing.assert_allclose(ps.means(), graph.scores.ravel()[ps.edges], rtol=2e-3, atol=1e-4)
    back = load_scored(save_scored(tmp_path / "g", graph))
    assert back.pair_scores is not None
    assert np.array_equal(back.pair_scores.edges, ps.edges)
    assert np.array_equal(back.pair_scores.values, ps.values)


def test_exact_refinement_replaces_pair_scores_too(tiny_llama) -> None:
    from circuits import ScoreSettings, score_relation

    settings = ScoreSettings(score_method="exact", ig_steps=2, exact_top=4, max_pairs=8, max_rank=10**9)
    graph, _ = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    ps = graph.pair_scores
    assert ps is not None
    # the refined edges are among the strongest; their per-pair changes average to the exact score
    np.testing.assert_allclose(ps.means(), graph.scores.ravel()[ps.edges], rtol=2e-3, atol=1e-4)


def test_pair_scores_must_name_edges() -> None:
    shape = GraphShape(1, 1, 1)
    with pytest.raises(InputError, match="not edges"):
        ScoredGraph(
            shape, np.zeros((3, 5)), {}, PairScores(np.array([5]), np.zeros((2, 1)))
        )  # a0.h0 -> a0.h0<q>
    with pytest.raises(InputError, match="n_pairs"):
        PairScores(np.array([0, 4]), np.zeros((2, 3)))


# ------------------------------------------------------------------ pruning on masks


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_prune_mask_agrees_with_graph_pruning(shape: GraphShape) -> None:
    rng = np.random.default_rng(0)
    graph = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    for density in (0.05, 0.15, 0.4):
        for _ in range(10):
            keep = (rng.random(graph.mask.shape) < density) & graph.mask
            expected = set(prune(Circuit.from_mask(graph, keep)).edges)
            assert set(Circuit.from_mask(graph, prune_mask(shape, keep)).edges) == expected


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pruned_top_mask_is_the_largest_fitting_m(shape: GraphShape) -> None:
    rng = np.random.default_rng(1)
    graph = ScoredGraph(shape, rng.normal(size=(shape.n_senders, shape.n_receivers)))
    order = graph.ranked(by="signed")
    counts = [len(prune(top_n(graph, m)).edges) for m in range(graph.n_edges + 1)]
    assert counts == sorted(counts)  # the pruned top-m circuit only grows
    for n in (1, 5, 12, 40):
        best = max(m for m, c in enumerate(counts) if c <= n)
        for start in (None, 1, best, graph.n_edges):
            mask, m = pruned_top_mask(shape, order, n, start=start)
            assert m == best and int(mask.sum()) == counts[best]
        assert pruned_top_n(graph, n).params["n"] == best


# ------------------------------------------------------------------ redraws, ceilings, nulls


def test_identical_pairs_give_zero_width_intervals_and_full_ceilings() -> None:
    """DESIGN check 12: a statistic that does not depend on the sample has a zero-width interval."""
    shape = SHAPES[0]
    same = np.repeat(noisy_pairs(shape, 1, 0), 6, axis=0)  # six identical pairs
    graph = synthetic(shape, same)
    circuit = pruned_top_n(graph, 15)
    boot = redraw_bootstrap(graph, 15, "signed", n_boot=30)
    assert all(set(d.circuit.edges) == set(circuit.edges) for d in boot)
    value = METRICS["edge_jaccard"](circuit, circuit)
    interval = bootstrap_interval(value, boot, boot, EJ)
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)
    halves = redraw_halves(graph, 15, "signed", n_splits=10)
    iv, values = ceiling(halves, EJ)
    assert np.all(values == 1.0) and (iv.low, iv.high) == (1.0, 1.0)
    null = permutation_null(graph, graph, 15, "signed", {"ej": EJ}, n_perm=10)
    assert np.all(null["ej"] == 1.0)


def test_redraw_with_every_pair_once_is_the_full_sample_circuit() -> None:
    shape = SHAPES[0]
    graph = synthetic(shape, noisy_pairs(shape, 8, 2))
    for by in ("signed", "abs"):
        draw = Redraws(pair_rows(graph), 20, by).draw(np.ones(8))
        assert set(draw.circuit.edges) == set(pruned_top_n(graph, 20, by=by).edges)
        np.testing.assert_allclose(draw.scores(), graph.scores, rtol=1e-5, atol=1e-6)


def test_centred_interval_always_covers_the_value() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        value = float(rng.uniform(0, 1))
        iv = centred_interval(value, rng.uniform(0, 1, size=40), lower=0.0, upper=1.0)
        assert iv.low <= value <= iv.high


def test_noise_tells_shared_from_distinct_circuits() -> None:
    """Two relations built on one signal sit inside each other's null; a different signal falls below it."""
    shape = GraphShape(3, 4, 2)
    rng = np.random.default_rng(4)
    signal = rng.normal(size=(shape.n_senders, shape.n_receivers)) * 3
    other = rng.normal(size=signal.shape) * 3
    a = synthetic(shape, noisy_pairs(shape, 12, 5, signal=signal), "a")
    b = synthetic(shape, noisy_pairs(shape, 12, 6, signal=signal), "b")
    c = synthetic(shape, noisy_pairs(shape, 12, 7, signal=other), "c")
    graphs = {"a": a, "b": b, "c": c}
    circuits = {name: pruned_top_n(g, 25) for name, g in graphs.items()}
    refs = family_noise(
        graphs,
        circuits,
        ["edge_jaccard", "weighted_jaccard", "spearman"],
        settings=NoiseSettings(n_boot=40, n_splits=10, n_perm=40),
    )
    same, different = refs.pairs[("a", "b")], refs.pairs[("a", "c")]
    assert same["edge_jaccard"].p > 0.05
    assert different["edge_jaccard"].p < 0.05
    assert different["edge_jaccard"].relative < same["edge_jaccard"].relative
    for sims in refs.pairs.values():
        for sim in sims.values():
            assert sim.interval.low <= sim.interval.value <= sim.interval.high
    for name in graphs:
        assert 0.0 < refs.ceilings[name]["edge_jaccard"].value <= 1.0
    relative = refs.matrix("edge_jaccard", "relative")
    assert np.allclose(np.diag(relative.values), 1.0)
    assert relative.values[0, 1] == pytest.approx(same["edge_jaccard"].relative)
    # every dictionary is JSON-ready
    json.dumps(refs.as_dict(), allow_nan=False)


def test_pooled_rows_keep_each_graph_on_its_own_candidates() -> None:
    shape = SHAPES[0]
    a = synthetic(shape, noisy_pairs(shape, 4, 8))
    b = synthetic(shape, noisy_pairs(shape, 6, 9))
    rows = pooled_rows(a, b)
    assert rows.n_pairs == 10
    weights_a = np.r_[np.ones(4), np.zeros(6)]
    np.testing.assert_allclose(
        rows.scores(weights_a).ravel()[rows.edges], a.scores.ravel()[rows.edges], atol=1e-5
    )
    with pytest.raises(InputError, match="no per-pair scores"):
        pair_rows(ScoredGraph(shape, a.scores))


def test_rank_correlation_over_top_edges() -> None:
    shape = SHAPES[0]
    rng = np.random.default_rng(10)
    x = rng.normal(size=(shape.n_senders, shape.n_receivers))
    y = x + rng.normal(size=x.shape)
    gx, gy = ScoredGraph(shape, x), ScoredGraph(shape, y)
    assert rank_correlation(gx, gy, top=None) == pytest.approx(
        float(__import__("scipy.stats").stats.spearmanr(gx.scores[gx.mask], gy.scores[gy.mask]).statistic)
    )
    top = rank_correlation(gx, gy, top=10)
    assert -1.0 <= top <= 1.0 and top != pytest.approx(rank_correlation(gx, gy, top=None))


# ------------------------------------------------------------------ the reuse command


def test_reuse_reports_intervals_ceilings_and_nulls(capsys, tmp_path: Path) -> None:
    store = tmp_path / "graphs"
    argv = [
        "reuse",
        "country_capital_city",
        "country_language",
        "country_continent",
        "--model",
        "tiny-llama",
        "--max-rank",
        "1000000000",
        "--max-pairs",
        "10",
        "--ig-steps",
        "2",
        "--size",
        "20",
        "--store",
        str(store),
        "--quiet",
        "--no-cross",
        "--boot",
        "30",
        "--splits",
        "8",
        "--permutations",
        "15",
    ]
    code, out, _ = run_cli(capsys, *argv, "--json")
    assert code == 0
    report = json.loads(out)
    noise = report["noise"]
    assert noise["settings"] == {"n_boot": 30, "n_splits": 8, "n_perm": 15, "seed": 0, "top_edges": 1000}
    assert set(noise["ceilings"]) == set(report["relations"])
    assert len(noise["pairs"]) == 3
    for pair in noise["pairs"]:
        for metric in ("edge_jaccard", "weighted_jaccard", "head_share", "spearman"):
            row = pair[metric]
            assert {"value", "low", "high", "ceiling_a", "ceiling_b", "relative", "null", "p"} <= set(row)
            assert row["low"] <= row["value"] <= row["high"]
    folder = Path(report["folder"])
    for name in ("noise.csv", "edge_jaccard_relative.csv", "heatmap.svg", "heatmap_relative.svg"):
        assert (folder / name).is_file(), name
    assert "split-half ceiling" in (folder / "heatmap.svg").read_text()
    code, out, _ = run_cli(capsys, *argv, "--heatmap", "relative")
    assert code == 0
    assert "split-half ceilings (edge_jaccard" in out
    assert "relative" in out and " [" in out
    assert "relative to the split-half ceilings" in (folder / "heatmap.svg").read_text()
    code, out, _ = run_cli(capsys, *argv, "--boot", "0", "--json")
    assert json.loads(out)["noise"] is None


def test_every_pair_of_relations_is_reported_once() -> None:
    shape = SHAPES[2]
    graphs = {str(i): synthetic(shape, noisy_pairs(shape, 4, i), str(i)) for i in range(4)}
    circuits = {k: pruned_top_n(g, 6) for k, g in graphs.items()}
    refs = family_noise(graphs, circuits, ["edge_jaccard"], settings=NoiseSettings(5, 3, 3))
    assert set(refs.pairs) == set(itertools.combinations(graphs, 2))


def test_compare_reports_intervals_when_the_scored_graphs_are_beside(capsys, tmp_path: Path) -> None:
    paths = []
    for relation in ("country_capital_city", "country_language"):
        folder = tmp_path / relation
        code, _, _ = run_cli(
            capsys,
            "score",
            relation,
            "--model",
            "tiny-llama",
            "--max-rank",
            "1000000000",
            "--max-pairs",
            "10",
            "--ig-steps",
            "2",
            "--out",
            str(folder),
            "--quiet",
        )
        assert code == 0
        code, _, _ = run_cli(
            capsys, "extract", str(folder), "--size", "20", "--out", str(folder / "c.circuit.json")
        )
        assert code == 0
        paths.append(str(folder / "c.circuit.json"))
    argv = ["compare", *paths, "--boot", "40", "--splits", "6", "--permutations", "10"]
    code, out, _ = run_cli(capsys, *argv, "--json")
    assert code == 0
    noise = json.loads(out)["noise"]
    assert set(noise["ceilings"]) == {"A", "B"}
    for metric in ("edge_jaccard", "weighted_jaccard", "head_share", "spearman"):
        row = noise["similarities"][metric]
        assert row["low"] <= row["value"] <= row["high"]
        assert row["value"] == pytest.approx(json.loads(out).get(metric, row["value"]), abs=1e-6)
    code, out, _ = run_cli(capsys, *argv)
    assert "edge_jaccard      " in out and " [" in out and "ceilings" in out and "null" in out
    # a circuit away from its scored graph has no intervals, and says why
    lonely = tmp_path / "lonely.circuit.json"
    lonely.write_text(Path(paths[0]).read_text())
    code, out, _ = run_cli(capsys, "compare", str(lonely), paths[1])
    assert code == 0 and "no intervals: no scored graph beside" in out


def test_cross_task_intervals_from_the_target_pairs(tiny_llama) -> None:
    from circuits import ScoreSettings, heldout_evaluator, score_relation
    from circuits.compare import cross_task_matrix

    settings = ScoreSettings(ig_steps=2, max_pairs=10, max_rank=10**9)
    graphs, evaluators, circuits = {}, {}, {}
    for relation in ("country_capital_city", "country_language"):
        graph, pairs = score_relation(tiny_llama, relation, settings, progress=False)
        graphs[relation], evaluators[relation] = graph, heldout_evaluator(tiny_llama, graph, pairs)
        circuits[relation] = pruned_top_n(graph, 20)
    _, results = cross_task_matrix(circuits, graphs, evaluators, n_boot=60, seed=3)
    for r in results:
        assert r.intervals is not None
        for name in ("transferred", "own"):
            iv = r.intervals[name]
            assert iv.low <= getattr(r, name) <= iv.high
        if r.source == r.target:  # a circuit against itself: the ratio is 1 in every resample
            iv = r.intervals["ratio"]
            assert (iv.value, iv.low, iv.high) == pytest.approx((1.0, 1.0, 1.0))
    again = cross_task_matrix(circuits, graphs, evaluators, n_boot=60, seed=3)[1]
    assert [r.as_dict() for r in again] == [r.as_dict() for r in results]
    assert all(r.intervals is None for r in cross_task_matrix(circuits, graphs, evaluators)[1])
