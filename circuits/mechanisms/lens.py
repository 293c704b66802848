"""Reading the residual stream in vocabulary space, and the batched forwards the analyses share.

- :func:`decode` is the logit lens: a residual stream vector through the final
  norm (with its own scale) and the unembedding.
- :class:`FrozenNorm` is a norm with its scale frozen from a real input: for
  RMSNorm ``c -> γ ⊙ c / rms(x)``, for LayerNorm ``c -> γ ⊙ (c − mean c) / σ(x)``
  (no bias). It is linear, so the parts of a residual stream (heads, MLPs)
  project to parts that add up to the normed whole minus its bias. Attribute
  extraction and direct logit attribution project components with it.
- :class:`Prompts` holds a batch of prompts (right-padded token ids, the
  answer, the last position and the position roles of each row).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuits.attribution.norms import norm_form
from circuits.models.load import hf_module
from circuits.relations.facts import pad_rows
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["FrozenNorm", "Prompts", "Recorder", "answer_ranks", "decode", "run_with_hooks"]


@dataclass(frozen=True)
class Prompts:
    """The prompts of one analysis: token ids right-padded, answers, last positions, roles."""

    tokens: Tensor  # [batch, pos]
    answer: Tensor  # [batch]
    last: Tensor  # [batch]
    roles: tuple[Any, ...]  # one relations.pairs.Roles per row
    texts: tuple[str, ...]
    subjects: tuple[str, ...]
    answer_texts: tuple[str, ...]
    counter: Tensor | None = None  # [batch] the counterfactual prompt's answer (logit-difference direction)

    @classmethod
    def of(cls, pairs: Sequence[Any], pad: int) -> Prompts:
        """The clean prompts of a list of :class:`~circuits.relations.pairs.PromptPair`."""
        if not pairs:
            raise InputError("no prompts to analyse")
        tokens, _, last = pad_rows([p.clean_tokens for p in pairs], pad)
        answer = torch.tensor([p.answer for p in pairs], dtype=torch.long)
        return cls(
            tokens,
            answer,
            last,
            tuple(p.roles for p in pairs),
            tuple(p.clean_text for p in pairs),
            tuple(p.fact.subject for p in pairs),
            tuple(p.answer_text for p in pairs),
            torch.tensor([p.corrupt_answer for p in pairs], dtype=torch.long),
        )

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def rows(self) -> Tensor:
        return torch.arange(len(self))


class FrozenNorm:
    """A model's norm with the scale frozen from ``x``: linear in what it is applied to.

    ``norm`` is a bridge normalisation component (RMSNorm or LayerNorm);
    ``x`` is ``[..., d_model]``, the real input whose scale is frozen. The
    returned object maps ``[..., n, d_model]`` components (or ``[..., d_model]``)
    to their share of the normed output, bias excluded.
    """

    def __init__(self, norm: torch.nn.Module, x: Tensor) -> None:
        form = norm_form(norm)
        if form is None:
            raise InputError(
                f"the norm {type(hf_module(norm)).__name__} is neither an RMS norm nor a LayerNorm; "
                "its scale cannot be frozen"
            )
        self.centred = form.kind == "layer"
        x = x.float()
        if self.centred:
            x = x - x.mean(-1, keepdim=True)
        self.scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + form.eps)  # [..., 1]
        self.weight = form.gain.detach().float()

    def __call__(self, c: Tensor, *, per_component: bool = False) -> Tensor:
        """``c`` normed with the frozen scale; ``per_component``: ``c`` has an extra axis before d."""
        c = c.float()
        if self.centred:
            c = c - c.mean(-1, keepdim=True)
        scale = self.scale[..., None, :] if per_component else self.scale
        out = c * scale
        return out * self.weight


def decode(model: LoadedModel, resid: Tensor) -> Tensor:
    """Logit lens: ``[..., d_model]`` residual streams to ``[..., vocab]`` logits (final norm, W_U)."""
    bridge = model.bridge
    shape = resid.shape
    flat = resid.reshape(-1, 1, shape[-1]).to(next(bridge.parameters()).dtype)
    with torch.no_grad():
        logits = bridge.unembed(bridge.ln_final(flat))[:, 0]
    return logits.reshape(*shape[:-1], logits.shape[-1]).float()


def answer_ranks(logits: Tensor, answer: Tensor) -> Tensor:
    """Rank of ``answer`` (1 = top) in ``[..., vocab]`` logits; ``answer`` broadcasts over leading axes."""
    target = logits.gather(-1, answer[..., None].expand(*logits.shape[:-1], 1))
    return (logits > target).sum(-1) + 1


class Recorder:
    """Forward hooks that keep activations by name in :attr:`store` (detached, float32, on the CPU).

    ``rows`` are the batch rows; :meth:`at` keeps one position per row (e.g.
    each prompt's last), :meth:`whole` every position, :meth:`query_row` one
    query position's row of an attention pattern ``[batch, heads, query, key]``.
    """

    def __init__(self, rows: Tensor) -> None:
        self.rows = rows
        self.store: dict[str, Tensor] = {}

    def _keep(self, name: str, take: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
        def hook(x: Tensor, hook: Any) -> Tensor:
            self.store[name] = take(x).detach().float().cpu()
            return x

        return hook

    def at(self, name: str, positions: Tensor) -> Callable[..., Tensor]:
        return self._keep(name, lambda x: x[self.rows, positions.to(x.device)])

    def whole(self, name: str) -> Callable[..., Tensor]:
        return self._keep(name, lambda x: x)

    def query_row(self, name: str, positions: Tensor) -> Callable[..., Tensor]:
        return self._keep(name, lambda x: x[self.rows, :, positions.to(x.device)])


class _StopError(Exception):
    """Raised by a hook to end a forward early."""


def run_with_hooks(
    model: LoadedModel,
    tokens: Tensor,
    hooks: list[tuple[str, Callable[..., Any]]],
    *,
    stop_at: str | None = None,
) -> Tensor | None:
    """One forward under ``hooks``; the logits, or ``None`` when it stops at hook ``stop_at``."""

    def stop(x: Tensor, hook: Any) -> Tensor:
        raise _StopError

    extra = [(stop_at, stop)] if stop_at else []
    with torch.no_grad(), model.bridge.hooks(fwd_hooks=[*hooks, *extra]):
        if stop_at:
            with contextlib.suppress(_StopError):
                model.bridge(tokens)
            return None
        return model.bridge(tokens)
