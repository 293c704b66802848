"""Prompt pairs as tensors: right-padded clean and counterfactual tokens with each position's role.

Batches are right-padded: with causal attention a real token never sees the
padding after it, so no attention mask is needed for the positions we read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuits.relations.facts import pad_rows
from circuits.relations.pair_set import PromptPair
from circuits.relations.roles import role_index
from circuits.vocab import InputError

__all__ = ["PairBatch", "batch_pairs"]


@dataclass(frozen=True)
class PairBatch:
    """Right-padded tensors for a list of pairs (clean and corrupt share lengths).

    ``role`` gives each position's role as an index into
    :data:`~circuits.relations.roles.ROLES` (-1 on padding); position-aware
    scores and circuits need it.
    """

    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    mask: Bool[Tensor, "batch pos"]
    last: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]
    role: Int[Tensor, "batch pos"] | None = None

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def to(self, device: torch.device | str) -> PairBatch:
        tensors = (
            self.clean,
            self.corrupt,
            self.mask,
            self.last,
            self.answer,
            self.corrupt_answer,
            self.role,
        )
        return PairBatch(*(t if t is None else t.to(device) for t in tensors))

    def rows(self, start: int, stop: int) -> PairBatch:
        """Pairs ``start:stop``, their padding trimmed to the longest of them (a mini-batch of a stream).

        >>> import torch
        >>> ones = torch.ones(2, 4, dtype=torch.long)
        >>> mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool()
        >>> b = PairBatch(ones, ones, mask, torch.tensor([1, 3]), torch.tensor([5, 6]), torch.tensor([7, 8]))
        >>> part = b.rows(0, 1)
        >>> tuple(part.clean.shape), part.answer.tolist(), len(b.rows(0, 2))
        ((1, 2), [5], 2)
        """
        width = int(self.mask[start:stop].any(0).nonzero().max()) + 1
        tensors = (self.clean, self.corrupt, self.mask)
        cut = [t[start:stop, :width] for t in tensors]
        tail = [self.last[start:stop], self.answer[start:stop], self.corrupt_answer[start:stop]]
        role = None if self.role is None else self.role[start:stop, :width]
        return PairBatch(*cut, *tail, role)


def batch_pairs(pairs: Sequence[PromptPair], *, pad: int = 0) -> PairBatch:
    """Right-padded tensors of clean and corrupt tokens, with each row's last position."""
    if not pairs:
        raise InputError("no prompt pairs to batch")
    clean, mask, last = pad_rows([p.clean_tokens for p in pairs], pad)
    corrupt, _, _ = pad_rows([p.corrupt_tokens for p in pairs], pad)
    answer = torch.tensor([p.answer for p in pairs], dtype=torch.long)
    corrupt_answer = torch.tensor([p.corrupt_answer for p in pairs], dtype=torch.long)
    n_pos = int(clean.shape[1])
    role = torch.tensor([role_index(p.roles, n_pos) for p in pairs], dtype=torch.long)
    return PairBatch(clean, corrupt, mask, last, answer, corrupt_answer, role)
