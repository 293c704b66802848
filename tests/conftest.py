"""Shared fixtures and helpers: tiny random models (fast), the embedded model (integration), toy graphs."""

from __future__ import annotations

import os

# No test may reach for the hub: fail fast instead of retrying a network that is not there.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch

from circuits.graph import GraphShape, ScoredGraph

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def tiny_gpt2():
    from circuits.models import load_model

    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_llama():
    from circuits.models import load_model

    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def tiny_gemma():
    from circuits.models import load_model

    return load_model("tiny-gemma3")


@pytest.fixture(scope="session", params=["tiny-gpt2", "tiny-llama", "tiny-gemma3"])
def tiny(request, tiny_gpt2, tiny_llama, tiny_gemma):
    """Each tiny model in turn: multi-head GPT-2, grouped-query Llama, and Gemma 3
    (post-norms, sliding window)."""
    return {"tiny-gpt2": tiny_gpt2, "tiny-llama": tiny_llama, "tiny-gemma3": tiny_gemma}[request.param]


@pytest.fixture(scope="session")
def smollm2():
    from circuits.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma():
    from circuits.models import load_model

    return load_model("gemma3-270m")


@pytest.fixture(scope="session", params=["smollm2-135m", "gemma3-270m"])
def embedded(request):
    """Each embedded model in turn: SmolLM2-135M, then Gemma 3 270M (post-norms, sliding windows, BOS)."""
    return request.getfixturevalue("smollm2" if request.param == "smollm2-135m" else "gemma")


def random_batch(model, *, batch=3, pos=6, changed=(1, 3), seed=0):
    """A PairBatch of random tokens whose corrupt rows differ in positions ``changed``."""
    from circuits.relations import PairBatch

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


def logit_diff(model, batch, tokens):
    """The per-row logit difference of an unpatched forward of ``tokens``."""
    from circuits.attribution import Harness
    from circuits.attribution.scoring import clean_metric

    fn, _ = clean_metric(Harness(model), batch, "logit-diff")
    logits = model.bridge(tokens)
    return fn(logits[torch.arange(len(batch)), batch.last])


TOY_SHAPE = GraphShape(2, 4, 2)


def toy_scored(relation: str = "rel", seed: int = 0) -> ScoredGraph:
    """A random scored graph of ``TOY_SHAPE`` whose metadata names model ``org/toy`` and ``relation``."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(TOY_SHAPE.n_senders, TOY_SHAPE.n_receivers))
    return ScoredGraph(
        TOY_SHAPE, scores, {"model": "org/toy", "relation": relation, "score_method": "eap", "seed": seed}
    )


RIVERS = [
    ("Danube", "Austria"),
    ("Seine", "France"),
    ("Thames", "England"),
    ("Volga", "Russia"),
    ("Nile", "Egypt"),
    ("Ganges", "India"),
    ("Rhine", "Germany"),
    ("Po", "Italy"),
]


@pytest.fixture
def river_lre(tmp_path):
    """An LRE-schema relation file no bundled relation resembles: eight rivers and their countries."""
    import json

    path = tmp_path / "river_country.json"
    path.write_text(
        json.dumps(
            {
                "name": "river flows through country",
                "prompt_templates": ["The river {} flows through"],
                "prompt_templates_zs": [],
                "properties": {"relation_type": "factual"},
                "samples": [{"subject": s, "object": o} for s, o in RIVERS],
            }
        )
    )
    return path


def run_cli(capsys, *argv):
    """``circuits ARGV...`` in-process: (exit status, stdout, stderr); a refusal while parsing is status 2."""
    from circuits.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:  # argparse refuses a bad option or value before the command runs
        code = stop.code if isinstance(stop.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err
