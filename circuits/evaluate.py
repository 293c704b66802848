"""Circuit evaluation: one forward per circuit, faithfulness curves, CPR, CMD, Hit@k.

A circuit is a boolean ``[senders, receivers]`` mask of kept edges. Its forward
gives every receiver ``v`` the input

    in_v + Σ_{u→v not kept} (a_u(ablated) − a_u(current)),

where ``a_u(current)`` is the sender's output in this same patched forward, so
the effect of removed edges propagates through kept ones. Keeping every edge is
the clean run; keeping none is the ablated (corrupted) run.

Normalized faithfulness ``F(C) = (m(C) − m(∅)) / (m(M) − m(∅))``. The MIB
metrics over edge fractions ``k``: CPR is the area under ``F(k)`` for circuits
chosen by signed score (most negative first, see :mod:`circuits.graph`); CMD is
the area under ``|1 − F(k)|`` for circuits chosen by ``|score|``; both by
trapezoids on the fraction axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.metrics import MetricFn
from circuits.attribution.scoring import ablated_senders, clean_metric
from circuits.graph import GraphShape, ScoredGraph, edge_mask
from circuits.relations.pairs import PairBatch
from circuits.vocab import Ablation, InputError, Metric

__all__ = [
    "FRACTIONS",
    "CircuitRun",
    "Evaluation",
    "Evaluator",
    "area",
    "evaluate_graph",
]

FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class CircuitRun:
    """A circuit's metric (mean over pairs) and the answer's Hit@k."""

    n_edges: int
    metric: float
    faithfulness: float
    hit_at_k: float


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

    Attributes
    ----------
    full, empty : CircuitRun
        The runs of every edge and of no edge (their ``faithfulness`` is nan).
    shape : GraphShape
        The model's computation graph.

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
    ) -> None:
        self.harness = harness
        self.shape: GraphShape = harness.shape
        device = harness.model.device
        self.batch = batch
        self.tokens = batch.clean.to(device)
        self.last = batch.last.to(device)
        self.answer = batch.answer.to(device)
        self.k = k
        self.fn: MetricFn
        self.fn, _ = clean_metric(harness, batch, metric)
        self.ablated = ablated_senders(harness, batch, Ablation(ablation), means)
        self.mask = torch.from_numpy(edge_mask(self.shape)).to(device)
        self.valid = self.mask.to(self.ablated.dtype)
        self.full = self.run_mask(self.mask, raw=True)
        self.empty = self.run_mask(torch.zeros_like(self.mask), raw=True)

    @torch.no_grad()
    def run_mask(self, keep: Tensor | np.ndarray, *, raw: bool = False) -> CircuitRun:
        """Evaluate the circuit of kept edges ``keep`` ([S, R] booleans).

        Returns a :class:`CircuitRun`: the number of kept edges, the metric's
        mean over the pairs, the normalized faithfulness (nan with ``raw``)
        and Hit@k.
        """
        keep_t = torch.as_tensor(np.asarray(keep) if isinstance(keep, np.ndarray) else keep)
        keep_t = keep_t.to(self.mask.device).bool()
        if tuple(keep_t.shape) != tuple(self.mask.shape):
            raise InputError(f"a circuit mask has shape {tuple(self.mask.shape)}, not {tuple(keep_t.shape)}")
        removed = (self.mask & ~keep_t).to(self.ablated.dtype)
        final = self._forward(removed)
        value = float(self.fn(final).mean())
        top = final.topk(self.k, dim=-1).indices
        hit = float((top == self.answer[:, None]).any(-1).float().mean())
        n_edges = int((keep_t & self.mask).sum())
        if raw:
            return CircuitRun(n_edges, value, float("nan"), hit)
        return CircuitRun(n_edges, value, self.normalize(value), hit)

    def normalize(self, value: float) -> float:
        gap = self.full.metric - self.empty.metric
        return (value - self.empty.metric) / gap if gap != 0 else float("nan")

    def _forward(self, removed: Tensor) -> Tensor:
        shape = self.shape
        # diff[u] = a_u(ablated) - a_u(current), filled by the sender hooks as the forward goes
        diff = torch.empty_like(self.ablated)
        flat = diff.view(shape.n_senders, -1)
        batch, pos, d = diff.shape[1:]
        H, KV = shape.n_heads, shape.n_kv_heads
        cache: dict[int, Tensor] = {}
        active = removed.any(0).tolist()
        kept = self.valid - removed
        prefix: dict[str, Any] = {"count": 0, "sum": torch.zeros_like(flat[0])}

        def prefix_sum(count: int) -> Tensor:
            """Σ_{u < count} diff[u], extended as the forward reaches later senders."""
            if count > prefix["count"]:
                prefix["sum"] = prefix["sum"] + flat[prefix["count"] : count].sum(0)
                prefix["count"] = count
            return prefix["sum"]

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

        return self.harness.patched(self.tokens, delta, self.last, capture=diff, base=self.ablated)


@dataclass
class Evaluation:
    """A scored graph's faithfulness on a set of pairs."""

    clean_metric: float
    corrupt_metric: float
    fractions: list[float]
    signed: list[float]
    absolute: list[float]
    random: list[float]
    hit_at_10: list[float]
    cpr: float
    cmd: float
    random_cpr: float
    n_pairs: int
    n_edges: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over the fraction axis."""
    return float(np.trapezoid(np.asarray(values, dtype=float), np.asarray(fractions, dtype=float)))


def evaluate_graph(
    evaluator: Evaluator,
    graph: ScoredGraph,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    progress: Any = None,
) -> Evaluation:
    """Faithfulness curves (signed, absolute, random), CPR, CMD and Hit@10 of ``graph``.

    At each edge fraction ``k`` the top ``max(1, round(k * n_edges))`` edges
    are evaluated three ways: chosen by signed score (most negative first:
    the edges a logit-difference circuit relies on), by ``|score|``, and at
    random (seeded). CPR is the area under the signed curve, CMD the area under
    ``|1 − F|`` of the ``|score|`` curve, both by trapezoids on the fraction
    axis; a faithful graph has high CPR and low CMD.

    Parameters
    ----------
    evaluator : Evaluator
        Runs circuits on a set of pairs (:func:`circuits.heldout_evaluator`).
    graph : ScoredGraph
        The edge scores to rank by.
    fractions : sequence of float
        Edge fractions in ``(0, 1]``; default :data:`FRACTIONS`.
    seed : int
        Seed of the random circuits.
    progress : optional
        Anything with ``update(1)``, called once per fraction.

    Returns
    -------
    Evaluation
        ``clean_metric`` and ``corrupt_metric`` (every edge / none kept), the
        ``signed``, ``absolute`` and ``random`` faithfulness curves,
        ``hit_at_10`` (of the ``|score|`` circuits), ``cpr``, ``cmd``,
        ``random_cpr``, ``n_pairs`` and ``n_edges``.

    Examples
    --------
    >>> from circuits import ScoreSettings, evaluate_graph, heldout_evaluator, load_model, score_relation
    >>> model = load_model("tiny-llama")
    >>> settings = ScoreSettings(ig_steps=2, max_pairs=6, max_rank=10**9)
    >>> graph, pairs = score_relation(model, "country_capital_city", settings, progress=False)
    >>> result = evaluate_graph(heldout_evaluator(model, graph, pairs), graph, fractions=(0.1, 0.5, 1.0))
    >>> result.n_pairs, result.n_edges, len(result.signed), round(result.absolute[-1], 6)
    (2, 190, 3, 1.0)
    """
    total = graph.n_edges
    rng = np.random.default_rng(seed)
    real = np.nonzero(graph.mask.ravel())[0]
    signed, absolute, random_curve, hits = [], [], [], []
    for fraction in fractions:
        n = max(1, round(fraction * total))
        run_signed = evaluator.run_mask(graph.top_mask(n, by="signed"))
        run_abs = evaluator.run_mask(graph.top_mask(n, by="abs"))
        chosen = np.zeros(graph.mask.size, dtype=bool)
        chosen[rng.choice(real, size=n, replace=False)] = True
        run_random = evaluator.run_mask(chosen.reshape(graph.mask.shape))
        signed.append(run_signed.faithfulness)
        absolute.append(run_abs.faithfulness)
        random_curve.append(run_random.faithfulness)
        hits.append(run_abs.hit_at_k)
        if progress is not None:
            progress.update(1)
    cmd = area(fractions, [abs(1 - f) for f in absolute])
    return Evaluation(
        clean_metric=evaluator.full.metric, corrupt_metric=evaluator.empty.metric,
        fractions=list(fractions), signed=signed, absolute=absolute, random=random_curve,
        hit_at_10=hits, cpr=area(fractions, signed), cmd=cmd,
        random_cpr=area(fractions, random_curve), n_pairs=len(evaluator.batch), n_edges=total,
    )  # fmt: skip
