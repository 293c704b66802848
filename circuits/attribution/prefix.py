"""The shared-prefix cache: positions every run of a batch agrees on are computed once.

In a counterfactual pair the clean and corrupted prompts begin with the same
tokens (the demonstrations and the template's words before the subject), and
a causal model computes exactly the same activations there in both runs: every
sender's Δ is zero on those positions, and no intervention of the engine
changes them. Such a prefix runs once; every later forward of the batch
(clean, corrupted, each EAP-IG step, exact patching, circuit evaluation) runs
only the positions after it and attends to the prefix's cached keys and
values. The cache holds no gradient, so the backward pass stops there.

Rows may share different amounts: row ``i`` keeps its first ``lengths[i]``
tokens in the cache, stored right-aligned (left-padded) to the longest
prefix's width, with an attention mask over the padding slots and explicit
position ids, so each row's positions are those of the full prompt. Rows with
the same prefix tokens share one computation of it.

Where the prefix is not exact (mean or zero ablation, or explicit ablated
values, which change the prefix too), callers run the full sequence as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.relations.pairs import PairBatch
from circuits.vocab import Ablation

__all__ = [
    "SharedPrefix",
    "counterfactual_prefix",
    "pair_prefix_lengths",
    "prefix_record",
    "prefix_share",
    "shift_rows",
    "split_prefix",
]


@dataclass(frozen=True)
class SharedPrefix:
    """Cached keys and values of each row's first ``lengths[i]`` tokens.

    ``keys`` and ``values`` hold one ``[batch, n_kv, width, d_head]`` tensor
    per layer, each row's prefix right-aligned; ``n_positions`` is the width
    of the full prompts (position ids stay below it).
    """

    lengths: Tensor  # [batch] long, on the CPU
    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    n_positions: int

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def width(self) -> int:
        return int(self.keys[0].shape[2])

    @classmethod
    def build(cls, harness: Harness, tokens: Tensor, lengths: Tensor) -> SharedPrefix | None:
        """Run each distinct prefix ``tokens[i, :lengths[i]]`` once; None when every length is 0."""
        lengths = lengths.detach().cpu().long()
        width = int(lengths.max()) if len(lengths) else 0
        if width == 0:
            return None
        rows = [tuple(tokens[i, : int(n)].tolist()) for i, n in enumerate(lengths)]
        distinct = list(dict.fromkeys(rows))
        which = torch.tensor([distinct.index(r) for r in rows])
        run = torch.full((len(distinct), width), int(tokens[0, 0]), dtype=tokens.dtype)
        for g, row in enumerate(distinct):
            run[g, : len(row)] = torch.tensor(row, dtype=tokens.dtype)
        kv = harness.key_values(run.to(tokens.device))
        offset = _slot_offsets(lengths, width)
        real = (offset >= 0).to(tokens.device)
        index = offset.clamp(min=0).to(tokens.device)[:, None, :, None]
        which = which.to(tokens.device)

        def aligned(t: Tensor) -> Tensor:
            picked = t[which].gather(2, index.expand(-1, t.shape[1], -1, t.shape[3]))
            return picked * real[:, None, :, None].to(t.dtype)

        return cls(
            lengths, tuple(aligned(k) for k, _ in kv), tuple(aligned(v) for _, v in kv), int(tokens.shape[1])
        )

    def select(self, rows: Tensor) -> SharedPrefix:
        """The prefix of the rows ``rows`` (indices into this batch)."""
        rows = rows.cpu().long()
        on = rows.to(self.keys[0].device)
        return SharedPrefix(
            self.lengths[rows],
            tuple(k[on] for k in self.keys),
            tuple(v[on] for v in self.values),
            self.n_positions,
        )

    def forward_kwargs(self, rows: int, n_new: int, device: torch.device) -> dict[str, object]:
        """Keyword arguments of a forward over ``n_new`` positions of ``rows`` rows.

        ``rows`` is a multiple of the batch: the batch repeated block by block,
        as the engine's one-intervention-per-block forwards lay their rows out.
        Each call gets a fresh cache object, since a forward appends to it.
        """
        from transformers import DynamicCache

        n = len(self)
        if rows % n:
            raise ValueError(f"a forward over the shared prefix has a multiple of {n} rows, not {rows}")
        reps = rows // n
        data = [
            (k.repeat(reps, 1, 1, 1), v.repeat(reps, 1, 1, 1))
            for k, v in zip(self.keys, self.values, strict=True)
        ]
        cache = DynamicCache(ddp_cache_data=data)
        real = _slot_offsets(self.lengths, self.width) >= 0
        mask = torch.cat([real, torch.ones(n, n_new, dtype=torch.bool)], 1).long().repeat(reps, 1)
        positions = (self.lengths[:, None] + torch.arange(n_new)[None]).clamp(max=self.n_positions - 1)
        # TransformerLens 4.3's attention reads its cache as ``layer_past``; transformers 5 passes ``cache``
        return {
            "cache": cache,
            "layer_past": cache,
            "use_cache": True,
            "attention_mask": mask.to(device),
            "position_ids": positions.repeat(reps, 1).to(device),
        }

    def key_layout(self, per_position: Tensor, n_new: int) -> Tensor:
        """A ``[batch, n_positions]`` per-position tensor laid out like the keys of a cached forward.

        The result is ``[batch, width + n_new]``: the prefix slots (padding
        slots hold zero / False), then the ``n_new`` positions after each row's prefix.
        """
        offset = _slot_offsets(self.lengths, self.width)
        before = per_position.gather(1, offset.clamp(min=0).to(per_position.device))
        before = torch.where((offset >= 0).to(per_position.device), before, torch.zeros_like(before))
        return torch.cat([before, shift_rows(per_position, self.lengths, n_new, 0)], 1)


def _slot_offsets(lengths: Tensor, width: int) -> Tensor:
    """[batch, width]: the prefix position each cache slot of a row holds (negative: a padding slot).

    Row ``i``'s prefix is right-aligned, so slot ``s`` holds position ``s - (width - lengths[i])``.
    """
    return torch.arange(width)[None] - (width - lengths)[:, None]


def shift_rows(t: Tensor, lengths: Tensor, n_new: int, fill: int | float | bool) -> Tensor:
    """``t[i, lengths[i] : lengths[i] + n_new]`` for every row, ``fill`` past the end:
    ``[batch, n_new, ...]``."""
    idx = lengths.to(t.device)[:, None] + torch.arange(n_new, device=t.device)[None]
    inside = idx < t.shape[1]
    idx = idx.clamp(max=t.shape[1] - 1)
    extra = (1,) * (t.ndim - 2)
    picked = t.gather(1, idx.view(*idx.shape, *extra).expand(-1, -1, *t.shape[2:]))
    return torch.where(inside.view(*inside.shape, *extra), picked, torch.full_like(picked, fill))


def pair_prefix_lengths(batch: PairBatch) -> Tensor:
    """Per pair, how many leading tokens its clean and corrupted prompts share (at most its last position)."""
    same = (batch.clean == batch.corrupt).long()
    shared = same.cumprod(1).sum(1)
    return torch.minimum(shared, batch.last.to(shared.device)).cpu()


def prefix_share(batch: PairBatch, lengths: Tensor | None = None) -> float:
    """Share of the batch's real positions (up to each last) that the cache serves."""
    lengths = pair_prefix_lengths(batch) if lengths is None else lengths
    return float(lengths.sum()) / float((batch.last.cpu() + 1).sum())


