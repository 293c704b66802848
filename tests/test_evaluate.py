"""Circuit evaluation: the Evaluator's patched forward, faithfulness curves, CPR, CMD and Hit@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import logit_diff, random_batch

from circuits.attribution import Harness, attribute_edges
from circuits.attribution.scoring import clean_metric
from circuits.evaluate import FRACTIONS, Evaluator, area, evaluate_graph
from circuits.graph import ScoredGraph, edge_mask
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
