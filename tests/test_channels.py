"""Channels from weight SVD: factored matrices, composition scores, channels, validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import random_batch

from circuits.channels import (
    analyze,
    causal_check,
    channel_graph,
    composition_score,
    factored_svd,
    find_channels,
    head_weights,
    ov_matrices,
    precision_at_k,
    qk_matrices,
    rank_one_components,
    roc_auc,
    validate_graph,
)
from circuits.channels.svd import Factored
from circuits.channels.validate import _run_removing
from circuits.circuit import Circuit
from circuits.draw import channels_dot
from circuits.graph import GraphShape, ScoredGraph
from circuits.vocab import InputError, parse_node


@pytest.fixture(scope="module")
def gpt2_analysis(tiny_gpt2):
    return analyze(tiny_gpt2, center=False)


@pytest.fixture(scope="module")
def llama_analysis(tiny_llama):
    return analyze(tiny_llama)


def _dense_receiver(weights, name: str) -> torch.Tensor:
    """The matrix a receiver reads through, built densely from the per-head QK/OV matrices."""
    _, layer, head, kind = parse_node(name)
    qk, ov, g = qk_matrices(weights), ov_matrices(weights), weights.group
    if kind == "q":
        return qk[layer, head].dense()
    group = range(head * g, (head + 1) * g)
    if kind == "k":
        return torch.cat([qk[layer, h].dense().T for h in group], dim=1)
    return torch.cat([ov[layer, h].dense() for h in group], dim=1)


def test_rank_one_components_sum_back(tiny):
    weights = head_weights(tiny)
    for matrices in (ov_matrices(weights), qk_matrices(weights)):
        svd = factored_svd(matrices)
        parts = rank_one_components(svd).dense()  # [L, H, r, d, d]
        assert torch.allclose(parts.sum(-3), matrices.dense(), atol=1e-4)
        assert torch.all(svd.S[..., :-1] >= svd.S[..., 1:] - 1e-6)
        assert torch.allclose(svd.component(0).dense(), parts[..., 0, :, :], atol=1e-5)


def test_component_score_ignores_singular_value(tiny_llama):
    weights = head_weights(tiny_llama)
    svd = factored_svd(ov_matrices(weights)[0, 1])
    receiver = qk_matrices(weights)[2, 3]
    u, v = svd.U[:, 2:3], svd.Vh[2:3]
    scores = [composition_score(Factored(u * s, v), receiver) for s in (1e-3, 1.0, 7.5, 1e3)]
    assert torch.allclose(torch.stack(scores), scores[1].expand(4), rtol=1e-4)


def test_scores_match_dense_definition(tiny_llama, llama_analysis):
    weights = head_weights(tiny_llama)
    ov = ov_matrices(weights)
    a = llama_analysis
    for sender in ("a0.h1", "a1.h3"):
        w = a.senders.names.index(sender)
        _, wl, wh, _ = parse_node(sender)
        svd = factored_svd(ov[wl, wh])
        for receiver in ("a2.h2<q>", "a2.h1<k>", "a2.h0<v>"):
            r = a.receivers.names.index(receiver)
            R = _dense_receiver(weights, receiver)
            assert a.whole[w, r] == pytest.approx(float(composition_score(ov[wl, wh], R)), rel=1e-4)
            comps = [float(composition_score(svd.component(i), R)) for i in range(weights.d_head)]
            np.testing.assert_allclose(a.component[w, r], comps, rtol=1e-3, atol=1e-5)
    # an MLP writes through W_out
    w, r = a.senders.names.index("m0"), a.receivers.names.index("a1.h2<q>")
    W_out = tiny_llama.bridge.blocks[0].mlp.W_out.detach()
    expected = composition_score(W_out, _dense_receiver(weights, "a1.h2<q>"))
    assert a.whole[w, r] == pytest.approx(float(expected), rel=1e-4)
    # no scores backwards or within a layer
    assert np.isnan(a.whole[a.senders.names.index("a1.h0"), a.receivers.names.index("a1.h0<q>")])


def test_whole_score_is_sigma_weighted_mean_of_components(tiny, gpt2_analysis, llama_analysis):
    a = gpt2_analysis if tiny.name == "tiny-gpt2" else llama_analysis
    heads = ~a.senders.is_mlp
    sigma2 = a.senders.sigma[heads].double().numpy() ** 2
    comp2 = a.component[heads].astype(np.float64) ** 2
    weighted = (comp2 * sigma2[:, None, :]).sum(-1) / sigma2.sum(-1)[:, None]
    whole2 = a.whole[heads].astype(np.float64) ** 2
    valid = ~np.isnan(whole2)
    assert valid.sum() > 10
    np.testing.assert_allclose(weighted[valid], whole2[valid], rtol=1e-3)


@pytest.mark.parametrize("mode", ["Q", "K", "V"])
def test_agrees_with_transformer_lens(tiny_gpt2, gpt2_analysis, mode):
    # Multi-head GPT-2 with unit norm weights; LayerNorm centring off: the definitions coincide.
    theirs = tiny_gpt2.bridge.all_composition_scores(mode).scores.detach().numpy()
    a, shape = gpt2_analysis, GraphShape.of(tiny_gpt2)
    for wl in range(shape.n_layers - 1):
        for wh in range(shape.n_heads):
            w = a.senders.names.index(f"a{wl}.h{wh}")
            for rl in range(wl + 1, shape.n_layers):
                for rh in range(shape.n_heads):
                    r = a.receivers.names.index(f"a{rl}.h{rh}<{mode.lower()}>")
                    assert a.whole[w, r] == pytest.approx(theirs[wl, wh, rl, rh], rel=1e-4, abs=1e-6)


def test_grouped_query_agrees_with_transformer_lens(tiny_llama, llama_analysis):
    a, weights = llama_analysis, head_weights(tiny_llama)
    q_scores = tiny_llama.bridge.all_composition_scores("Q").scores.detach().numpy()
    k_scores = tiny_llama.bridge.all_composition_scores("K").scores.detach().numpy()
    qk_norm = qk_matrices(weights).norm().numpy()  # [L, H]
    w = a.senders.names.index("a0.h2")
    for rh in range(4):  # query heads: TransformerLens expands the key/value heads, as we do
        assert a.whole[w, a.receivers.names.index(f"a1.h{rh}<q>")] == pytest.approx(
            q_scores[0, 2, 1, rh], rel=1e-4
        )
    for kv in range(2):  # a shared key head reads for its whole group: norms add up
        group = [2 * kv, 2 * kv + 1]
        n2 = qk_norm[1, group] ** 2
        expected = np.sqrt((k_scores[0, 2, 1, group] ** 2 * n2).sum() / n2.sum())
        assert a.whole[w, a.receivers.names.index(f"a1.h{kv}<k>")] == pytest.approx(expected, rel=1e-4)


def test_norm_weights_are_folded(tiny_llama):
    from circuits.models import load_model

    model = load_model("tiny-llama", seed=1)
    hf = model.bridge.original_model
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        hf.model.layers[1].input_layernorm.weight.copy_(torch.rand(32, generator=gen) * 2 + 0.1)
    store = {}

    def keep(name):
        def hook(x, hook):
            store[name] = x
            return x

        return hook

    hooks = [("blocks.1.ln1.hook_normalized", keep("x")), ("blocks.1.attn.hook_q", keep("q"))]
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge(torch.randint(1, 100, (2, 5), generator=gen))
    weights = head_weights(model)
    # queries are x / rms(x) times the folded W_Q: the norm's scale is all that is left out
    q = torch.einsum("bpd,hde->bphe", store["x"], weights.W_Q[1])
    assert torch.allclose(q, store["q"], atol=1e-4)


def test_planted_sender_is_found():
    from circuits.models import load_model

    model = load_model("tiny-llama", seed=3)
    receiver_layer, receiver_head, dh = 2, 1, 8
    weights = head_weights(model)
    qk = qk_matrices(weights)[receiver_layer, receiver_head]
    target = factored_svd(qk).U[:, 0]  # the direction the receiver's query reads most strongly
    o_proj = model.bridge.original_model.model.layers[0].self_attn.o_proj.weight
    with torch.no_grad():  # W_O of a0.h2 gains a strong rank-1 write along that direction
        block = o_proj[:, 2 * dh : 3 * dh]
        block += 3.0 * block.norm() * target[:, None] * torch.ones(1, dh) / dh**0.5
    a = analyze(model)
    best = find_channels(a, top=1)[0]
    assert (best.sender, best.receiver, best.kind) == ("a0.h2", f"a{receiver_layer}.h{receiver_head}<q>", "q")
    assert best.components[0] == 0
    assert best.rank <= 2
    assert best.share >= 0.9
    w = a.senders.names.index("a0.h2")
    assert abs(float(a.senders.directions[w, 0] @ target)) > 0.99


def test_channels_graph_and_dot(tiny_llama, llama_analysis):
    shape = GraphShape.of(tiny_llama)
    channels = find_channels(llama_analysis, top=6, share=0.8)
    assert len(channels) == 6
    assert all(c.z >= d.z for c, d in itertools.pairwise(channels))
    heads = [c for c in channels if c.sender.startswith("a")]
    assert all(c.share >= 0.8 - 1e-6 for c in heads)
    assert all(c.rank == len(c.components) for c in heads)
    graph = channel_graph(channels)
    head_nodes = {f"a{layer}.h{h}" for layer in range(3) for h in range(4)}
    names = set(shape.sender_names()) | set(shape.receiver_names()) | head_nodes
    assert set(graph.nodes) <= names
    dot = channels_dot(channels, shape).to_string()
    assert dot.count('label="z=') == len(channels)
    scored = ScoredGraph(shape, np.random.default_rng(0).normal(size=(shape.n_senders, shape.n_receivers)))
    circuit = Circuit.from_mask(scored, scored.top_mask(8))
    overlay = channels_dot(channels, shape, circuit=circuit).to_string()
    assert "style=solid" in overlay
    assert overlay.count('label="z=') == len(channels)
    whole_first = find_channels(llama_analysis, top=3, by="whole", senders="heads")
    assert all(c.sender.startswith("a") for c in whole_first)
    with pytest.raises(InputError, match="share"):
        find_channels(llama_analysis, share=1.5)


def test_roc_auc_and_precision():
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=60), rng.random(60) < 0.3
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[labels] for n in scores[~labels]]
    assert roc_auc(scores, labels) == pytest.approx(np.mean(pairs))
    assert roc_auc(np.r_[1.0, 2.0, 2.0], np.array([False, True, False])) == pytest.approx(0.75)
    assert precision_at_k(np.r_[3.0, 2.0, 1.0], np.array([True, False, True]), 2) == 0.5
    with pytest.raises(InputError):
        roc_auc(scores, np.zeros(60, bool))


def test_validate_graph(tiny_llama, llama_analysis):
    a, shape = llama_analysis, GraphShape.of(tiny_llama)
    z = a.edge_matrix(a.whole_z)
    planted = np.nan_to_num(-(z - np.nanmin(z) + 1.0), nan=0.0)  # |patching score| follows whole z
    row = validate_graph(
        a, ScoredGraph(shape, planted, {"relation": "toy", "score_method": "eap-ig"}), top_fraction=0.1
    )
    assert row.relation == "toy"
    assert row.n_important == round(0.1 * row.n_edges)
    assert row.auc_whole == pytest.approx(1.0)
    assert row.precision_whole == pytest.approx(1.0)
    assert 0.0 <= row.auc_component <= 1.0


def test_causal_check(tiny_llama, llama_analysis):
    a, batch = llama_analysis, random_batch(tiny_llama)
    w = a.senders.names.index("a0.h1")
    removed = _run_removing(tiny_llama, batch, 0, 1, a.senders.directions[w].double(), 0.0).mean()

    def zero_head(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    from circuits.attribution.metrics import make_metric

    with torch.no_grad(), tiny_llama.bridge.hooks(fwd_hooks=[("blocks.0.attn.hook_z", zero_head)]):
        logits = tiny_llama.bridge(batch.clean)
    metric = make_metric("logit-diff", batch.answer, batch.corrupt_answer)
    expected = float(metric(logits[torch.arange(len(batch)), batch.last]).mean())
    assert removed == pytest.approx(expected, abs=1e-4)  # removing every direction = ablating the head
    channel = find_channels(a, top=1, senders="heads")[0]
    result = causal_check(tiny_llama, a, channel, batch, n_random=3)
    assert len(result.random_changes) == 3
    assert np.isfinite(result.channel_change)
    iv = result.channel_interval
    assert iv is not None and iv.low <= result.channel_change <= iv.high
    kept = causal_check(tiny_llama, a, channel, batch, scale=1.0, n_random=1)
    assert kept.channel_change == pytest.approx(0.0, abs=1e-5)
    # nothing removed: every pair's change is zero, so the interval has zero width (DESIGN check 12)
    assert kept.channel_interval.high - kept.channel_interval.low == pytest.approx(0.0, abs=1e-5)
    edge = causal_check(tiny_llama, a, channel, batch, scope="edge", n_random=2)
    assert edge.scope == "edge"
    assert edge.clean == pytest.approx(result.clean)
    assert causal_check(
        tiny_llama, a, channel, batch, scope="edge", scale=1.0, n_random=0
    ).channel_change == (pytest.approx(0.0, abs=1e-5))
    assert np.isfinite(edge.channel_change)
    assert len(edge.random_changes) == 2
    # removing every direction from one edge = exact patching of that edge with a zero ablation
    from circuits.attribution import Harness, exact_edges

    harness = Harness(tiny_llama)
    shape = harness.shape
    removed = _run_removing(tiny_llama, batch, 0, 1, a.senders.directions[w].double(), 0.0, "a2.h1<k>").mean()
    [exact] = exact_edges(
        harness, batch, [(shape.head_sender(0, 1), shape.k_receiver(2, 1))], ablation="zero"
    )
    assert removed - result.clean == pytest.approx(exact, abs=1e-4)
    with pytest.raises(InputError, match="scope"):
        causal_check(tiny_llama, a, channel, batch, scope="all")


@pytest.mark.integration
def test_smollm2_full_analysis(smollm2):
    a = analyze(smollm2)
    shape = GraphShape.of(smollm2)
    n_senders = shape.n_layers * (shape.n_heads + 1)
    n_receivers = shape.n_layers * (shape.n_heads + 2 * shape.n_kv_heads)
    assert a.whole.shape == (n_senders, n_receivers)
    assert a.component.shape == (n_senders, n_receivers, 64)
    valid = ~np.isnan(a.whole)
    assert valid.sum() == sum((a.senders.layers[:, None] < a.receivers.layers[None, :]).ravel())
    assert np.all((a.whole[valid] >= 0) & (a.whole[valid] <= 1))
    heads = ~a.senders.is_mlp
    sigma2 = a.senders.sigma[heads].double().numpy() ** 2
    comp2 = a.component[heads].astype(np.float64) ** 2
    weighted = (comp2 * sigma2[:, None]).sum(-1) / sigma2.sum(-1)[:, None]
    ok = valid[heads]
    np.testing.assert_allclose(weighted[ok], a.whole[heads][ok].astype(np.float64) ** 2, rtol=1e-2)
    channels = find_channels(a, top=10)
    assert len(channels) == 10
    assert channels[0].z > 5
