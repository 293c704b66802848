"""How much memory and time scoring and evaluation take, from a model's dimensions (torch-free).

The same formulas choose the batch size at run time
(:func:`circuits.attribution.memory.auto_batch_size`) and print the sizing
table of ``circuits sizing``. With ``S = 1 + L(H + 1)`` senders (the
embedding, every head, every MLP), ``R = L(H + 2K + 1) + 1`` receivers (every
head's q, k and v input, every MLP, the logits), ``P`` positions a pass runs
(after the shared prefix, where one is cached), ``d`` the model width and
``b`` bytes per number, one prompt pair of EAP-IG needs

- **buffers**: the ablated and the clean senders' outputs ``2·S·P·d·b``, the
  receivers' summed gradients and one step's ``2·R·P·d·b``, and the live
  slots gathered for the edge product ``(S + R)·P·d·b``;
- **activations** kept for the backward pass, per layer: every receiver's
  input ``(H + 2K)·d``, six residual-width tensors (the stream, two norms,
  the attention and MLP outputs, the hooks' sums), q/k/v and the heads'
  outputs ``(2H + 2K)·d_head``, three MLP-width tensors and the attention
  scores and probabilities ``2·H·P``, all ``·P·b``; and the logits ``V·P·b``;

and one pair of circuit evaluation needs the ablated senders and their
differences ``2·S·P·d·b`` plus the receivers' patched inputs of one layer
``(H + 2K)·P·d·b``. The model's weights take ``n_params·b``. Time counts
floating-point operations: ``2·W·P`` per forward, with ``W`` the weights
multiplied at every position (all but the embedding and the unembedding,
which runs at the last position only), twice that per backward, so
``(1 + 3·steps)`` forwards' worth for EAP-IG, plus the edge product
``2·S·R·P·d``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "MEASURED_GFLOPS",
    "MODELS",
    "ModelDims",
    "attribution_bytes",
    "evaluation_bytes",
    "pick_batch_size",
    "scoring_flops",
    "sizing_rows",
]

MEASURED_GFLOPS = 50.0
"""Floating-point rate of scoring SmolLM2-135M on the 2-core CPU of the development machine
(``tests/benchmarks/bench_memory.py``); ``circuits sizing --gflops`` takes another machine's."""

MAX_BATCH = 16
"""The most pairs one pass batches when memory allows (more buys little speed on a CPU)."""


@dataclasses.dataclass(frozen=True)
class ModelDims:
    """The dimensions the formulas need (a Llama-architecture model: gated MLP, grouped-query attention)."""

    name: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    vocab: int
    n_params: int
    tied: bool = True

    @property
    def matmul_params(self) -> int:
        """Weights multiplied at every position: all but the embedding (and the unembedding, which the
        engine applies at each prompt's last position only)."""
        return self.n_params - self.vocab * self.d_model * (1 if self.tied else 2)

    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_receivers(self) -> int:
        return self.n_layers * (self.n_heads + 2 * self.n_kv_heads + 1) + 1

    @classmethod
    def of(cls, name: str, cfg: Any, n_params: int) -> ModelDims:
        """The dimensions of a loaded model's TransformerLens config."""
        heads = int(cfg.n_heads)
        kv = int(getattr(cfg, "n_key_value_heads", None) or heads)
        tied = bool(getattr(cfg, "tie_word_embeddings", True))
        return cls(
            name,
            int(cfg.n_layers),
            heads,
            kv,
            int(cfg.d_model),
            int(cfg.d_head),
            int(cfg.d_mlp),
            int(cfg.d_vocab),
            int(n_params),
            tied,
        )


MODELS = {
    "smollm2-135m": ModelDims("SmolLM2-135M", 30, 9, 3, 576, 64, 1536, 49152, 134_515_008),
    "llama-1b": ModelDims("Llama-3.2-1B", 16, 32, 8, 2048, 64, 8192, 128256, 1_235_814_400),
    "llama-8b": ModelDims("Llama-3.1-8B", 32, 32, 8, 4096, 128, 14336, 128256, 8_030_261_248, tied=False),
}
"""The models of the sizing table: the embedded one and two Llama-architecture models 10x and 60x larger."""


