"""Checking predicted channels against data: ranking of patching edges, and a causal intervention.

Ranking (per relation): the edges considered are every writer -> later
``<q>``/``<k>``/``<v>`` edge of the patching graph (head writers only by
default). An edge is *important* when it is among the top ``top_fraction``
(default 1%) of those edges by ``|score|`` of the patching graph (EAP-IG by
default). Two predictors rank the same edges: the whole-matrix composition
z-score and the best single component's z-score. Reported are ROC AUC (the
Mann-Whitney statistic, ties counted half) and precision at ``k`` with ``k``
the number of important edges.

Causal check: during a forward pass on a relation's clean prompts, the
channel's subspace (the span of the writer's output singular vectors listed
in the channel) is removed from (or scaled in) the writer's output,
``o -> o - (1 - scale) o V^T V``, either for every later reader
(``scope="writer"``) or only in the channel's reader input (``scope="edge"``);
the change of the relation's metric (mean
logit difference between the clean and counterfactual answers) is compared
with removing random subspaces of the same rank drawn, seeded, inside the
span of the writer's kept output directions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from circuits.channels.composition import ChannelAnalysis
from circuits.channels.predict import Channel
from circuits.graph import ScoredGraph
from circuits.models.load import hf_module
from circuits.uncertainty import DEFAULT_BOOT, Interval, mean_interval
from circuits.vocab import InputError, hook_point

__all__ = [
    "CausalResult",
    "ValidationRow",
    "causal_check",
    "format_causal",
    "format_validation",
    "precision_at_k",
    "roc_auc",
    "validate_graph",
    "validate_relations",
]

log = logging.getLogger(__name__)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney, ties half).

    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError("ROC AUC needs at least one positive and one negative edge")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_k(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of positives among the ``k`` highest scores."""
    if k < 1:
        raise InputError(f"k must be at least 1, not {k}")
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.asarray(labels, bool)[order].mean())


@dataclass(frozen=True)
class ValidationRow:
    """How well predicted channels rank one relation's important patching edges."""

    relation: str
    n_edges: int
    n_important: int
    top_fraction: float
    auc_whole: float
    auc_component: float
    precision_whole: float
    precision_component: float
    score_method: str = ""
    n_pairs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _edge_arrays(analysis: ChannelAnalysis, graph: ScoredGraph, writers: str) -> tuple[np.ndarray, ...]:
    if graph.shape != analysis.shape:
        raise InputError(
            f"the scored graph's shape {graph.shape} differs from the analysed model's {analysis.shape}"
        )
    if writers not in ("heads", "all"):
        raise InputError(f"validate 'heads' or 'all' writers, not {writers!r}")
    comp_z = analysis.component_z
    best = np.max(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    valid = ~np.isnan(analysis.whole)
    if writers == "heads":
        valid &= ~analysis.writers.is_mlp[:, None]
    w, r = np.nonzero(valid)
    patch = graph.scores[analysis.writers.senders[w], analysis.readers.receivers[r]]
    return analysis.whole_z[w, r], best[w, r], np.abs(patch)


def validate_graph(
    analysis: ChannelAnalysis,
    graph: ScoredGraph,
    *,
    top_fraction: float = 0.01,
    writers: str = "heads",
) -> ValidationRow:
    """AUC and precision@k of whole-matrix and per-component predictions for ``graph``'s important edges."""
    if not 0.0 < top_fraction < 1.0:
        raise InputError(f"top_fraction must lie in (0, 1), not {top_fraction}")
    whole, comp, patch = _edge_arrays(analysis, graph, writers)
    k = max(1, round(top_fraction * len(patch)))
    labels = np.zeros(len(patch), bool)
    labels[np.argsort(-patch, kind="stable")[:k]] = True
    meta = graph.metadata
    return ValidationRow(
        relation=str(meta.get("relation", "")),
        n_edges=len(patch),
        n_important=k,
        top_fraction=top_fraction,
        auc_whole=roc_auc(whole, labels),
        auc_component=roc_auc(comp, labels),
        precision_whole=precision_at_k(whole, labels, k),
        precision_component=precision_at_k(comp, labels, k),
        score_method=str(meta.get("score_method", "")),
        n_pairs=int(meta.get("n_pairs_scoring", 0)),
    )


def validate_relations(
    model: Any,
    analysis: ChannelAnalysis,
    relations: list[str],
    *,
    settings: Any = None,
    top_fraction: float = 0.01,
    writers: str = "heads",
    progress: bool = False,
) -> list[tuple[ValidationRow, ScoredGraph, Any]]:
    """Score each relation by patching (:func:`circuits.attribution.score_relation`) and validate against it.

    Returns ``(row, scored graph, prompt pairs)`` per relation.
    """
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings

    settings = settings or ScoreSettings()
    out = []
    for relation in relations:
        started = time.perf_counter()
        graph, pairs = score_relation(model, relation, settings, progress=progress)
        row = validate_graph(analysis, graph, top_fraction=top_fraction, writers=writers)
        log.info("validated %s in %.1f s", relation, time.perf_counter() - started)
        out.append((row, graph, pairs))
    return out


def format_validation(rows: list[ValidationRow]) -> str:
    """A readable table of validation rows."""
    head = (
        f"{'relation':<26}{'edges':>7}{'import.':>8}{'AUC whole':>11}{'AUC comp':>10}"
        f"{'P@k whole':>11}{'P@k comp':>10}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.relation:<26}{r.n_edges:>7}{r.n_important:>8}{r.auc_whole:>11.3f}"
            f"{r.auc_component:>10.3f}{r.precision_whole:>11.3f}{r.precision_component:>10.3f}"
        )
    if rows:
        lines.append(
            f"(important = top {100 * rows[0].top_fraction:g}% of writer->q/k/v edges by "
            f"|{rows[0].score_method or 'patching'} score|; k = number of important edges)"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class CausalResult:
    """Change of the relation's metric when a channel's subspace is removed, against random subspaces."""

    writer: str
    reader: str
    kind: str
    rank: int
    scale: float
    clean: float
    channel_change: float
    random_changes: list[float] = field(default_factory=list)
    scope: str = "writer"
    channel_interval: Interval | None = None
    """The channel's change with its 95% bootstrap interval over the prompt pairs (paired: per pair, changed − clean)."""

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random_changes)) if self.random_changes else float("nan")

    @property
    def random_std(self) -> float:
        return float(np.std(self.random_changes)) if self.random_changes else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "random_mean": self.random_mean, "random_std": self.random_std}
        out["channel_interval"] = None if self.channel_interval is None else self.channel_interval.as_dict()
        return out


