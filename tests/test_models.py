"""Model loading: tiny random models, the embedded model, errors."""

from __future__ import annotations

import pytest
import torch

from circuits.models import DEFAULT_MODEL, build_tiny_model, list_models, load_model
from circuits.vocab import InputError, ModelNotAvailableError


def test_tiny_models_wrap_their_hugging_face_model_exactly(tiny):
    hf, _ = build_tiny_model(tiny.name, seed=0)
    ids = torch.tensor([tiny.encode("The capital of France is")])
    with torch.no_grad():
        assert torch.allclose(tiny.bridge(ids), hf(ids).logits, atol=1e-5)


def test_tiny_model_shapes(tiny_gpt2, tiny_llama):
    assert (tiny_gpt2.n_layers, tiny_gpt2.n_heads, tiny_gpt2.n_kv_heads) == (2, 4, 4)
    assert (tiny_llama.n_layers, tiny_llama.n_heads, tiny_llama.n_kv_heads) == (3, 4, 2)
    assert tiny_llama.processing == "none"
    assert tiny_llama.info["seed"] == 0


def test_tiny_models_are_deterministic_under_a_seed():
    a, _ = build_tiny_model("tiny-llama", seed=3)
    b, _ = build_tiny_model("tiny-llama", seed=3)
    c, _ = build_tiny_model("tiny-llama", seed=4)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb)
    assert not torch.equal(pa, pc)


def test_tiny_tokenizer_reads_relation_text(tiny_gpt2):
    ids = tiny_gpt2.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert ids
    assert tiny_gpt2.tokenizer.decode(ids) == " Paris"
    assert tiny_gpt2.encode("The capital of France is")[0] != tiny_gpt2.tokenizer.bos_token_id


def test_weight_processing_is_recorded_and_validated():
    folded = load_model("tiny-gpt2", processing="fold")
    assert folded.processing == "fold"
    with pytest.raises(InputError, match="processing"):
        load_model("tiny-gpt2", processing="center")


def test_unknown_model_names_the_embedded_default():
    with pytest.raises(ModelNotAvailableError, match=DEFAULT_MODEL):
        load_model("no-such-org/no-such-model-xyz")


def test_list_models_has_default_and_tiny():
    names = list_models()
    assert DEFAULT_MODEL in names
    assert "tiny-gpt2" in names
    assert "tiny-llama" in names


@pytest.mark.integration
def test_embedded_model_knows_paris(smollm2):
    ids = torch.tensor([smollm2.encode("The capital of France is")])
    with torch.no_grad():
        probs = smollm2.bridge(ids)[0, -1].softmax(-1)
    assert smollm2.tokenizer.decode(probs.argmax()) == " Paris"
    assert probs.max() > 0.5
    assert (smollm2.n_layers, smollm2.n_heads, smollm2.n_kv_heads) == (30, 9, 3)


@pytest.mark.integration
def test_embedded_model_cache_is_keyed_by_hash(smollm2):
    from pathlib import Path

    cache = Path(smollm2.info["cache"])
    assert smollm2.info["gguf_sha256"][:16] in cache.name
    assert (cache / "model.safetensors").is_file()
    assert (cache / "done.json").is_file()


def test_a_device_map_places_the_layers_and_the_model_computes_the_same() -> None:
    import torch
    from conftest import random_batch

    from circuits.attribution import Harness, attribute_edges
    from circuits.models import load_model

    plain = load_model("tiny-llama")
    mapped = load_model("tiny-llama", device_map="auto")
    assert set(mapped.info["device_map"].values()) == {"cpu"}
    tokens = torch.tensor([[1, 5, 9, 4]])
    with torch.no_grad():
        assert torch.allclose(plain.bridge(tokens), mapped.bridge(tokens), atol=1e-6)
    batch = random_batch(plain, seed=2)
    a = attribute_edges(Harness(plain), batch)
    b = attribute_edges(Harness(mapped), batch)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(InputError, match="unknown device map 'balanced'"):
        load_model("tiny-llama", device_map="balanced")
