"""The circuit forward: one patched forward per circuit, its metric per pair and Hit@k.

A circuit is a boolean ``[senders, receivers]`` mask of kept edges. Its forward
gives every receiver ``v`` the input

    in_v + Σ_{u→v not kept} (a_u(ablated) − a_u(current)),

where ``a_u(current)`` is the sender's output in this same patched forward, so
the effect of removed edges propagates through kept ones. Keeping every edge is
the clean run; keeping none is the ablated (corrupted) run. Each run keeps its
per-pair metric values and hits, from which :class:`Evaluator` bootstraps
means, faithfulness and Hit@k without another forward.

Each mini-batch's ablated senders and patched forward are a
:class:`~circuits.evaluate.chunks.Chunk`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.memory import auto_batch_size, available_bytes
from circuits.evaluate.chunks import Chunk
from circuits.graph import N_ROLES, GraphShape, edge_mask
from circuits.relations.pairs import PairBatch
from circuits.uncertainty import DEFAULT_BOOT, Interval, percentile_interval, resample_counts
from circuits.vocab import Ablation, InputError, Metric

__all__ = ["FRACTIONS", "CircuitRun", "Evaluator"]

CACHE_BYTES = 128 * 2**20
"""Ablated senders an :class:`Evaluator` keeps in memory between runs (the first mini-batch's always);
the rest wait in a temporary file."""

FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def _host_by_default(device: torch.device, cached: int) -> bool:
    """Keep buffers on the host when the GPU has less than four times their size free."""
    return device.type == "cuda" and cached * 4 > available_bytes(device)


def _empty() -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True)
class CircuitRun:
    """A circuit's metric (mean over pairs) and the answer's Hit@k.

    ``values`` and ``hits`` are the per-pair metric values and Hit@k hits
    (0 or 1) the means are taken over, kept for bootstrap intervals; they are
    left out of equality and of the repr.
    """

    n_edges: int
    metric: float
    faithfulness: float
    hit_at_k: float
    values: np.ndarray = field(default_factory=_empty, repr=False, compare=False)
    hits: np.ndarray = field(default_factory=_empty, repr=False, compare=False)


class Evaluator:
    """Evaluates circuits on one batch of pairs; the ablated senders are computed once.

    A circuit is a boolean ``[senders, receivers]`` mask of kept edges. In its
    forward pass every removed edge ``u -> v`` carries the ablated sender's
    value: receiver ``v`` reads ``in_v + Σ_{u→v removed} (a_u(ablated) − a_u(current))``,
    so the effect of removed edges propagates through kept ones. Keeping every
    edge is the clean run (:attr:`full`), keeping none the ablated run
    (:attr:`empty`). Normalized faithfulness is
    ``F(C) = (m(C) − m(∅)) / (m(full) − m(∅))``, with ``m`` the metric's mean
    over the pairs. :func:`circuits.heldout_evaluator` makes one on the
    held-out pairs of a scored graph.

    Parameters
    ----------
    harness : Harness
        The model's hook harness (``Harness(model)``).
    batch : PairBatch
        The pairs to evaluate on (:func:`~circuits.relations.batch_pairs`).
    metric : {"logit-diff", "logprob", "prob", "kl"}
        What is measured at each prompt's last position.
    ablation : {"counterfactual", "mean", "zero"}
        What a removed edge carries: the sender's value on the counterfactual
        prompt, its mean (``means``, required), or zero.
    means : torch.Tensor, optional
        Per-sender means for mean ablation
        (:func:`circuits.attribution.mean_senders`).
    k : int
        Hit@k of :meth:`run_mask`: share of pairs whose answer is among the
        circuit's top ``k`` next tokens.
    shared_prefix : bool
        Run the positions both prompts of a pair share once, and every
        circuit's forward on the rest only
        (:mod:`circuits.attribution.prefix`; counterfactual ablation only,
        where it changes no result).
    batch_size : int, optional
        Pairs per forward (memory, not results): by default as many as fit
        half the free memory by the formulas of :mod:`circuits.sizing`, at
        most 16. Every circuit runs over these mini-batches in turn.
    cache_bytes : int, optional
        How many bytes of ablated senders stay in memory between runs
        (default :data:`CACHE_BYTES`); the first mini-batch's always do, the
        other mini-batches' beyond the budget wait in a temporary file. So
        memory does not grow with the number of pairs.
    host_buffers : bool, optional
        On a GPU, keep the ablated senders in host memory and move each
        mini-batch's to the GPU for its run; by default only when the GPU has
        less than four times their size free.

    Attributes
    ----------
    full, empty : CircuitRun
        The runs of every edge and of no edge (their ``faithfulness`` is nan);
        their per-pair ``values`` normalize every bootstrap resample.
    shape : GraphShape
        The model's computation graph.
    batch : PairBatch
        The pairs, as given.
    chunks : list
        The mini-batches, each with its pairs as run (after their shared
        prefix when one is cached) and its ablated senders.
    prefix : SharedPrefix or None
        The first mini-batch's cached shared prefix.
    cached_bytes : int
        The ablated senders kept in memory.

    Examples
    --------
    >>> import numpy as np
    >>> from circuits import ScoreSettings, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> evaluator = heldout_evaluator(model, graph, pairs)
    >>> run = evaluator.run_mask(graph.top_mask(20, by="signed"))
    >>> run.n_edges, 0.0 <= run.hit_at_k <= 1.0
    (20, True)
    >>> round(evaluator.run_mask(graph.mask).faithfulness, 6)
    1.0
    >>> evaluator.run_mask(np.zeros_like(graph.mask)).metric == evaluator.empty.metric
    True

    A 95% bootstrap interval over the pairs, from the run's kept per-pair values:

    >>> iv = evaluator.faithfulness_interval(run, n_boot=50, seed=0)
    >>> iv.value == run.faithfulness, iv.low <= iv.high
    (True, True)
    >>> str(evaluator.faithfulness_interval(evaluator.full, n_boot=50))
    '1.00 [1.00, 1.00]'
    """

    def __init__(
        self,
        harness: Harness,
        batch: PairBatch,
        *,
        metric: Metric | str = Metric.LOGIT_DIFF,
        ablation: Ablation | str = Ablation.COUNTERFACTUAL,
        means: Tensor | None = None,
        k: int = 10,
        shared_prefix: bool = True,
        batch_size: int | None = None,
        cache_bytes: int | None = None,
        host_buffers: bool | None = None,
    ) -> None:
        self.harness = harness
        self.shape: GraphShape = harness.shape
        self.batch = batch
        self.k = k
        device = harness.model.device
        size = batch_size or auto_batch_size(
            harness, batch, "evaluation", ablation=ablation, shared_prefix=shared_prefix
        )
        if size < 1:
            raise InputError(f"batch_size must be at least 1, not {size}")
        budget = CACHE_BYTES if cache_bytes is None else cache_bytes
        self.chunks: list[Chunk] = []
        cached = 0
        for start in range(0, len(batch), size):
            chunk = Chunk(
                harness,
                batch.rows(start, min(len(batch), start + size)),
                metric,
                ablation,
                means,
                shared_prefix,
            )
            # the first mini-batch keeps its ablated senders in memory, later ones while the budget lasts,
            # the rest in a temporary file (read back at each run: faster than computing them again)
            if not self.chunks or cached + chunk.buffer_bytes <= budget:
                cached += chunk.buffer_bytes
                host = host_buffers if host_buffers is not None else _host_by_default(device, cached)
                chunk.keep("host" if host else "device")
            else:
                chunk.keep("disk")
            self.chunks.append(chunk)
        self.prefix = self.chunks[0].prefix
        self.cached_bytes = cached
        spilled = [c.kept.nbytes for c in self.chunks if c.kept is not None and c.kept.place == "disk"]
        # one buffer the spilled mini-batches are read into in turn, allocated once
        self._scratch = torch.empty(max(spilled), dtype=torch.uint8) if spilled else None
        self.mask = torch.from_numpy(edge_mask(self.shape)).to(device)
        self.full = self.run_mask(self.mask, raw=True)
        self.empty = self.run_mask(torch.zeros_like(self.mask), raw=True)

    @torch.no_grad()
    def run_mask(self, keep: Tensor | np.ndarray, *, raw: bool = False) -> CircuitRun:
        """Evaluate the circuit of kept edges ``keep`` ([S, R] booleans).

        A position-aware circuit is a ``[n_roles, S, R]`` mask of kept
        (edge, role) units: an edge is removed only at the positions of the
        roles where it is not kept (the batch must carry position roles).
        Returns a :class:`CircuitRun`: the number of kept edges (or units), the
        metric's mean over the pairs, the normalized faithfulness (nan with
        ``raw``), Hit@k, and the per-pair metric values and hits.
        """
        keep_t = torch.as_tensor(np.asarray(keep) if isinstance(keep, np.ndarray) else keep)
        keep_t = keep_t.to(self.mask.device).bool()
        shapes = (tuple(self.mask.shape), (N_ROLES, *self.mask.shape))
        if tuple(keep_t.shape) not in shapes:
            raise InputError(
                f"a circuit mask has shape {shapes[0]} (edges) or {shapes[1]} "
                f"((edge, role) units), not {tuple(keep_t.shape)}"
            )
        if keep_t.ndim == 3 and self.batch.role is None:
            raise InputError(
                "a position-aware circuit needs pairs with position roles (batch_pairs makes them)"
            )
        removed = self.mask & ~keep_t
        parts = [chunk.run(removed, self.mask, self.k, self._scratch) for chunk in self.chunks]
        values = np.concatenate([v for v, _ in parts])
        hits = np.concatenate([h for _, h in parts])
        value, hit = float(values.mean()), float(hits.mean())
        n_edges = int((keep_t & self.mask).sum())
        faith = float("nan") if raw else self.normalize(value)
        return CircuitRun(n_edges, value, faith, hit, values, hits)

    def normalize(self, value: float) -> float:
        """Normalized faithfulness of a metric mean: ``(value − m(∅)) / (m(full) − m(∅))``."""
        gap = self.full.metric - self.empty.metric
        return (value - self.empty.metric) / gap if gap != 0 else float("nan")

    # ------------------------------------------------------------- bootstrap
    def resample_weights(self, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> np.ndarray:
        """``[n_boot, n_pairs]`` resampling weights (counts / n): ``weights @ values`` are resampled means.

        The counts are :func:`circuits.uncertainty.resample_counts` of the
        evaluator's pairs, so the same ``(n_boot, seed)`` always gives the
        same resamples.
        """
        n = len(self.full.values)
        return resample_counts(n, n_boot=n_boot, seed=seed) / n

    def boot_metric(self, runs: Sequence[CircuitRun], weights: np.ndarray) -> np.ndarray:
        """``[n_boot, len(runs)]`` resampled metric means of ``runs``."""
        return weights @ self._stack(runs, "values").T

    def boot_faithfulness(self, runs: Sequence[CircuitRun], weights: np.ndarray) -> np.ndarray:
        """``[n_boot, len(runs)]`` normalized faithfulness of ``runs`` in each resample.

        ``F_b = (m_b(C) − m_b(∅)) / (m_b(full) − m_b(∅))``, the three means
        taken over the same resample ``b``; nan where that resample's gap is 0.
        """
        means = self.boot_metric(runs, weights)
        full = weights @ self.full.values
        empty = weights @ self.empty.values
        gap = (full - empty)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(gap != 0, (means - empty[:, None]) / gap, np.nan)

    def boot_hits(self, runs: Sequence[CircuitRun], weights: np.ndarray) -> np.ndarray:
        """``[n_boot, len(runs)]`` resampled Hit@k of ``runs``."""
        return weights @ self._stack(runs, "hits").T

    def faithfulness_interval(
        self, run: CircuitRun, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
    ) -> Interval:
        """The normalized faithfulness of ``run`` with its 95% percentile-bootstrap interval over the pairs.

        With ``n_boot=0`` the bounds are nan (no interval).
        """
        value = self.normalize(run.metric)
        if n_boot == 0:
            return Interval(value, float("nan"), float("nan"))
        boot = self.boot_faithfulness([run], self.resample_weights(n_boot, seed))
        return percentile_interval(value, boot[:, 0])

    def _stack(self, runs: Sequence[CircuitRun], name: str) -> np.ndarray:
        n = len(self.full.values)
        rows = [getattr(run, name) for run in runs]
        if any(len(row) != n for row in rows):
            raise InputError(f"a bootstrap needs the per-pair {name} of runs of this evaluator ({n} pairs)")
        return np.stack(rows) if rows else np.zeros((0, n))
