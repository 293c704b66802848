"""The shared-prefix cache changes no result: every method against its full-sequence run.

Tiny models cover multi-head attention with learned positions (tiny-gpt2) and
grouped-query attention with rotary positions (tiny-llama); the embedded model
covers a real one. Batches mix prompt lengths (right padding) and prefix
lengths, including rows that share nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuits import ScoreSettings, score_relation
from circuits.attribution import Harness, attribute_edges, exact_edges, exact_nodes
from circuits.attribution.prefix import (
    SharedPrefix,
    pair_prefix_lengths,
    prefix_share,
    shift_rows,
    split_prefix,
)
from circuits.evaluate import Evaluator
from circuits.graph import N_ROLES, ScoredGraph
from circuits.mechanisms.attention_knockout import knockout
from circuits.mechanisms.lens import Prompts
from circuits.relations import PairBatch, load_relation
from circuits.relations.pairs import batch_pairs, make_pairs
from circuits.relations.roles import ROLES

TOL = 1e-5


def staggered_batch(model, seed: int = 0) -> PairBatch:
    """Random prompts of lengths 7-10 whose pairs first differ at positions 0, 2, 4 and 6."""
    gen = torch.Generator().manual_seed(seed)
    vocab = min(len(model.tokenizer), 200)
    lasts, starts = [9, 6, 8, 7], [4, 0, 6, 2]
    clean = torch.randint(1, vocab, (4, 10), generator=gen)
    clean[:, :2] = clean[0, :2]  # rows 0, 2 and 3 share their first two tokens
    corrupt = clean.clone()
    for i, (last, start) in enumerate(zip(lasts, starts, strict=True)):
        corrupt[i, start : last + 1] = torch.randint(1, vocab, (last + 1 - start,), generator=gen)
        corrupt[i, start] = clean[i, start] % (vocab - 1) + 1  # differ exactly at start
        clean[i, last + 1 :] = corrupt[i, last + 1 :] = 0
    last = torch.tensor(lasts)
    mask = torch.arange(10)[None] <= last[:, None]
    role = torch.where(mask, torch.arange(10)[None] % len(ROLES), -1)
    answer = torch.randint(1, vocab, (4,), generator=gen)
    return PairBatch(clean, corrupt, mask, last, answer, (answer + 1) % vocab, role)


def relation_batch(model, n: int = 10) -> PairBatch:
    """Pairs of every bundled template of country_capital_city (prompts of several lengths)."""
    rel = load_relation("country_capital_city")
    pairs = make_pairs(model, rel, templates="all", max_rank=10**9, heldout_fraction=0.0, max_pairs=n).pairs
    return batch_pairs(pairs, pad=model.pad_id)


def close(a, b, tol: float = TOL) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= tol, f"max difference {np.abs(a - b).max():.2e}"


def relative_close(a, b, tol: float = TOL) -> None:
    """Equal to ``tol`` of the largest magnitude (float32 sums of a 135M model differ at ~1e-6 relative)."""
    a = np.asarray(a, dtype=np.float64)
    close(a, b, tol * max(1.0, float(np.abs(a).max())))


def test_prefix_lengths_stop_at_the_first_difference_and_before_the_last_position(tiny_llama):
    batch = staggered_batch(tiny_llama)
    assert pair_prefix_lengths(batch).tolist() == [4, 0, 6, 2]
    assert prefix_share(batch) == pytest.approx(12 / (10 + 7 + 9 + 8))
    same = PairBatch(
        batch.clean, batch.clean.clone(), batch.mask, batch.last, batch.answer, batch.corrupt_answer
    )
    assert pair_prefix_lengths(same).tolist() == batch.last.tolist()  # the last position always runs


def test_shift_rows_moves_each_row_and_fills_past_the_end():
    t = torch.arange(12).view(2, 6)
    out = shift_rows(t, torch.tensor([1, 4]), 3, -1)
    assert out.tolist() == [[1, 2, 3], [10, 11, -1]]


def test_forward_after_a_cached_prefix_equals_the_full_forward(tiny):
    """Per-row prefixes (one empty), right padding:
    every real suffix position's final residual is unchanged."""
    harness = Harness(tiny)
    batch = staggered_batch(tiny)
    full = harness.run_to_final(batch.clean, []).detach()
    prefix, suffixes = split_prefix(harness, batch, "counterfactual")
    assert prefix is not None and prefix.width == 6
    with harness.sharing(prefix):
        got = harness.run_to_final(suffixes.clean, []).detach()
    for i, p in enumerate(prefix.lengths.tolist()):
        n = int(batch.last[i]) + 1 - p
        close(got[i, :n], full[i, p : p + n])
    assert suffixes.last.tolist() == (batch.last - prefix.lengths).tolist()
    for i, p in enumerate(prefix.lengths.tolist()):  # roles move with their positions
        n = int(batch.last[i]) + 1 - p
        assert suffixes.role[i, :n].tolist() == batch.role[i, p : p + n].tolist()


