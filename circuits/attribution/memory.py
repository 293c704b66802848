"""Batch sizes from the memory at hand: the formulas of :mod:`circuits.sizing` against the free memory."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import torch

from circuits.attribution.prefix import pair_prefix_lengths
from circuits.relations.pairs import PairBatch
from circuits.sizing import ModelDims, attribution_bytes, evaluation_bytes, pick_batch_size
from circuits.vocab import Ablation

if TYPE_CHECKING:
    from circuits.attribution.harness import Harness
    from circuits.models import LoadedModel

__all__ = ["auto_batch_size", "available_bytes", "model_dims"]


def available_bytes(device: torch.device) -> int:
    """Memory free for new buffers: the GPU's free memory, or the host's available memory (MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))  # no /proc: free pages


def model_dims(model: LoadedModel) -> ModelDims:
    """The :class:`~circuits.sizing.ModelDims` of a loaded model."""
    n_params = sum(p.numel() for p in model.bridge.parameters())
    return ModelDims.of(model.name, model.cfg, n_params)


def auto_batch_size(
    harness: Harness,
    batch: PairBatch,
    kind: str,
    *,
    ablation: Ablation | str = Ablation.COUNTERFACTUAL,
    shared_prefix: bool = True,
) -> int:
    """Pairs per pass of ``kind`` (``"attribution"`` or ``"evaluation"``) that fit half the free memory.

    The positions a pass runs are the longest prompt's, less the shortest
    shared prefix when the prefix is cached (counterfactual ablation); EAP-IG's
    steps run one after another, so they add no memory.
    """
    model = harness.model
    positions = int(batch.clean.shape[1])
    if shared_prefix and Ablation(ablation) is Ablation.COUNTERFACTUAL:
        positions -= int(pair_prefix_lengths(batch).min()) if len(batch) else 0
    positions = max(1, positions)
    dims = model_dims(model)
    per_pair = (attribution_bytes if kind == "attribution" else evaluation_bytes)(
        dims, positions, bytes_per=harness._dtype().itemsize
    )
    return pick_batch_size(available_bytes(model.device), per_pair)
