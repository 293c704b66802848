"""Shared fixtures: tiny random models (fast) and the embedded model (integration)."""

from __future__ import annotations

import os

# No test may reach for the hub: fail fast instead of retrying a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def tiny_gpt2():
    from circuits.models import load_model

    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_llama():
    from circuits.models import load_model

    return load_model("tiny-llama")


@pytest.fixture(scope="session", params=["tiny-gpt2", "tiny-llama"])
def tiny(request, tiny_gpt2, tiny_llama):
    """Each tiny model in turn: multi-head GPT-2 and grouped-query Llama."""
    return tiny_gpt2 if request.param == "tiny-gpt2" else tiny_llama


@pytest.fixture(scope="session")
def smollm2():
    from circuits.models import load_model

    return load_model("smollm2-135m")


def random_batch(model, *, batch=3, pos=6, changed=(1, 3), seed=0):
    """A PairBatch of random tokens whose corrupt rows differ in positions ``changed``."""
    from circuits.data import PairBatch

    gen = torch.Generator().manual_seed(seed)
    vocab = min(len(model.tokenizer), 200)
    clean = torch.randint(1, vocab, (batch, pos), generator=gen)
    corrupt = clean.clone()
    corrupt[:, changed[0] : changed[1]] = torch.randint(
        1, vocab, (batch, changed[1] - changed[0]), generator=gen
    )
    last = torch.tensor([pos - 1 - (i % 2) for i in range(batch)])
    mask = torch.arange(pos)[None] <= last[:, None]
    answer = torch.randint(1, vocab, (batch,), generator=gen)
    corrupt_answer = (answer + 1) % vocab
    return PairBatch(clean, corrupt, mask, last, answer, corrupt_answer)