def test_rows_with_the_same_prefix_share_one_computation(tiny_llama):
    batch = relation_batch(tiny_llama)
    harness = Harness(tiny_llama)
    calls = []
    original = harness.key_values
    harness.key_values = lambda tokens: calls.append(tokens.shape) or original(tokens)
    prefix, _ = split_prefix(harness, batch, "counterfactual")
    distinct = {tuple(batch.clean[i, :p].tolist()) for i, p in enumerate(prefix.lengths.tolist())}
    assert calls == [(len(distinct), prefix.width)] and len(distinct) < len(batch)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("make", [staggered_batch, relation_batch], ids=["staggered", "relation"])
def test_eap_and_eap_ig_scores_are_unchanged(tiny, steps, make):
    harness = Harness(tiny)
    batch = make(tiny)
    assert len(set(batch.last.tolist())) > 1 and int(pair_prefix_lengths(batch).max()) > 0
    for by_role in (False, True):
        kwargs = {"ig_steps": steps, "per_pair": True, "by_role": by_role}
        full = attribute_edges(harness, batch, shared_prefix=False, **kwargs)
        cached = attribute_edges(harness, batch, **kwargs)
        assert float(full.abs().max()) > 1e-3
        close(full, cached)


def test_exact_patching_of_edges_units_and_nodes_is_unchanged(tiny):
    harness = Harness(tiny)
    batch = staggered_batch(tiny)
    graph = ScoredGraph(harness.shape, attribute_edges(harness, batch).numpy())
    top = [divmod(int(f), harness.shape.n_receivers) for f in graph.ranked(by="abs")[:12]]
    # every receiver kind, and units of one role (the third element)
    edges = [*top, (0, harness.shape.logits_receiver), (top[0][0], top[0][1], 2), (0, top[1][1], 4)]
    full = exact_edges(harness, batch, edges, per_pair=True, shared_prefix=False, max_rows=16)
    cached = exact_edges(harness, batch, edges, per_pair=True, max_rows=16)
    assert np.abs(full).max() > 1e-3
    close(full, cached)
    close(exact_nodes(harness, batch, shared_prefix=False), exact_nodes(harness, batch))


def test_circuit_evaluation_is_unchanged(tiny):
    harness = Harness(tiny)
    batch = relation_batch(tiny)
    graph = ScoredGraph(harness.shape, attribute_edges(harness, batch).numpy())
    full, cached = Evaluator(harness, batch, shared_prefix=False), Evaluator(harness, batch)
    assert full.prefix is None and cached.prefix is not None
    by_role = np.zeros((N_ROLES, *graph.mask.shape), dtype=bool)
    by_role[:, graph.mask] = True
    by_role[ROLES.index("subject")] &= graph.top_mask(30)
    for mask in (graph.mask, np.zeros_like(graph.mask), graph.top_mask(5), graph.top_mask(40), by_role):
        a, b = full.run_mask(mask), cached.run_mask(mask)
        close(a.values, b.values)
        assert a.hits.tolist() == b.hits.tolist()


def test_knockout_effects_are_unchanged(tiny):
    pairs = make_pairs(
        tiny,
        load_relation("country_capital_city"),
        templates="all",
        max_rank=10**9,
        heldout_fraction=0.0,
        max_pairs=8,
    ).pairs
    prompts = Prompts.of(pairs, tiny.pad_id)
    sources = [("subject",), ("demo",), ("relation",), ("last",), tuple(ROLES)]
    full = knockout(
        tiny,
        prompts,
        window=1,
        sources=sources,
        block_first=True,
        n_boot=10,
        progress=False,
        shared_prefix=False,
    )
    cached = knockout(tiny, prompts, window=1, sources=sources, block_first=True, n_boot=10, progress=False)
    for a, b in zip([*full.curves, full.sink], [*cached.curves, cached.sink], strict=True):
        assert a.source == b.source
        close(a.per_prompt, b.per_prompt)