def prefix_record(batch: PairBatch, ablation: Ablation | str, enabled: bool = True) -> dict[str, object]:
    """What a scored graph records of the shared prefix: whether it was used, why, and the share it served."""
    ablation = Ablation(ablation)
    share = prefix_share(batch)
    if not enabled:
        return {"used": False, "reason": "turned off", "share": 0.0}
    if ablation is not Ablation.COUNTERFACTUAL:
        return {"used": False, "reason": f"{ablation.value} ablation changes the prefix too", "share": 0.0}
    if share == 0:
        return {"used": False, "reason": "the prompts of a pair share no prefix", "share": 0.0}
    return {
        "used": True,
        "reason": "counterfactual ablation: no sender changes on the prefix",
        "share": round(share, 4),
    }


def _suffix_batch(batch: PairBatch, lengths: Tensor) -> PairBatch:
    """The positions after each pair's prefix, right-padded, with last positions moved."""
    last = batch.last.cpu() - lengths
    n_new = int(last.max()) + 1
    pad = batch.clean[:, -1:].min()  # any token: padding positions are never read

    def move(t: Tensor, fill: int | float | bool) -> Tensor:
        return shift_rows(t, lengths, n_new, fill)

    role = None if batch.role is None else move(batch.role, -1)
    return PairBatch(
        move(batch.clean, int(pad)),
        move(batch.corrupt, int(pad)),
        move(batch.mask, False),
        last.to(batch.last.device),
        batch.answer,
        batch.corrupt_answer,
        role,
    )


@contextlib.contextmanager
def counterfactual_prefix(
    harness: Harness, batch: PairBatch, ablation: Ablation | str, *, enabled: bool = True
) -> Iterator[PairBatch]:
    """Run the block's forwards on the positions after each pair's shared prefix.

    Yields the batch of suffixes (its positions, last positions and roles
    shifted), with ``harness`` serving every forward's prefix from one cached
    run. Only counterfactual ablation keeps the prefix exact; otherwise (or
    with ``enabled`` false, or nothing shared) the batch is yielded unchanged.
    """
    prefix, suffixes = split_prefix(harness, batch, ablation, enabled=enabled)
    with harness.sharing(prefix):
        yield suffixes


def split_prefix(
    harness: Harness, batch: PairBatch, ablation: Ablation | str, *, enabled: bool = True
) -> tuple[SharedPrefix | None, PairBatch]:
    """The cached shared prefix of ``batch`` and the batch of what follows it
    (None and ``batch`` where inexact)."""
    if not prefix_record(batch, ablation, enabled)["used"]:
        return None, batch
    lengths = pair_prefix_lengths(batch)
    prefix = SharedPrefix.build(harness, batch.clean.to(harness.model.device), lengths)
    return prefix, _suffix_batch(batch, lengths)
