"""Tiny random test models, built in-process from a config and a seed.

``tiny-gpt2`` has standard multi-head attention; ``tiny-llama`` has grouped-query
attention (4 query heads, 2 key/value heads); ``tiny-gemma3`` has Gemma 3's
architecture (one key/value head, q/k norms, norms after the attention and MLP
blocks, a 4-token sliding window in two of its three layers, BOS first);
``gpt2-small-random`` is a
GPT-2-small-shaped random model for benchmarks. Their tokenizer is a byte-level
BPE trained deterministically on the bundled relation texts.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any

import torch

from circuits.models.catalog import TINY_MODELS
from circuits.vocab import ModelNotAvailableError

__all__ = ["BOS_TINY_MODELS", "build_tiny_model", "tiny_tokenizer"]

BOS_TINY_MODELS = frozenset({"tiny-gemma3"})
"""The tiny models whose prompts start with the BOS token (as their real counterparts' do)."""

_GPT2_SIZES: dict[str, dict[str, Any]] = {
    "tiny-gpt2": {"n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4},
    "gpt2-small-random": {"n_positions": 128, "n_embd": 768, "n_layer": 12, "n_head": 12},
}


def _relation_corpus() -> list[str]:
    texts: list[str] = []
    folder = importlib.resources.files("circuits.relations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        templates = data.get("prompt_templates", []) + data.get("prompt_templates_zs", [])
        for sample in data.get("samples", []):
            for template in templates:
                texts.append(template.replace("{}", sample["subject"]) + " " + sample["object"])
    return texts


def tiny_tokenizer(vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained (deterministically) on the bundled relations."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_relation_corpus(), trainer)
    special = "<|endoftext|>"
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        name_or_path="tiny-bpe",
        bos_token=special,
        eos_token=special,
        pad_token=special,
    )


def build_tiny_model(name: str, *, seed: int = 0) -> tuple[Any, Any]:
    """A random Hugging Face model and tokenizer for ``name`` in :data:`TINY_MODELS`."""
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    config: Any
    model: Any
    if name in _GPT2_SIZES:
        config = GPT2Config(
            vocab_size=vocab,
            **_GPT2_SIZES[name],
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = GPT2LMHeadModel(config)
    elif name == "tiny-llama":
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=False,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
        )
        model = LlamaForCausalLM(config)
    elif name == "tiny-gemma3":
        # head_dim * heads (64) != d_model (32), as in Gemma 3 270M (4 x 256 against 640)
        config = Gemma3TextConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=4,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            max_position_embeddings=64,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
            architectures=["Gemma3ForCausalLM"],  # how TransformerBridge picks its adapter
        )
        model = Gemma3ForCausalLM(config)
    else:
        raise ModelNotAvailableError(f"no tiny model {name!r}; tiny models: {list(TINY_MODELS)}")
    # A random init gives near-uniform outputs; widen the weights so tests
    # see sharp, non-linear behaviour (saturating softmaxes, real interactions).
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.mul_(4.0)
    return model.eval(), tokenizer
