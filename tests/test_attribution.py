"""Edge attribution (EAP, EAP-IG, exact patching) checked by real interventions on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import logit_diff, random_batch

from circuits.attribution import Harness, attribute_edges, exact_edges, exact_nodes
from circuits.attribution.scoring import clean_metric
from circuits.graph import ScoredGraph, edge_mask


def test_eap_ig_with_one_step_equals_eap_and_more_steps_differ(tiny):
    batch = random_batch(tiny)
    harness = Harness(tiny)
    eap = attribute_edges(harness, batch, ig_steps=1)
    again = attribute_edges(harness, batch, ig_steps=1)
    ig5 = attribute_edges(harness, batch, ig_steps=5)
    torch.testing.assert_close(eap, again, rtol=0, atol=0)
    assert not torch.allclose(eap, ig5, rtol=1e-3, atol=1e-6)


def test_eap_equals_transformer_lens_edge_attribution(tiny_gpt2):
    from transformer_lens.tools.analysis.attribution_patching import (
        EdgeAttributionConfig,
        attribution_patch,
    )

    batch = random_batch(tiny_gpt2, batch=3)
    harness = Harness(tiny_gpt2)
    shape = harness.shape
    ours = (attribute_edges(harness, batch) / len(batch)).numpy()

    def sender(node):
        if node.kind == "embed":
            return 0
        if node.kind == "attn_head_out":
            return shape.head_sender(node.layer, node.head)
        return shape.mlp_sender(node.layer)

    def receiver(node):
        kind = node.kind
        if kind == "q_input":
            return shape.q_receiver(node.layer, node.head)
        if kind == "k_input":
            return shape.k_receiver(node.layer, node.head)
        if kind == "v_input":
            return shape.v_receiver(node.layer, node.head)
        if kind == "mlp_in":
            return shape.mlp_receiver(node.layer)
        return shape.logits_receiver

    theirs = np.zeros_like(ours)
    for i in range(len(batch)):
        last = int(batch.last[i])
        a, c = int(batch.answer[i]), int(batch.corrupt_answer[i])

        def metric(logits, last=last, a=a, c=c):
            return logits[0, last, a] - logits[0, last, c]

        # TransformerLens scores denoising (gradient on its "corrupt" run); handing it our
        # corrupt prompt as its clean one gives exactly our convention.
        result = attribution_patch(
            tiny_gpt2.bridge,
            batch.corrupt[i : i + 1, : last + 1],
            batch.clean[i : i + 1, : last + 1],
            metric,
            EdgeAttributionConfig(granularity="edge"),
        )
        for (w, r), value in result.edge_scores.items():
            theirs[sender(w), receiver(r)] += value / len(batch)
    mask = edge_mask(shape)
    assert np.count_nonzero(theirs) > 0.9 * mask.sum()
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours[mask], theirs[mask], rtol=1e-4, atol=1e-4 * scale)


def test_exact_edge_patching_matches_a_hand_made_hook(tiny):
    """Patch one edge by hand with TransformerLens's own per-head input hooks."""
    batch = random_batch(tiny)
    harness = Harness(tiny)
    shape = harness.shape
    clean_senders, _ = harness.senders(batch.clean)
    corrupt_senders, _ = harness.senders(batch.corrupt)
    sender, layer, kv = shape.head_sender(0, 1), 1, shape.n_kv_heads - 1
    edges = [
        (sender, shape.k_receiver(layer, kv)),
        (0, shape.q_receiver(layer, 0)),
        (shape.mlp_sender(0), shape.logits_receiver),
    ]
    ours = exact_edges(harness, batch, edges)
    delta = corrupt_senders[sender] - clean_senders[sender]
    bridge = tiny.bridge
    bridge.set_use_split_qkv_input(True)
    try:

        def add_k(x, hook):
            x = x.clone()
            x[:, :, kv] += delta
            return x

        with torch.no_grad(), bridge.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_k_input", add_k)]):
            patched = logit_diff(tiny, batch, batch.clean)
        delta_in = corrupt_senders[0] - clean_senders[0]

        def add_q(x, hook):
            x = x.clone()
            x[:, :, 0] += delta_in
            return x

        with torch.no_grad(), bridge.hooks(fwd_hooks=[(f"blocks.{layer}.attn.hook_q_input", add_q)]):
            patched_q = logit_diff(tiny, batch, batch.clean)
    finally:
        bridge.set_use_split_qkv_input(False)
    delta_mlp = corrupt_senders[shape.mlp_sender(0)] - clean_senders[shape.mlp_sender(0)]
    with torch.no_grad(), bridge.hooks(fwd_hooks=[("ln_final.hook_in", lambda x, hook: x + delta_mlp)]):
        patched_logits = logit_diff(tiny, batch, batch.clean)
    with torch.no_grad():
        base = logit_diff(tiny, batch, batch.clean)
    expected = [(p - base).mean().item() for p in (patched, patched_q, patched_logits)]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    assert max(abs(e) for e in expected) > 1e-4


def test_eap_and_exact_agree_for_small_corruptions(tiny):
    batch = random_batch(tiny)
    harness = Harness(tiny)
    clean_senders, _ = harness.senders(batch.clean)
    corrupt_senders, _ = harness.senders(batch.corrupt)
    eps = 1e-3
    ablated = clean_senders + eps * (corrupt_senders - clean_senders)
    eap = (attribute_edges(harness, batch, ablated=ablated) / len(batch)).numpy()
    graph = ScoredGraph(harness.shape, eap)
    top = graph.ranked(by="abs")[:25]
    edges = [divmod(int(i), harness.shape.n_receivers) for i in top]
    exact = exact_edges(harness, batch, edges, ablated=ablated)
    approx = np.array([eap[s, r] for s, r in edges])
    np.testing.assert_allclose(exact, approx, rtol=2e-2, atol=2e-2 * np.abs(approx).max())