def _run_removing(
    model: Any,
    batch: Any,
    layer: int,
    head: int | None,
    basis: Tensor,
    scale: float,
    reader: str | None = None,
) -> np.ndarray:
    """Per-pair metric of a forward in which the writer's output loses ``(1 - scale)`` of its part in ``basis``.

    With ``reader`` (a receiver name) only that receiver's input loses it: the
    reader head's query, key or value is recomputed from its norm applied to
    the changed residual stream (exactly as an edge patch); otherwise the
    writer's output changes for every later reader.
    """
    from circuits.attribution.harness import Harness
    from circuits.attribution.metrics import make_metric
    from circuits.vocab import parse_node

    bridge = model.bridge
    harness = Harness(model) if head is not None else None
    basis = basis.to(model.device, next(bridge.parameters()).dtype)
    store: dict[str, Tensor] = {}

    def removed(out: Tensor) -> Tensor:
        return (1.0 - scale) * (out @ basis.T) @ basis

    def keep_z(z: Tensor, hook: Any) -> Tensor:
        assert harness is not None
        store["out"] = harness.head_writes(layer, z.detach())[:, :, head]  # what it adds to the residual
        return z

    def on_mlp(out: Tensor, hook: Any) -> Tensor:
        store["out"] = out
        return out if reader is not None else out - removed(out)

    def on_attn(out: Tensor, hook: Any) -> Tensor:
        return out - removed(store["out"])

    hooks: list[tuple[str, Any]] = [(hook_point("mlp_out", layer), on_mlp)]
    if head is not None:
        hooks = [(hook_point("z", layer), keep_z)]
        if reader is None:
            hooks.append((hook_point("attn_out", layer), on_attn))
    if reader is not None:
        _, r_layer, r_head, kind = parse_node(reader)
        assert kind is not None, f"reader {reader!r} is not a head input"
        block = bridge.blocks[r_layer]
        norm = hf_module(block.ln1)
        W = getattr(block.attn, f"W_{kind.upper()}")[r_head].detach()
        b = getattr(block.attn, f"b_{kind.upper()}", None)

        def keep_x(x: Tensor, hook: Any) -> Tensor:
            store["x"] = x
            return x

        def on_proj(proj: Tensor, hook: Any) -> Tensor:
            proj = proj.clone()
            proj[:, :, r_head] = norm(store["x"] - removed(store["out"])) @ W
            if b is not None:
                proj[:, :, r_head] += b[r_head].detach()
            return proj

        hooks += [(hook_point("attn_in", r_layer), keep_x), (hook_point(kind, r_layer), on_proj)]
    metric = make_metric("logit-diff", batch.answer, batch.corrupt_answer)
    with torch.no_grad(), bridge.hooks(fwd_hooks=hooks):
        logits = bridge(batch.clean)
    rows = torch.arange(len(batch), device=logits.device)
    return metric(logits[rows, batch.last]).double().cpu().numpy()


