"""Loading models as TransformerLens 4 ``TransformerBridge`` objects with their tokenizer.

Every model comes back as a :class:`LoadedModel`: the bridge, the tokenizer the
engine tokenizes with, and a record of how its weights were processed.

- ``"smollm2-135m"`` (the default) and ``"gemma3-270m"`` are the embedded
  SmolLM2-135M-Instruct and Gemma 3 270M (:mod:`circuits.models.embedded`);
- ``"tiny-gpt2"``, ``"tiny-llama"``, ``"tiny-gemma3"`` and ``"gpt2-small-random"`` are random
  models built in-process (:mod:`circuits.models.tiny`);
- any other name is handed to ``TransformerBridge.boot_transformers``; when
  neither the hub nor its local cache has it, the error says so and names the
  embedded default.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from circuits.models.catalog import DEFAULT_MODEL, TINY_MODELS, list_models
from circuits.models.embedded import EMBEDDED, load_embedded
from circuits.models.quiet import quiet_transformer_lens
from circuits.models.tiny import BOS_TINY_MODELS, build_tiny_model
from circuits.vocab import InputError, ModelNotAvailableError

__all__ = ["LoadedModel", "Processing", "check_device", "hf_module", "load_model"]

Processing = Literal["none", "fold"]


@dataclass(frozen=True)
class LoadedModel:
    """A TransformerBridge, its tokenizer and how it was made.

    Every analysis takes a ``LoadedModel``: it is what :func:`load_model`
    returns. The engine tokenizes with :meth:`encode` (never with the bridge's
    own ``to_tokens``), so the prompts scored, evaluated and stored are the
    same token ids everywhere. The size properties (:attr:`n_layers`,
    :attr:`n_heads`, :attr:`n_kv_heads`, :attr:`parallel`) fix the model's
    computation graph, see :meth:`circuits.graph.GraphShape.of`.

    Attributes
    ----------
    bridge : TransformerBridge
        The hooked model (TransformerLens 4), in eval mode. Called on a
        ``[batch, pos]`` tensor of token ids it returns ``[batch, pos, vocab]``
        logits.
    tokenizer : PreTrainedTokenizerBase
        The tokenizer prompts are encoded with (special tokens added only where
        ``prepend_bos`` says so).
    name : str
        The name it was loaded by (recorded in every scored graph's metadata).
    processing : {"none", "fold"}
        ``"none"`` (the weights as published) or ``"fold"`` (TransformerLens's
        compatibility mode: norms folded, writing weights centred).
    prepend_bos : bool
        Whether prompts start with the beginning-of-sequence token.
    info : dict
        Provenance: source file and its hash for the embedded model, ``seed``
        and ``random=True`` for a tiny random model, and ``load_seconds``.

    Examples
    --------
    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> model.name, model.n_layers, model.n_heads, model.n_kv_heads, model.parallel
    ('tiny-llama', 3, 4, 2, False)
    >>> ids = model.encode("The capital of France is")
    >>> model.tokenizer.decode(ids)
    'The capital of France is'
    >>> model.bridge(torch.tensor([ids])).shape[:2] == (1, len(ids))
    True
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
        """Number of transformer blocks."""
        return int(self.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        """Number of query heads per layer."""
        return int(self.cfg.n_heads)

    @property
    def n_kv_heads(self) -> int:
        """Number of key/value heads per layer (``n_heads`` unless attention is grouped-query)."""
        kv = getattr(self.cfg, "n_key_value_heads", None)
        return int(kv) if kv else self.n_heads

    @property
    def parallel(self) -> bool:
        """Whether attention and MLP read the same residual stream (GPT-J / NeoX style blocks)."""
        return bool(getattr(self.cfg, "parallel_attn_mlp", False))

    @property
    def device(self) -> torch.device:
        """The device the weights live on."""
        return next(self.bridge.parameters()).device

    @property
    def pad_id(self) -> int:
        """The token id batches are right-padded with: the tokenizer's pad token, else 0.

        With causal attention no real token sees the padding after it, so the
        choice never changes a result at a real position.
        """
        return int(self.tokenizer.pad_token_id or 0)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, with the BOS token first where the model wants one."""
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self.prepend_bos and self.tokenizer.bos_token_id is not None:
            ids.insert(0, int(self.tokenizer.bos_token_id))
        return ids


def hf_module(component: Any) -> Any:
    """The Hugging Face module a TransformerLens bridge component wraps (the component itself if none).

    Norm weights, biases and epsilons are read from it.
    """
    return getattr(component, "original_component", component)


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    processing: Processing = "none",
    seed: int = 0,
    device_map: str | dict[str, Any] | None = None,
) -> LoadedModel:
    """Load a model by name as a TransformerBridge with its tokenizer.

    Parameters
    ----------
    name : str
        ``"smollm2-135m"`` (the embedded default, :data:`~circuits.models.DEFAULT_MODEL`),
        ``"gemma3-270m"`` (the second embedded model), a tiny random test
        model (``"tiny-gpt2"``, ``"tiny-llama"``, ``"tiny-gemma3"``,
        ``"gpt2-small-random"``, built in-process in about a second) or a
        Hugging Face model name available from the hub or its local cache.
        :func:`~circuits.models.list_models` names the models that need no hub.
    device : str or torch.device
        Where the weights live (default ``"cpu"``).
    dtype : torch.dtype
        Precision of the weights (default ``torch.float32``).
    processing : {"none", "fold"}
        ``"none"`` keeps the weights as published; ``"fold"`` turns on
        TransformerLens's compatibility mode (folded norms, centred writing
        weights). The choice is recorded in :attr:`LoadedModel.processing` and
        in every scored graph's metadata, never silent.
    seed : int
        Seed of a tiny random model's weights (ignored for other models).
    device_map : str or dict, optional
        Spread the layers over several devices, for a model that does not
        fit one: ``"auto"`` (as many layers on each GPU as fit, then the
        host) or a Hugging Face device map (module name -> device); it
        replaces ``device``. A hub model is dispatched by TransformerBridge
        itself, the embedded and tiny models by ``accelerate`` before the
        bridge boots. The map used is in ``info["device_map"]``.

    Returns
    -------
    LoadedModel
        The bridge in eval mode, its tokenizer and how it was made.

    Raises
    ------
    InputError
        ``processing`` is neither ``"none"`` nor ``"fold"``.
    ModelNotAvailableError
        ``name`` is not a local model and neither the hub nor its cache has it.

    Examples
    --------
    A tiny random model knows no facts, but it has the structure of a real one
    (here: Llama with grouped-query attention, 2 key/value heads for 4 query
    heads):

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> model.n_layers, model.n_heads, model.n_kv_heads
    (3, 4, 2)
    >>> model.processing, model.info["random"], model.info["seed"]
    ('none', True, 0)
    >>> load_model("tiny-gpt2", processing="fold").processing
    'fold'
    """
    if processing not in ("none", "fold"):
        raise InputError(f"processing must be 'none' or 'fold', not {processing!r}")
    device = check_device(device)
    if device_map is not None and device.type != "cpu":
        raise InputError("give --device or --device-map, not both (a device map places every layer itself)")
    started = time.perf_counter()
    if name in EMBEDDED:
        hf_model, tokenizer, info = load_embedded(name, dtype)
        boot_name, prepend_bos = str(info["cache"]), EMBEDDED[name].prepend_bos
    elif name in TINY_MODELS:
        hf_model, tokenizer = build_tiny_model(name, seed=seed)
        hf_model = hf_model.to(dtype)
        info = {"seed": seed, "random": True}
        boot_name, prepend_bos = name, name in BOS_TINY_MODELS
    else:
        return _load_from_hub(name, device=device, dtype=dtype, processing=processing, device_map=device_map)
    if device_map is not None:
        hf_model = _dispatch(hf_model, device_map)
        info["device_map"] = {k: str(v) for k, v in hf_model.hf_device_map.items()}
    bridge = _boot(
        boot_name, hf_model, tokenizer, device=None if device_map is not None else device, dtype=dtype
    )
    _apply_processing(bridge, processing)
    info["load_seconds"] = round(time.perf_counter() - started, 3)
    return LoadedModel(bridge, tokenizer, name, processing, prepend_bos, info)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here; a typo or a missing GPU is an error,
    never a silent CPU run.

    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown device 'gpu'; valid: cpu, cuda, cuda:N (a CUDA GPU), mps (Apple GPU)
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"unknown device {str(device)!r}; valid: cpu, cuda, cuda:N (a CUDA GPU), mps (Apple GPU)"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(f"device {str(device)!r}: {build} on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise InputError(
                f"device {str(device)!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {str(device)!r}: no Apple GPU (MPS) is available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {str(device)!r} is not supported; valid: cpu, cuda, cuda:N, mps")
    return parsed


def _boot(name: str, hf_model: Any, tokenizer: Any, *, device: Any, dtype: torch.dtype) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    hf_model.eval()
    # TransformerLens rebuilds a tokenizer with a BOS token from name_or_path
    # unless told the tokenizer already has one; hand it a copy so the
    # engine's own tokenizer keeps the model's native behaviour.
    tl_tokenizer = _tokenizer_for_bridge(tokenizer)
    with quiet_transformer_lens():
        bridge = TransformerBridge.boot_transformers(
            name, hf_model=hf_model, tokenizer=tl_tokenizer, device=device, dtype=dtype
        )
    bridge.eval()
    return bridge


def _dispatch(hf_model: Any, device_map: str | dict[str, Any]) -> Any:
    """``hf_model`` with its modules placed by ``device_map`` (``"auto"``: inferred from free memory)."""
    from accelerate import dispatch_model, infer_auto_device_map

    if isinstance(device_map, str):
        if device_map != "auto":
            raise InputError(f"unknown device map {device_map!r}; valid: auto, or a dict of module -> device")
        no_split = getattr(hf_model, "_no_split_modules", None) or []
        device_map = infer_auto_device_map(hf_model, no_split_module_classes=no_split)
    model = dispatch_model(hf_model, device_map=device_map)
    model.hf_device_map = dict(device_map)
    return model


def _tokenizer_for_bridge(tokenizer: Any) -> Any:
    import copy

    tl_tokenizer = copy.copy(tokenizer)
    tl_tokenizer.init_kwargs = {**tokenizer.init_kwargs, "add_bos_token": True}
    tl_tokenizer.init_kwargs.setdefault("name_or_path", tokenizer.name_or_path or "local")
    return tl_tokenizer


def _apply_processing(bridge: Any, processing: Processing) -> None:
    if processing == "fold":
        bridge.enable_compatibility_mode(disable_warnings=True)


def _hub_unreachable(name: str) -> str | None:
    """Why ``name`` cannot come from the hub right now (``None``: it may), decided in about a second.

    A local folder or a name in the local cache needs no network; otherwise one
    TCP connection to the hub's endpoint is tried with a short timeout, so an
    offline machine fails at once instead of after a minute of retries.
    """
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if os.path.isdir(name) or isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set and the local cache does not hold it"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        return (
            f"the hub ({host}) cannot be reached ({error.strerror or error}) "
            "and the local cache does not hold it"
        )
    return None


def _load_from_hub(
    name: str,
    *,
    device: Any,
    dtype: torch.dtype,
    processing: Processing,
    device_map: str | dict[str, Any] | None = None,
) -> LoadedModel:
    from transformer_lens.model_bridge import TransformerBridge

    why = _hub_unreachable(name)
    if why is not None:
        known = ", ".join(list_models())
        raise ModelNotAvailableError(
            f"cannot load model {name!r}: {why}. Models available here: {known}; "
            f"the embedded default is {DEFAULT_MODEL!r}."
        )
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
        with quiet_transformer_lens():
            placement = {"device_map": device_map} if device_map is not None else {"device": device}
            bridge = TransformerBridge.boot_transformers(name, dtype=dtype, **placement)
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
