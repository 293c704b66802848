"""Circuit evaluation: the Evaluator's patched forward, faithfulness curves, CPR, CMD and Hit@k."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import logit_diff, random_batch, run_cli

from circuits.attribution import Harness, attribute_edges
from circuits.attribution.scoring import clean_metric
from circuits.evaluate import FRACTIONS, Evaluator, area, evaluate_graph, faithfulness_interval
from circuits.graph import ScoredGraph, edge_mask
from circuits.uncertainty import Interval, resample_indices
from circuits.vocab import InputError


@pytest.mark.parametrize("ablation", ["counterfactual"])
def test_all_edges_give_clean_and_none_give_corrupted(tiny, ablation):
    batch = random_batch(tiny)
    harness = Harness(tiny)
    ev = Evaluator(harness, batch, ablation=ablation)
    with torch.no_grad():
        clean = logit_diff(tiny, batch, batch.clean).mean().item()
        corrupt = logit_diff(tiny, batch, batch.corrupt).mean().item()
    assert ev.full.metric == pytest.approx(clean, abs=1e-4)
    assert ev.empty.metric == pytest.approx(corrupt, abs=1e-4)
    assert abs(clean - corrupt) > 1e-3  # the check is not vacuous
    assert ev.run_mask(edge_mask(harness.shape)).faithfulness == pytest.approx(1.0, abs=1e-4)


def test_a_head_without_outgoing_edges_matters_only_through_a_norm_after_attention(tiny):
    """With every outgoing edge of a head removed, removing its incoming edges too changes nothing,
    unless a norm follows the attention block (Gemma): its scale, taken from the whole layer's output in
    each forward, carries the head's change to the other heads' writes (the documented coupling)."""
    batch = random_batch(tiny)
    harness = Harness(tiny)
    shape = harness.shape
    ev = Evaluator(harness, batch, ablation="counterfactual")
    layer, head = 1, 0
    cut_out = edge_mask(shape).copy()
    cut_out[shape.head_sender(layer, head)] = False
    cut_in = cut_out.copy()
    cut_in[:, shape.q_receiver(layer, head)] = False
    moved = abs(ev.run_mask(cut_in).metric - ev.run_mask(cut_out).metric)
    if harness.post_attn[layer] is None:
        assert moved < 1e-5
    else:
        assert moved > 1e-3
    assert abs(ev.run_mask(cut_out).metric - ev.full.metric) > 1e-4  # the head's edges matter at all


def test_zero_ablation_of_every_edge_leaves_only_the_attention_biases(tiny):
    """With zero ablation and no edge kept, the final residual is the sum of the b_O biases."""
    batch = random_batch(tiny)
    harness = Harness(tiny)
    ev = Evaluator(harness, batch, ablation="zero")
    d = tiny.cfg.d_model
    resid = torch.zeros(len(batch), batch.clean.shape[1], d)
    for block in tiny.bridge.blocks:
        if block.attn.b_O is not None:
            resid = resid + block.attn.b_O.detach()
    with torch.no_grad():
        logits = tiny.bridge.unembed(tiny.bridge.ln_final(resid))
    fn, _ = clean_metric(harness, batch, "logit-diff")
    expected = fn(logits[torch.arange(len(batch)), batch.last]).mean().item()
    assert ev.empty.metric == pytest.approx(expected, abs=1e-4)
    clean = logit_diff(tiny, batch, batch.clean).mean().item()
    assert ev.full.metric == pytest.approx(clean, abs=1e-4)


def test_mean_ablation_of_every_edge_feeds_the_mean_residual(tiny):
    from circuits.attribution import mean_senders

    batch = random_batch(tiny)
    harness = Harness(tiny)
    means = mean_senders(harness, batch)
    assert means.shape == (harness.shape.n_senders, tiny.cfg.d_model)
    ev = Evaluator(harness, batch, ablation="mean", means=means)
    resid = means.sum(0)
    for block in tiny.bridge.blocks:
        if block.attn.b_O is not None:
            resid = resid + block.attn.b_O.detach()
    with torch.no_grad():
        logits = tiny.bridge.unembed(tiny.bridge.ln_final(resid[None, None]))[0, 0]
    fn, _ = clean_metric(harness, batch, "logit-diff")
    expected = fn(logits.expand(len(batch), -1)).mean().item()
    assert ev.empty.metric == pytest.approx(expected, abs=1e-4)


def test_area_is_the_trapezoid_rule():
    assert area([0.0, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert area([0.0, 0.5, 1.0], [0.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert area([0.1, 0.2], [2.0, 4.0]) == pytest.approx(0.3)


def test_run_mask_counts_edges_and_refuses_other_shapes(tiny_llama):
    batch = random_batch(tiny_llama)
    harness = Harness(tiny_llama)
    ev = Evaluator(harness, batch)
    mask = edge_mask(harness.shape)
    full = ev.run_mask(mask)
    assert full.n_edges == int(mask.sum())
    assert full.faithfulness == pytest.approx(1.0, abs=1e-4)
    assert 0.0 <= full.hit_at_k <= 1.0
    empty = ev.run_mask(np.zeros_like(mask))
    assert empty.n_edges == 0
    assert empty.faithfulness == pytest.approx(0.0, abs=1e-6)
    # non-edges in the mask are ignored; a torch mask works like a numpy one
    everything = ev.run_mask(torch.ones(mask.shape, dtype=torch.bool))
    assert everything.n_edges == full.n_edges
    assert everything.metric == pytest.approx(full.metric, abs=1e-5)
    assert ev.normalize(ev.full.metric) == pytest.approx(1.0)
    assert ev.normalize(ev.empty.metric) == pytest.approx(0.0)
    with pytest.raises(InputError, match="mask has shape"):
        ev.run_mask(np.ones((2, 2), dtype=bool))


def test_evaluate_graph_curves_and_areas(tiny_llama):
    batch = random_batch(tiny_llama, batch=4)
    harness = Harness(tiny_llama)
    ev = Evaluator(harness, batch)
    graph = ScoredGraph(harness.shape, (attribute_edges(harness, batch) / len(batch)).numpy())
    result = evaluate_graph(ev, graph, seed=1)
    assert result.fractions == list(FRACTIONS)
    for curve in (result.signed, result.absolute, result.random, result.hit_at_10):
        assert len(curve) == len(FRACTIONS)
    # the last fraction keeps every edge: the clean run, whichever order edges are taken in
    assert result.signed[-1] == pytest.approx(1.0, abs=1e-4)
    assert result.absolute[-1] == pytest.approx(1.0, abs=1e-4)
    assert result.random[-1] == pytest.approx(1.0, abs=1e-4)
    assert result.cpr == pytest.approx(area(FRACTIONS, result.signed))
    assert result.cmd == pytest.approx(area(FRACTIONS, [abs(1 - f) for f in result.absolute]))
    assert result.random_cpr == pytest.approx(area(FRACTIONS, result.random))
    assert result.clean_metric == ev.full.metric
    assert result.corrupt_metric == ev.empty.metric
    assert result.n_pairs == len(batch)
    assert result.n_edges == graph.n_edges
    # one point of the curve is one circuit run
    n = max(1, round(FRACTIONS[4] * graph.n_edges))
    assert result.signed[4] == pytest.approx(ev.run_mask(graph.top_mask(n, by="signed")).faithfulness)
    assert result.hit_at_10[4] == ev.run_mask(graph.top_mask(n, by="abs")).hit_at_k
    same = evaluate_graph(ev, graph, seed=1)
    assert same.random == result.random  # the random baseline is seeded
    assert set(result.as_dict()) >= {"cpr", "cmd", "random_cpr", "signed", "absolute", "random", "extra"}
    with torch.no_grad():
        clean = logit_diff(tiny_llama, batch, batch.clean).mean().item()
    assert result.clean_metric == pytest.approx(clean, abs=1e-4)


# ------------------------------------------------------------------ bootstrap intervals


@pytest.fixture(scope="module")
def booted(tiny_llama):
    """An evaluator on 8 random pairs, a scored graph of it, and its evaluation with 200 resamples."""
    batch = random_batch(tiny_llama, batch=8)
    harness = Harness(tiny_llama)
    ev = Evaluator(harness, batch)
    graph = ScoredGraph(harness.shape, (attribute_edges(harness, batch) / len(batch)).numpy())
    return ev, graph, evaluate_graph(ev, graph, seed=3, n_boot=200)


def test_bootstrap_of_a_sample_independent_statistic_has_zero_width(booted):
    """DESIGN check 12: F of the full circuit is 1 in every resample, F of the empty one 0."""
    ev, graph, result = booted
    assert ev.faithfulness_interval(ev.full, n_boot=100) == Interval(1.0, 1.0, 1.0)
    assert ev.faithfulness_interval(ev.empty, n_boot=100) == Interval(0.0, 0.0, 0.0)
    for iv in (result.intervals.signed[-1], result.intervals.absolute[-1], result.intervals.random[-1]):
        assert iv.high - iv.low == pytest.approx(0.0, abs=1e-9)
        assert iv.value == pytest.approx(1.0, abs=1e-6)
    full = faithfulness_interval(ev, graph.mask, n_boot=50)
    assert (full.low, full.high) == pytest.approx((1.0, 1.0), abs=1e-9)
    empty = faithfulness_interval(ev, np.zeros_like(graph.mask), n_boot=50)
    assert (empty.value, empty.low, empty.high) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)


def test_intervals_cover_the_full_sample_value(booted):
    _, _, result = booted
    ivs = result.intervals
    assert ivs.n_boot == 200 and ivs.seed == 3
    for name in ("signed", "absolute", "random", "hit_at_10"):
        points, intervals = getattr(result, name), getattr(ivs, name)
        assert [iv.value for iv in intervals] == pytest.approx(points, abs=1e-9), name
        for iv in intervals:
            assert iv.low - 1e-9 <= iv.value <= iv.high + 1e-9, (name, iv)
    for name in ("cpr", "cmd", "random_cpr", "clean_metric", "corrupt_metric"):
        iv = getattr(ivs, name)
        assert iv.value == pytest.approx(getattr(result, name), abs=1e-9), name
        assert iv.low - 1e-9 <= iv.value <= iv.high + 1e-9, (name, iv)
    assert ivs.clean_metric.high > ivs.clean_metric.low  # 8 different pairs: not degenerate
    assert any(iv.high > iv.low + 1e-6 for iv in ivs.signed[:-1])


def test_intervals_are_deterministic_under_a_seed_and_change_with_it(booted):
    ev, graph, result = booted
    assert evaluate_graph(ev, graph, seed=3, n_boot=200).as_dict() == result.as_dict()
    run = ev.run_mask(graph.top_mask(20, by="signed"))
    one = ev.faithfulness_interval(run, n_boot=100, seed=1)
    assert ev.faithfulness_interval(run, n_boot=100, seed=1) == one
    assert ev.faithfulness_interval(run, n_boot=100, seed=2) != one
    assert one.value == run.faithfulness
    none = evaluate_graph(ev, graph, fractions=(0.5, 1.0), seed=3, n_boot=0)
    assert none.intervals is None and none.as_dict()["intervals"] is None
    nan = ev.faithfulness_interval(run, n_boot=0)
    assert nan.value == run.faithfulness and np.isnan(nan.low) and np.isnan(nan.high)
    with pytest.raises(InputError, match="non-negative"):
        evaluate_graph(ev, graph, n_boot=-1)


def test_vectorised_bootstrap_equals_brute_force_resampling(booted):
    """Re-average the per-pair values over explicitly resampled pair indices: the same replicates."""
    ev, graph, result = booted
    n_boot, seed = 200, 3
    idx = resample_indices(len(ev.batch), n_boot=n_boot, seed=seed)
    full, empty = ev.full.values, ev.empty.values
    x = np.asarray(FRACTIONS)

    def brute_f(run, rows):
        return (run.values[rows].mean() - empty[rows].mean()) / (full[rows].mean() - empty[rows].mean())

    run = ev.run_mask(graph.top_mask(15, by="signed"))
    weights = ev.resample_weights(n_boot, seed)
    vectorised = ev.boot_faithfulness([run], weights)[:, 0]
    brute = np.array([brute_f(run, rows) for rows in idx])
    np.testing.assert_allclose(vectorised, brute, rtol=0, atol=1e-9)
    assert ev.boot_hits([run], weights)[:, 0] == pytest.approx(
        [run.hits[rows].mean() for rows in idx], abs=1e-12
    )
    iv = ev.faithfulness_interval(run, n_boot=n_boot, seed=seed)
    assert (iv.low, iv.high) == pytest.approx(tuple(np.percentile(brute, [2.5, 97.5])), abs=1e-9)
    # CPR and CMD: the areas under each resample's own curves, with the runs evaluate_graph made
    signed, absolute = [], []
    for fraction in FRACTIONS:
        n = max(1, round(fraction * graph.n_edges))
        signed.append(ev.run_mask(graph.top_mask(n, by="signed")))
        absolute.append(ev.run_mask(graph.top_mask(n, by="abs")))
    cpr = [np.trapezoid([brute_f(r, rows) for r in signed], x) for rows in idx]
    cmd = [np.trapezoid([abs(1 - brute_f(r, rows)) for r in absolute], x) for rows in idx]
    hit = [np.mean(absolute[4].hits[rows]) for rows in idx]
    ivs = result.intervals
    assert (ivs.cpr.low, ivs.cpr.high) == pytest.approx(tuple(np.percentile(cpr, [2.5, 97.5])), abs=1e-9)
    assert (ivs.cmd.low, ivs.cmd.high) == pytest.approx(tuple(np.percentile(cmd, [2.5, 97.5])), abs=1e-9)
    assert (ivs.hit_at_10[4].low, ivs.hit_at_10[4].high) == pytest.approx(
        tuple(np.percentile(hit, [2.5, 97.5])), abs=1e-9
    )
    clean = [full[rows].mean() for rows in idx]
    assert (ivs.clean_metric.low, ivs.clean_metric.high) == pytest.approx(
        tuple(np.percentile(clean, [2.5, 97.5])), abs=1e-9
    )


def test_evaluation_json_has_value_low_high(booted):
    _, _, result = booted
    data = json.loads(json.dumps(result.as_dict()))
    assert data["cpr"] == pytest.approx(result.cpr)  # the old scalar fields stay
    ivs = data["intervals"]
    assert ivs["n_boot"] == 200 and ivs["seed"] == 3
    assert set(ivs["cpr"]) == {"value", "low", "high"}
    for name in ("signed", "absolute", "random", "hit_at_10"):
        assert len(ivs[name]) == len(FRACTIONS)
        assert all(set(iv) == {"value", "low", "high"} for iv in ivs[name])


def test_cli_evaluate_prints_intervals(capsys, tmp_path):
    out_dir = tmp_path / "run"
    code, _, _ = run_cli(
        capsys,
        "score",
        "country_capital_city",
        "--model",
        "tiny-gpt2",
        "--score-method",
        "eap",
        "--max-pairs",
        "12",
        "--out",
        out_dir,
        "--quiet",
        "--max-rank",
        10**9,
    )
    assert code == 0
    code, out, _ = run_cli(capsys, "evaluate", out_dir, "--boot", "50", "--quiet")
    assert code == 0
    lines = out.splitlines()
    rows = [line for line in lines if line.split() and line.split()[0][0].isdigit()]
    assert len(rows) == len(FRACTIONS)
    assert all(row.count("[") == 4 for row in rows)  # F signed, F |s|, F random, Hit@10
    assert "1.00 [1.00, 1.00]" in rows[-1]
    assert lines[0].count("[") == 2  # clean and corrupted metric
    assert next(line for line in lines if line.startswith("CPR")).count("[") == 3
    assert "50 resamples" in out
    code, out, _ = run_cli(capsys, "evaluate", out_dir, "--boot", "50", "--quiet", "--json")
    data = json.loads(out)
    assert data["intervals"]["n_boot"] == 50
    assert set(data["intervals"]["cmd"]) == {"value", "low", "high"}
    assert data["intervals"]["absolute"][-1] == {"value": 1.0, "low": 1.0, "high": 1.0}
    code, out, _ = run_cli(capsys, "evaluate", out_dir, "--boot", "0", "--quiet")
    assert code == 0 and "[" not in out