def causal_check(
    model: Any,
    analysis: ChannelAnalysis,
    channel: Channel,
    batch: Any,
    *,
    scale: float = 0.0,
    scope: str = "writer",
    n_random: int = 8,
    seed: int = 0,
    n_boot: int = DEFAULT_BOOT,
) -> CausalResult:
    """Remove (``scale=0``) or scale ``channel``'s subspace in its writer's output and measure the metric.

    Parameters
    ----------
    batch : PairBatch
        The relation's prompt pairs; the metric is the mean logit difference
        between each clean answer and its counterfactual answer on the clean prompts.
    scale : float
        What is left of the subspace: 0 removes it, 1 changes nothing.
    scope : {"writer", "edge"}
        ``"writer"``: the writer's output loses the subspace for every later
        reader; ``"edge"``: only the channel's reader input loses it (a
        path-specific intervention).
    n_random, seed
        Random subspaces of the same rank, drawn inside the span of the
        writer's kept output directions.
    n_boot : int
        Bootstrap resamples of the pairs for the channel's change (0: none).
    """
    from circuits.vocab import parse_node

    if scope not in ("writer", "edge"):
        raise InputError(f"scope must be 'writer' or 'edge', not {scope!r}")
    w = analysis.writers.names.index(channel.writer)
    _, layer, head, _ = parse_node(channel.writer)
    assert layer is not None
    dirs = analysis.writers.directions[w].double()
    basis = dirs[list(channel.components)]
    span = dirs[analysis.writers.sigma[w] > 0]
    reader = channel.reader if scope == "edge" else None
    batch = batch.to(model.device)
    clean = _run_removing(model, batch, layer, head, torch.zeros(0, dirs.shape[1]), 1.0)
    per_pair = _run_removing(model, batch, layer, head, basis, scale, reader) - clean
    interval = mean_interval(per_pair, n_boot=n_boot, seed=seed) if n_boot else None
    gen = torch.Generator().manual_seed(seed)
    randoms = []
    for _ in range(n_random):
        draw = torch.randn(span.shape[0], basis.shape[0], generator=gen, dtype=torch.float64)
        mix = torch.linalg.qr(draw)[0]
        randoms.append(
            float((_run_removing(model, batch, layer, head, mix.T @ span, scale, reader) - clean).mean())
        )
    return CausalResult(
        channel.writer,
        channel.reader,
        channel.kind,
        basis.shape[0],
        scale,
        float(clean.mean()),
        float(per_pair.mean()),
        randoms,
        scope,
        interval,
    )


def format_causal(results: list[CausalResult]) -> str:
    """A readable table of causal checks (the channel's change with its 95% bootstrap interval)."""
    lines = [
        f"{'writer':<9}{'reader':<12}{'scope':<8}{'rank':>5}{'clean':>9}{'channel [95% interval]':>26}"
        f"{'random mean':>13}{'sd':>8}"
    ]
    for r in results:
        change = r.channel_interval.format(3) if r.channel_interval is not None else f"{r.channel_change:.3f}"
        lines.append(
            f"{r.writer:<9}{r.reader:<12}{r.scope:<8}{r.rank:>5}{r.clean:>9.3f}"
            f"{change:>26}{r.random_mean:>13.3f}{r.random_std:>8.3f}"
        )
    return "\n".join(lines)
