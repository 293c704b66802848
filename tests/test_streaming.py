"""Memory that does not grow with the pairs: mini-batches, spooled per-pair scores,
spilled buffers, auto sizes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import random_batch

from circuits.attribution import Harness
from circuits.evaluate import Evaluator
from circuits.graph import N_ROLES
from circuits.sizing import MODELS, attribution_bytes, pick_batch_size

ALL = 10**9


@pytest.mark.parametrize("name", ["tiny_llama", "tiny_gpt2"])
def test_an_evaluator_in_mini_batches_with_spilled_buffers_equals_one_batch(name, request) -> None:
    model = request.getfixturevalue(name)
    harness = Harness(model)
    batch = random_batch(model, batch=7, seed=3)
    role = torch.randint(0, N_ROLES, batch.clean.shape, generator=torch.Generator().manual_seed(1))
    batch = dataclasses.replace(batch, role=torch.where(batch.mask, role, -1))
    whole = Evaluator(harness, batch, batch_size=16)
    # three mini-batches (3 + 3 + 1 pairs); only the first keeps its ablated senders in memory
    streamed = Evaluator(harness, batch, batch_size=3, cache_bytes=0)
    assert len(whole.chunks) == 1 and len(streamed.chunks) == 3
    assert [c.kept.place for c in streamed.chunks] == ["device", "disk", "disk"]
    assert streamed.cached_bytes == streamed.chunks[0].buffer_bytes
    rng = np.random.default_rng(0)
    masks = [whole.mask.cpu().numpy() & (rng.random(whole.mask.shape) < p) for p in (0.2, 0.6)]
    for keep in [*masks, whole.mask.cpu().numpy()]:
        a, b = whole.run_mask(keep), streamed.run_mask(keep)
        np.testing.assert_allclose(b.values, a.values, rtol=1e-5, atol=1e-5)
        assert np.array_equal(a.hits, b.hits) and a.n_edges == b.n_edges
    np.testing.assert_allclose(streamed.empty.values, whole.empty.values, rtol=1e-5, atol=1e-5)
    assert streamed.run_mask(whole.mask.cpu().numpy()).faithfulness == pytest.approx(1.0, abs=1e-5)
    # a position-aware circuit runs over the mini-batches the same way
    units = np.broadcast_to(masks[1], (N_ROLES, *masks[1].shape)).copy()
    units[2] = False
    np.testing.assert_allclose(
        streamed.run_mask(units).values, whole.run_mask(units).values, rtol=1e-5, atol=1e-5
    )


def test_scores_streamed_in_small_batches_equal_one_batch_and_the_spool_feeds_pair_scores(tiny_llama) -> None:
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings

    big = ScoreSettings(ig_steps=2, max_pairs=10, max_rank=ALL, batch_size=16, heldout_fraction=0.2)
    small = ScoreSettings(ig_steps=2, max_pairs=10, max_rank=ALL, batch_size=3, heldout_fraction=0.2)
    a, pairs = score_relation(tiny_llama, "country_capital_city", big, progress=False)
    b, _ = score_relation(tiny_llama, "country_capital_city", small, progress=False)
    assert len(pairs.scoring) == 8 and (a.metadata["batch_size"], b.metadata["batch_size"]) == (16, 3)
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-6)
    assert np.array_equal(a.pair_scores.edges, b.pair_scores.edges)
    np.testing.assert_allclose(b.pair_scores.values, a.pair_scores.values, rtol=1e-2, atol=1e-4)
    # the pair scores are each pair's own: their mean is the graph's score (up to float16 storage)
    flat = a.scores.reshape(-1)[a.pair_scores.edges]
    np.testing.assert_allclose(a.pair_scores.values.astype(np.float64).mean(0), flat, rtol=2e-2, atol=1e-4)


def test_exact_refinement_through_the_spool_holds_exact_patching_scores(tiny_gpt2) -> None:
    from circuits.attribution import exact_edges
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings
    from circuits.relations.pairs import batch_pairs

    settings = ScoreSettings(
        score_method="exact", ig_steps=2, max_pairs=8, max_rank=ALL, exact_top=5, batch_size=3
    )
    graph, pairs = score_relation(tiny_gpt2, "country_capital_city", settings, progress=False)
    top = graph.ranked(by="abs")[:3]
    edges = [divmod(int(flat), graph.shape.n_receivers) for flat in top]
    exact = exact_edges(Harness(tiny_gpt2), batch_pairs(pairs.scoring, pad=tiny_gpt2.pad_id), edges)
    got = np.array([graph.scores[s, r] for s, r in edges])
    np.testing.assert_allclose(got, np.asarray(exact), rtol=1e-4, atol=1e-6)  # the mean over the pairs


def test_the_batch_size_follows_the_free_memory(tiny_llama, monkeypatch) -> None:
    from circuits.attribution import memory

    assert memory.available_bytes(torch.device("cpu")) > 2**20
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings

    harness = Harness(tiny_llama)
    batch = random_batch(tiny_llama, batch=4, seed=0)
    per_pair = attribution_bytes(memory.model_dims(tiny_llama), int(batch.clean.shape[1]))
    monkeypatch.setattr(memory, "available_bytes", lambda device: 6 * per_pair)
    assert memory.auto_batch_size(harness, batch, "attribution", shared_prefix=False) == 3
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**15)
    assert memory.auto_batch_size(harness, batch, "attribution") == 16
    monkeypatch.setattr(memory, "available_bytes", lambda device: 0)
    graph, _ = score_relation(
        tiny_llama,
        "country_capital_city",
        ScoreSettings(ig_steps=2, max_pairs=6, max_rank=ALL),
        progress=False,
    )
    assert graph.metadata["batch_size"] == 1


def test_sizing_formulas_scale_with_the_model_and_the_table_names_every_model() -> None:
    from circuits.sizing import evaluation_bytes, scoring_flops, sizing_rows

    small, big = MODELS["smollm2-135m"], MODELS["llama-8b"]
    assert attribution_bytes(big, 10) > 20 * attribution_bytes(small, 10)
    assert attribution_bytes(small, 20) > 1.9 * attribution_bytes(small, 10)
    assert evaluation_bytes(small, 10) < attribution_bytes(small, 10)
    assert scoring_flops(small, 10, 5) > 3 * scoring_flops(small, 10, 1)
    rows = sizing_rows(10, 5, 1e10)
    assert [r["model"] for r in rows] == list(MODELS)
    assert all(r["scoring_gb"] > r["weights_gb"] for r in rows)
    assert rows[2]["seconds_per_pairs"] > 50 * rows[0]["seconds_per_pairs"]
    assert pick_batch_size(100, 10, cap=4) == 4


def test_circuits_sizing_prints_the_formulas_table_without_torch(capsys) -> None:
    import json
    import subprocess
    import sys

    from circuits.cli import main
    from circuits.sizing import sizing_rows

    assert main(["sizing", "--positions", "8", "--gflops", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads(json.dumps(sizing_rows(8, 5, 20e9)))
    assert main(["sizing"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in ("SmolLM2-135M", "Llama-3.2-1B", "Llama-3.1-8B"))
    code = "import sys; from circuits.cli import main; main(['sizing']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
