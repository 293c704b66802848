"""A mini-batch of an :class:`~circuits.evaluate.forward.Evaluator`: its ablated senders, circuit forwards.

A :class:`Chunk` holds its pairs (after their shared prefix), their metric and
their ablated senders, computed once and kept on the device, on the host or in
a temporary file; :meth:`Chunk.run` is one circuit's patched forward, in which
receiver ``v`` reads ``in_v + Σ_{u→v removed} (a_u(ablated) − a_u(current))``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.metrics import MetricFn
from circuits.attribution.prefix import SharedPrefix, split_prefix
from circuits.attribution.scoring import ablated_senders, clean_metric
from circuits.evaluate.buffers import Buffers
from circuits.graph import N_ROLES
from circuits.relations.pairs import PairBatch
from circuits.vocab import Ablation, Metric

__all__ = ["Chunk", "prefix_sums"]


class Chunk:
    """One mini-batch of an evaluator: its pairs (after their shared prefix), metric and ablated senders.

    The ablated senders (and the shared prefix's keys and values) are computed
    once and kept (:meth:`keep`, :class:`~circuits.evaluate.buffers.Buffers`):
    on the model's device, on the host, or, once the evaluator's memory budget
    is spent, in a temporary file read back at every run, so memory stays flat
    however many pairs.
    """

    def __init__(
        self,
        harness: Harness,
        batch: PairBatch,
        metric: Metric | str,
        ablation: Ablation | str,
        means: Tensor | None,
        shared_prefix: bool,
    ) -> None:
        self.harness, self.shape = harness, harness.shape
        self.device = harness.model.device
        self.ablation, self.means = Ablation(ablation), means
        self.prefix, batch = split_prefix(harness, batch, ablation, enabled=shared_prefix)
        self.batch = batch
        self.tokens = batch.clean.to(self.device)
        self.last = batch.last.to(self.device)
        self.answer = batch.answer.to(self.device)
        with harness.sharing(self.prefix):
            self.fn: MetricFn = clean_metric(harness, batch, metric)[0]
        d = int(harness.model.cfg.d_model)
        prefix_bytes = (
            0
            if self.prefix is None
            else sum(t.numel() * t.element_size() for t in (*self.prefix.keys, *self.prefix.values))
        )
        self.buffer_bytes = (
            self.shape.n_senders * batch.clean.numel() * d * harness._dtype().itemsize + prefix_bytes
        )
        self.kept: Buffers | None = None

    def keep(self, where: str) -> None:
        """Compute the ablated senders once and keep them, with the prefix's keys and values, at ``where``:
        the model's ``"device"``, ``"host"`` memory (pinned, for a GPU short of memory) or ``"disk"``."""
        with self.harness.sharing(self.prefix):
            tensors = {"ablated": ablated_senders(self.harness, self.batch, self.ablation, self.means)}
        if self.prefix is not None:
            tensors.update({f"key{i}": t for i, t in enumerate(self.prefix.keys)})
            tensors.update({f"value{i}": t for i, t in enumerate(self.prefix.values)})
        self.kept = Buffers(tensors, where, self.device)
        if where != "device" and self.prefix is not None:  # the prefix lives with the senders now
            self.prefix = dataclasses.replace(self.prefix, keys=(), values=())

    def _restore(self, scratch: Tensor | None) -> tuple[Tensor, SharedPrefix | None]:
        """The ablated senders and the full shared prefix, on the model's device."""
        assert self.kept is not None
        tensors = self.kept.get(scratch)
        prefix = self.prefix
        if prefix is not None and not prefix.keys:
            n = sum(name.startswith("key") for name in tensors)
            prefix = dataclasses.replace(
                prefix,
                keys=tuple(tensors[f"key{i}"] for i in range(n)),
                values=tuple(tensors[f"value{i}"] for i in range(n)),
            )
        return tensors["ablated"], prefix

    def run(
        self, removed: Tensor, mask: Tensor, k: int, scratch: Tensor | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-pair metric values and Hit@k hits of the circuit whose removed edges are ``removed``."""
        self.ablated, self.live_prefix = self._restore(scratch)
        self.valid = mask.to(self.ablated.dtype)
        removed_f = removed.to(self.ablated.dtype)
        final = self._forward(removed_f) if removed.ndim == 2 else self._forward_by_role(removed_f)
        self.ablated = self.valid = self.live_prefix = None  # type: ignore[assignment]
        values = self.fn(final).detach().double().cpu().numpy()
        top = final.topk(k, dim=-1).indices
        hits = (top == self.answer[:, None]).any(-1).double().cpu().numpy()
        return values, hits

    def _forward(self, removed: Tensor) -> Tensor:
        shape = self.shape
        # diff[u] = a_u(ablated) - a_u(current), filled by the sender hooks as the forward goes
        diff = torch.empty_like(self.ablated)
        flat = diff.view(shape.n_senders, -1)
        batch, pos, d = diff.shape[1:]
        active = removed.any(0).tolist()
        kept = self.valid - removed
        prefix_sum = prefix_sums(flat)

        def combine(count: int, cols: slice) -> Tensor:
            """Σ_u removed[u, v] diff[u] for the receivers ``cols``: [batch, pos, n, d].

            Every sender below ``count`` reaches every receiver in ``cols``, so
            the sum over removed edges is also the sum over all senders minus
            the kept ones; the cheaper side (fewer senders involved) is used.
            """
            rem, keep = removed[:count, cols], kept[:count, cols]
            rem_rows = rem.any(1).nonzero()[:, 0]
            keep_rows = keep.any(1).nonzero()[:, 0]
            if len(keep_rows) < len(rem_rows):
                total = prefix_sum(count)
                out = total - keep[keep_rows].T @ flat[keep_rows]
            else:
                out = rem[rem_rows].T @ flat[rem_rows]
            return out.view(-1, batch, pos, d).permute(1, 2, 0, 3)

        return self._patched(diff, combine, active)

    def _forward_by_role(self, removed: Tensor) -> Tensor:
        """:meth:`_forward` for ``[n_roles, S, R]`` removed units: each position gets its role's removals."""
        shape = self.shape
        diff = torch.empty_like(self.ablated)
        n_senders, batch, pos, d = diff.shape
        rows_view = diff.view(n_senders, batch * pos, d)
        role = self.batch.role.to(diff.device).reshape(-1)  # type: ignore[union-attr]
        slots = [(role == r).nonzero()[:, 0] for r in range(N_ROLES)]
        kept = self.valid[None] - removed
        active = removed.any(0).any(0).tolist()
        prefix_sum = prefix_sums(diff.view(n_senders, -1))

        def combine(count: int, cols: slice) -> Tensor:
            """Σ_u removed[role(p), u, v] diff[u, p] for the receivers ``cols``: [batch, pos, n, d]."""
            n_cols = len(range(*cols.indices(shape.n_receivers)))
            out = torch.zeros(n_cols, batch * pos, d, dtype=diff.dtype, device=diff.device)
            for r, idx in enumerate(slots):
                rem, keep = removed[r, :count, cols], kept[r, :count, cols]
                rem_rows = rem.any(1).nonzero()[:, 0]
                if not len(rem_rows) or not len(idx):
                    continue
                keep_rows = keep.any(1).nonzero()[:, 0]
                if len(keep_rows) < len(rem_rows):
                    total = prefix_sum(count).view(batch * pos, d)[idx].reshape(1, -1)
                    value = total - keep[keep_rows].T @ rows_view[keep_rows][:, idx].flatten(1)
                else:
                    value = rem[rem_rows].T @ rows_view[rem_rows][:, idx].flatten(1)
                out[:, idx] = value.view(n_cols, len(idx), d)
            return out.view(n_cols, batch, pos, d).permute(1, 2, 0, 3)

        return self._patched(diff, combine, active)

    def _patched(self, diff: Tensor, combine: Any, active: list[bool]) -> Tensor:
        """The patched forward: receiver ``v`` of a layer gets ``combine(senders it reads, its columns)``.

        ``diff`` is filled with ``a_u(ablated) − a_u(current)`` as the forward
        goes; ``active`` says which receiver columns have a removed input.
        """
        shape = self.shape
        H, KV = shape.n_heads, shape.n_kv_heads
        cache: dict[int, Tensor] = {}

        def delta(layer: int, kind: str) -> Tensor | None:
            if kind == "logits":
                col = shape.logits_receiver
                return combine(shape.n_senders, slice(col, col + 1))[:, :, 0] if active[col] else None
            if kind == "mlp":
                col = shape.mlp_receiver(layer)
                if not active[col]:
                    return None
                reads = shape.senders_before(layer) + (0 if shape.parallel else H)
                return combine(reads, slice(col, col + 1))[:, :, 0]
            cols = shape.attn_receivers(layer)
            if not any(active[cols]):
                return None
            if layer not in cache:
                cache[layer] = combine(shape.senders_before(layer), cols)
            block = cache[layer]
            if kind == "q":
                return block[:, :, :H]
            if kind == "k":
                return block[:, :, H : H + KV]
            return block[:, :, H + KV :]

        with self.harness.sharing(self.live_prefix):
            return self.harness.patched(self.tokens, delta, self.last, capture=diff, base=self.ablated)


def prefix_sums(flat: Tensor) -> Any:
    """A function ``count -> Σ_{u < count} flat[u]``, extended as the forward reaches later senders.

    ``flat`` ([S, ...]) is filled sender by sender during the forward, and
    every call asks for at least as many senders as the one before.
    """
    state: dict[str, Any] = {"count": 0, "sum": torch.zeros_like(flat[0])}

    def prefix_sum(count: int) -> Tensor:
        if count > state["count"]:
            state["sum"] = state["sum"] + flat[state["count"] : count].sum(0)
            state["count"] = count
        return state["sum"]

    return prefix_sum