def test_a_fully_blocked_padded_prompt_reads_nothing_as_if_alone(tiny_llama):
    """Blocking every position: a right-padded row must not read its padding (the full-sequence path too)."""
    pairs = make_pairs(
        tiny_llama,
        load_relation("country_capital_city"),
        templates="all",
        max_rank=10**9,
        heldout_fraction=0.0,
        max_pairs=6,
    ).pairs
    prompts = Prompts.of(pairs, tiny_llama.pad_id)
    assert len(set(prompts.last.tolist())) > 1
    batched = (
        knockout(
            tiny_llama,
            prompts,
            window=2,
            sources=[tuple(ROLES)],
            n_boot=10,
            progress=False,
            shared_prefix=False,
        )
        .curves[0]
        .per_prompt
    )
    for i, pair in enumerate(pairs):
        alone = (
            knockout(
                tiny_llama,
                Prompts.of([pair], tiny_llama.pad_id),
                window=2,
                sources=[tuple(ROLES)],
                n_boot=10,
                progress=False,
                shared_prefix=False,
            )
            .curves[0]
            .per_prompt
        )
        close(batched[i], alone[0])


def test_prompts_that_share_nothing_run_as_before(tiny_gpt2):
    harness = Harness(tiny_gpt2)
    batch = staggered_batch(tiny_gpt2)
    corrupt = batch.corrupt.clone()
    corrupt[:, 0] = batch.clean[:, 0] % 150 + 1
    apart = PairBatch(
        batch.clean, corrupt, batch.mask, batch.last, batch.answer, batch.corrupt_answer, batch.role
    )
    assert int(pair_prefix_lengths(apart).max()) == 0
    prefix, same = split_prefix(harness, apart, "counterfactual")
    assert prefix is None and same is apart
    assert SharedPrefix.build(harness, apart.clean, torch.zeros(4, dtype=torch.long)) is None
    close(attribute_edges(harness, apart, shared_prefix=False), attribute_edges(harness, apart))


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_ablations_that_change_the_prefix_run_full_prompts_and_say_so(tiny_llama, ablation):
    harness = Harness(tiny_llama)
    batch = staggered_batch(tiny_llama)
    prefix, same = split_prefix(harness, batch, ablation)
    assert prefix is None and same is batch
    settings = ScoreSettings(ablation=ablation, ig_steps=1, max_pairs=6, max_rank=10**9)
    graph, _ = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    record = graph.metadata["shared_prefix"]
    assert record["used"] is False and ablation in record["reason"]


def test_a_scored_graph_records_the_prefix_it_used_and_matches_one_scored_without(tiny_llama):
    settings = ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9)
    graph, _ = score_relation(tiny_llama, "country_capital_city", settings, progress=False)
    off, _ = score_relation(
        tiny_llama,
        "country_capital_city",
        ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, shared_prefix=False),
        progress=False,
    )
    record = graph.metadata["shared_prefix"]
    assert record["used"] is True and 0.5 < record["share"] < 1
    assert off.metadata["shared_prefix"] == {"used": False, "reason": "turned off", "share": 0.0}
    close(graph.scores, off.scores)
    assert (
        settings.stored_as()
        == ScoreSettings(ig_steps=2, max_pairs=8, max_rank=10**9, shared_prefix=False).stored_as()
    )


def test_embedded_model_scores_evaluation_and_knockout_are_unchanged(embedded):
    harness = Harness(embedded)
    pairs = make_pairs(
        embedded, load_relation("country_capital_city"), templates="all", heldout_fraction=0.0, max_pairs=24
    ).pairs
    by_length = sorted(pairs, key=lambda p: len(p.clean_tokens))
    pairs = by_length[:4] + by_length[-4:]  # prompts of different lengths share a prefix
    batch = batch_pairs(pairs, pad=embedded.pad_id)
    assert prefix_share(batch) > 0.5 and len(set(batch.last.tolist())) > 1
    full = attribute_edges(harness, batch, ig_steps=2, per_pair=True, shared_prefix=False)
    cached = attribute_edges(harness, batch, ig_steps=2, per_pair=True)
    relative_close(full, cached)
    graph = ScoredGraph(harness.shape, (full.sum(0) / len(batch)).numpy())
    a, b = Evaluator(harness, batch, shared_prefix=False), Evaluator(harness, batch)
    for mask in (graph.top_mask(100), graph.top_mask(2000)):
        relative_close(a.run_mask(mask).values, b.run_mask(mask).values)
    prompts = Prompts.of(pairs, embedded.pad_id)
    kwargs = {"sources": [("subject",), ("last",)], "n_boot": 10, "progress": False}
    ko_full = knockout(embedded, prompts, shared_prefix=False, **kwargs)
    ko_cached = knockout(embedded, prompts, **kwargs)
    for x, y in zip(ko_full.curves, ko_cached.curves, strict=True):
        # (p_knock - p) / p: dividing by a small p(answer) magnifies float32 rounding
        relative_close(x.per_prompt, y.per_prompt, tol=5e-5)
