"""Checking predicted channels against data: ranking of patching edges, and a causal intervention.

Ranking (per relation): the edges considered are every sender -> later
``<q>``/``<k>``/``<v>`` edge of the patching graph (head senders only by
default). An edge is *important* when it is among the top ``top_fraction``
(default 1%) of those edges by ``|score|`` of the patching graph (EAP-IG by
default). Two predictors rank the same edges: the whole-matrix composition
z-score and the best single component's z-score. Reported are ROC AUC (the
Mann-Whitney statistic, ties counted half) and precision at ``k`` with ``k``
the number of important edges.

Causal check: during a forward pass on a relation's clean prompts, the
channel's subspace (the span of the sender's output singular vectors listed
in the channel) is removed from (or scaled in) the sender's output,
``o -> o - (1 - scale) o V^T V``, either for every later receiver
(``scope="sender"``; ``"writer"``, its old name, works for one version) or
only in the channel's receiver input (``scope="edge"``); the change of the relation's metric (mean
logit difference between the clean and counterfactual answers) is compared
with removing random subspaces of the same rank drawn, seeded, inside the
span of the sender's kept output directions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from circuits.channels.composition import ChannelAnalysis
from circuits.channels.predict import OLD_KEYS, Channel
from circuits.deprecation import old_attributes, renamed, renamed_keys, renamed_keyword
from circuits.graph import ScoredGraph
from circuits.models.load import hf_module
from circuits.records.base import interval as stored_interval
from circuits.uncertainty import DEFAULT_BOOT, Interval, mean_interval
from circuits.vocab import InputError, hook_point

if TYPE_CHECKING:
    from circuits.attribution.settings import ScoreSettings
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairBatch, PairSet

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

    def to_dict(self) -> dict[str, Any]:
        """The stored form (``channels.json``, the job's stage records)."""
        return asdict(self)

    as_dict = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationRow:
        """A row from :meth:`to_dict`'s form (fields it lacks keep their defaults)."""
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = [n for n, f in known.items() if n not in values and f.default is MISSING]
        if missing:
            raise InputError(f"a stored validation row lacks {', '.join(missing)}")
        return cls(**values)


def _edge_arrays(analysis: ChannelAnalysis, graph: ScoredGraph, senders: str) -> tuple[np.ndarray, ...]:
    if graph.shape != analysis.shape:
        raise InputError(
            f"the scored graph's shape {graph.shape} differs from the analysed model's {analysis.shape}"
        )
    if senders not in ("heads", "all"):
        raise InputError(f"validate 'heads' or 'all' senders, not {senders!r}")
    comp_z = analysis.component_z
    best = np.max(np.where(np.isnan(comp_z), -np.inf, comp_z), axis=-1)
    valid = ~np.isnan(analysis.whole)
    if senders == "heads":
        valid &= ~analysis.senders.is_mlp[:, None]
    w, r = np.nonzero(valid)
    patch = graph.scores[analysis.senders.index[w], analysis.receivers.index[r]]
    return analysis.whole_z[w, r], best[w, r], np.abs(patch)


def validate_graph(
    analysis: ChannelAnalysis,
    graph: ScoredGraph,
    *,
    top_fraction: float = 0.01,
    senders: str = "heads",
    writers: str | None = None,
) -> ValidationRow:
    """AUC and precision@k of whole-matrix and per-component predictions for ``graph``'s important edges.

    ``senders`` (``"heads"`` or ``"all"``; ``writers=`` is its old name) says
    which senders' edges are ranked.
    """
    senders = renamed_keyword("writers", writers, "senders", senders, "heads")
    if not 0.0 < top_fraction < 1.0:
        raise InputError(f"top_fraction must lie in (0, 1), not {top_fraction}")
    whole, comp, patch = _edge_arrays(analysis, graph, senders)
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
    model: LoadedModel,
    analysis: ChannelAnalysis,
    relations: list[str],
    *,
    settings: ScoreSettings | None = None,
    top_fraction: float = 0.01,
    senders: str = "heads",
    progress: bool = False,
    writers: str | None = None,
) -> list[tuple[ValidationRow, ScoredGraph, PairSet]]:
    """Score each relation by patching (:func:`circuits.attribution.score_relation`) and validate against it.

    Returns ``(row, scored graph, prompt pairs)`` per relation. ``writers=``
    is the old name of ``senders``.
    """
    from circuits.attribution.score import score_relation
    from circuits.attribution.settings import ScoreSettings

    senders = renamed_keyword("writers", writers, "senders", senders, "heads")
    settings = settings or ScoreSettings()
    out = []
    for relation in relations:
        started = time.perf_counter()
        graph, pairs = score_relation(model, relation, settings, progress=progress)
        row = validate_graph(analysis, graph, top_fraction=top_fraction, senders=senders)
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
            f"(important = top {100 * rows[0].top_fraction:g}% of sender->q/k/v edges by "
            f"|{rows[0].score_method or 'patching'} score|; k = number of important edges)"
        )
    return "\n".join(lines)


SCOPES = ("sender", "edge")
OLD_SCOPES = {"writer": "sender"}