def test_scores_into_logits_sum_to_final_residual_change(tiny):
    batch = random_batch(tiny)
    harness = Harness(tiny)
    scores = attribute_edges(harness, batch) / len(batch)
    total = scores[:, harness.shape.logits_receiver].sum().item()
    finals = {}
    for name, tokens in (("clean", batch.clean), ("corrupt", batch.corrupt)):
        finals[name] = harness.residual_before(tokens, tiny.n_layers)
    x = finals["clean"].clone().requires_grad_(True)
    fn, _ = clean_metric(harness, batch, "logit-diff")
    logits = tiny.bridge.unembed(tiny.bridge.ln_final(x))
    value = fn(logits[torch.arange(len(batch)), batch.last]).mean()
    (grad,) = torch.autograd.grad(value, x)
    expected = ((finals["corrupt"] - finals["clean"]) * grad).sum().item()
    assert total == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_receiver_gradients_match_transformer_lens_split_inputs(tiny):
    """Our per-head q/k/v gradients equal TransformerLens's split-input hooks (GQA included)."""
    batch = random_batch(tiny)
    harness = Harness(tiny)
    fn, _ = clean_metric(harness, batch, "logit-diff")
    grads, _ = harness.gradients(batch.clean, fn, batch.last)
    bridge = tiny.bridge
    names = [f"blocks.{i}.attn.hook_{k}_input" for i in range(tiny.n_layers) for k in "qkv"]
    store = {}

    def keep(x, hook):
        if hook.name == "blocks.0.hook_resid_pre":
            x = x.detach().requires_grad_(True)
        store[hook.name] = x
        return x

    bridge.set_use_split_qkv_input(True)
    try:
        with bridge.hooks(fwd_hooks=[(n, keep) for n in [*names, "blocks.0.hook_resid_pre"]]):
            logits = bridge(batch.clean)
            value = fn(logits[torch.arange(len(batch)), batch.last]).mean()
            ref = torch.autograd.grad(value, [store[n] for n in names])
    finally:
        bridge.set_use_split_qkv_input(False)
    shape = harness.shape
    for layer in range(tiny.n_layers):
        q, k, v = ref[3 * layer : 3 * layer + 3]
        assert k.shape[2] == tiny.n_kv_heads
        expected = torch.cat([q, k, v], dim=2)
        torch.testing.assert_close(
            grads[shape.attn_receivers(layer)].permute(1, 2, 0, 3), expected, rtol=1e-4, atol=1e-6
        )


def test_node_scores_attribution_matches_exact_for_small_corruptions(tiny_gpt2):
    batch = random_batch(tiny_gpt2)
    harness = Harness(tiny_gpt2)
    eap = attribute_edges(harness, batch) / len(batch)
    nodes_attr = eap.sum(1).numpy()
    nodes_exact = exact_nodes(harness, batch)
    assert nodes_exact.shape == (harness.shape.n_senders,)
    # exact node patching is the whole-node intervention: strongly correlated with attribution
    assert np.corrcoef(nodes_attr, nodes_exact)[0, 1] > 0.5
    # the input node's exact score is the full corrupted-minus-clean effect
    fn, base = clean_metric(harness, batch, "logit-diff")
    with torch.no_grad():
        corrupt = fn(tiny_gpt2.bridge(batch.corrupt)[torch.arange(len(batch)), batch.last])
    assert nodes_exact[0] == pytest.approx((corrupt - base).mean().item(), abs=1e-4)


def test_kl_metric_has_zero_gradient_at_the_clean_run(tiny_gpt2):
    batch = random_batch(tiny_gpt2)
    harness = Harness(tiny_gpt2)
    eap = attribute_edges(harness, batch, metric="kl")
    assert eap.abs().max().item() < 1e-5
    ig = attribute_edges(harness, batch, metric="kl", ig_steps=3)
    assert ig.abs().max().item() > 1e-5


def test_closed_form_norm_jacobians_match_autograd(tiny):
    """RMSNorm (tiny-llama), Gemma's (1 + w) RMSNorm and LayerNorm (tiny-gpt2) get their closed form;
    it equals autograd."""

    harness = Harness(tiny)
    gen = torch.Generator().manual_seed(1)
    d = int(tiny.cfg.d_model)
    x = torch.randn(3, 5, d, generator=gen) * 2 - 0.3
    g = torch.randn(3, 5, 6, d, generator=gen)
    for vjp in harness.norm_vjps:
        assert (
            vjp.kind == {"tiny-llama": "rms", "tiny-gemma3": "rms (1 + w)", "tiny-gpt2": "layer"}[tiny.name]
        )
        torch.testing.assert_close(vjp(x, g), vjp._autograd(x, g), rtol=1e-5, atol=1e-6)


def test_a_norm_without_a_known_closed_form_keeps_autograd():
    from circuits.attribution.norms import NormVJP

    class Squash(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.linspace(0.5, 1.5, 8))
            self.eps = 1e-5

        def forward(self, x):
            return torch.tanh(x) * self.weight

    vjp = NormVJP(Squash())
    x, g = torch.randn(2, 3, 8), torch.randn(2, 3, 4, 8)
    assert vjp.kind == "autograd"
    expected = (1 - torch.tanh(x)[..., None, :] ** 2) * torch.linspace(0.5, 1.5, 8) * g
    torch.testing.assert_close(vjp(x, g), expected)