def attribution_bytes(dims: ModelDims, positions: int, *, bytes_per: int = 4) -> int:
    """Memory one prompt pair of EAP / EAP-IG needs besides the weights (buffers and activations).

    >>> attribution_bytes(MODELS["smollm2-135m"], 10) // 2**20
    74
    """
    S, R, d, P = dims.n_senders, dims.n_receivers, dims.d_model, positions
    buffers = (2 * S + 2 * R + S + R) * P * d
    per_layer = (
        (dims.n_heads + 2 * dims.n_kv_heads) * d
        + 6 * d
        + (2 * dims.n_heads + 2 * dims.n_kv_heads) * dims.d_head
        + 3 * dims.d_mlp
        + 2 * dims.n_heads * P
    )
    activations = dims.n_layers * per_layer * P + dims.vocab * P
    return (buffers + activations) * bytes_per


def evaluation_bytes(dims: ModelDims, positions: int, *, bytes_per: int = 4) -> int:
    """Memory one prompt pair of a circuit evaluation needs besides the weights.

    >>> evaluation_bytes(MODELS["smollm2-135m"], 10) // 2**20
    13
    """
    S, d, P = dims.n_senders, dims.d_model, positions
    return (2 * S + dims.n_heads + 2 * dims.n_kv_heads) * P * d * bytes_per


def pick_batch_size(available: int, per_pair: int, *, cap: int = MAX_BATCH, share: float = 0.5) -> int:
    """Pairs per pass so that ``per_pair`` bytes each fill at most ``share`` of ``available`` (1 to ``cap``).

    >>> (pick_batch_size(8 * 2**30, 40 * 2**20), pick_batch_size(400 * 2**20, 40 * 2**20),
    ...  pick_batch_size(0, 1))
    (16, 5, 1)
    """
    return max(1, min(cap, int(available * share) // max(1, per_pair)))


def scoring_flops(dims: ModelDims, positions: int, steps: int) -> float:
    """Floating-point operations of one prompt pair of EAP-IG with ``steps`` steps (1: EAP).

    >>> f"{scoring_flops(MODELS['smollm2-135m'], 10, 5):.2e}"
    '3.57e+10'
    """
    passes = 1 + 3 * steps
    products = 2 * dims.n_senders * dims.n_receivers * positions * dims.d_model
    return 2.0 * dims.matmul_params * positions * passes + products


def sizing_rows(
    positions: int, steps: int, flops_per_second: float, *, pairs: int = 100, bytes_per: int = 4
) -> list[dict[str, Any]]:
    """One row per model of :data:`MODELS`: weights, memory at the batch size, and time per ``pairs`` pairs.

    ``flops_per_second`` is the rate the machine reaches (measure it with
    ``tests/benchmarks/bench_memory.py``); the batch is :data:`MAX_BATCH`
    pairs (or ``pairs`` when fewer).
    """
    rows = []
    batch = min(MAX_BATCH, pairs)
    for key, dims in MODELS.items():
        weights = dims.n_params * bytes_per
        score = attribution_bytes(dims, positions, bytes_per=bytes_per) * batch
        evaluate = evaluation_bytes(dims, positions, bytes_per=bytes_per) * batch
        seconds = scoring_flops(dims, positions, steps) * pairs / flops_per_second
        rows.append(
            {
                "model": key,
                "name": dims.name,
                "weights_gb": weights / 2**30,
                "scoring_gb": (weights + score) / 2**30,
                "evaluation_gb": (weights + evaluate) / 2**30,
                "batch": batch,
                "seconds_per_pairs": seconds,
                "pairs": pairs,
            }
        )
    return rows