@old_attributes(OLD_KEYS)
@dataclass(frozen=True)
class CausalResult:
    """Change of the relation's metric when a channel's subspace is removed, against random subspaces."""

    sender: str
    receiver: str
    kind: str
    rank: int
    scale: float
    clean: float
    channel_change: float
    random_changes: list[float] = field(default_factory=list)
    scope: str = "sender"
    channel_interval: Interval | None = None
    """The channel's change, 95% bootstrap interval over the pairs (paired: per pair, changed − clean)."""

    @property
    def random_mean(self) -> float:
        return float(np.mean(self.random_changes)) if self.random_changes else float("nan")

    @property
    def random_std(self) -> float:
        return float(np.std(self.random_changes)) if self.random_changes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The stored form, with the random subspaces' mean and standard deviation."""
        out = {**asdict(self), "random_mean": self.random_mean, "random_std": self.random_std}
        out["channel_interval"] = None if self.channel_interval is None else self.channel_interval.as_dict()
        return out

    as_dict = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CausalResult:
        """A result from :meth:`to_dict`'s form, or as 0.4 stored it (``writer``, ``reader``)."""
        data = renamed_keys(data, OLD_KEYS)
        iv = data.get("channel_interval")
        return cls(
            sender=str(data["sender"]),
            receiver=str(data["receiver"]),
            kind=str(data["kind"]),
            rank=int(data["rank"]),
            scale=float(data["scale"]),
            clean=float(data["clean"]),
            channel_change=float(data["channel_change"]),
            random_changes=[float(x) for x in data.get("random_changes") or []],
            scope=OLD_SCOPES.get(str(data.get("scope", "sender")), str(data.get("scope", "sender"))),
            channel_interval=None if iv is None else stored_interval(iv),
        )


def _run_removing(
    model: LoadedModel,
    batch: PairBatch,
    layer: int,
    head: int | None,
    basis: Tensor,
    scale: float,
    receiver: str | None = None,
) -> np.ndarray:
    """Per-pair metric of a forward in which the sender's output loses ``(1 - scale)`` of its ``basis`` part.

    With ``receiver`` (a receiver name) only that receiver's input loses it:
    the receiving head's query, key or value is recomputed from its norm
    applied to the changed residual stream (exactly as an edge patch);
    otherwise the sender's output changes for every later receiver.
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
        return out if receiver is not None else out - removed(out)

    def on_attn(out: Tensor, hook: Any) -> Tensor:
        return out - removed(store["out"])

    hooks: list[tuple[str, Any]] = [(hook_point("mlp_out", layer), on_mlp)]
    if head is not None:
        hooks = [(hook_point("z", layer), keep_z)]
        if receiver is None:
            hooks.append((hook_point("attn_out", layer), on_attn))
    if receiver is not None:
        _, r_layer, r_head, kind = parse_node(receiver)
        assert kind is not None, f"receiver {receiver!r} is not a head input"
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
    model: LoadedModel,
    analysis: ChannelAnalysis,
    channel: Channel,
    batch: PairBatch,
    *,
    scale: float = 0.0,
    scope: str = "sender",
    n_random: int = 8,
    seed: int = 0,
    n_boot: int = DEFAULT_BOOT,
) -> CausalResult:
    """Remove (``scale=0``) or scale ``channel``'s subspace in its sender's output and measure the metric.

    Parameters
    ----------
    batch : PairBatch
        The relation's prompt pairs; the metric is the mean logit difference
        between each clean answer and its counterfactual answer on the clean prompts.
    scale : float
        What is left of the subspace: 0 removes it, 1 changes nothing.
    scope : {"sender", "edge"}
        ``"sender"``: the sender's output loses the subspace for every later
        receiver (``"writer"``, its old name, still works for one version);
        ``"edge"``: only the channel's receiver input loses it (a
        path-specific intervention).
    n_random, seed
        Random subspaces of the same rank, drawn inside the span of the
        sender's kept output directions.
    n_boot : int
        Bootstrap resamples of the pairs for the channel's change (0: none).
    """
    from circuits.vocab import parse_node

    if scope in OLD_SCOPES:
        renamed(f"scope={scope!r}", f"scope={OLD_SCOPES[scope]!r}", what="value", stacklevel=3)
        scope = OLD_SCOPES[scope]
    if scope not in SCOPES:
        raise InputError(f"scope must be 'sender' or 'edge', not {scope!r}")
    w = analysis.senders.names.index(channel.sender)
    _, layer, head, _ = parse_node(channel.sender)
    assert layer is not None
    dirs = analysis.senders.directions[w].double()
    basis = dirs[list(channel.components)]
    span = dirs[analysis.senders.sigma[w] > 0]
    receiver = channel.receiver if scope == "edge" else None
    batch = batch.to(model.device)
    clean = _run_removing(model, batch, layer, head, torch.zeros(0, dirs.shape[1]), 1.0)
    per_pair = _run_removing(model, batch, layer, head, basis, scale, receiver) - clean
    interval = mean_interval(per_pair, n_boot=n_boot, seed=seed) if n_boot else None
    gen = torch.Generator().manual_seed(seed)
    randoms = []
    for _ in range(n_random):
        draw = torch.randn(span.shape[0], basis.shape[0], generator=gen, dtype=torch.float64)
        mix = torch.linalg.qr(draw)[0]
        randoms.append(
            float((_run_removing(model, batch, layer, head, mix.T @ span, scale, receiver) - clean).mean())
        )
    return CausalResult(
        channel.sender,
        channel.receiver,
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
        f"{'sender':<9}{'receiver':<12}{'scope':<8}{'rank':>5}{'clean':>9}{'channel [95% interval]':>26}"
        f"{'random mean':>13}{'sd':>8}"
    ]
    for r in results:
        change = r.channel_interval.format(3) if r.channel_interval is not None else f"{r.channel_change:.3f}"
        lines.append(
            f"{r.sender:<9}{r.receiver:<12}{r.scope:<8}{r.rank:>5}{r.clean:>9.3f}"
            f"{change:>26}{r.random_mean:>13.3f}{r.random_std:>8.3f}"
        )
    return "\n".join(lines)
