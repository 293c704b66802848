"""Edge and node scores: EAP, EAP-IG and exact activation patching.

Formulas (written down in ``circuits/ARCHITECTURE.md``), with ``Δa_u = a_u(ablated) − a_u(clean)``:

- EAP: ``s(u→v) = Σ_pos Δa_u · ∂m/∂in_v`` on the clean run, averaged over
  pairs: one ablated forward, one clean forward and backward, and one matrix
  product of all senders with all receivers, masked to the graph's edges.
- EAP-IG (inputs): the same ``Δa_u`` with the gradient averaged over ``m``
  points ``x_abl + (k/m)(x_clean − x_abl)``, ``k = 1..m``, of the input
  embedding. The last point is the clean run itself, so ``m = 1`` is EAP.
- exact: ``m(in_v(clean) + Δa_u) − m(clean)``, one edge per batch row, each
  row starting from the clean residual stream below the receiver's layer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.metrics import MetricFn, make_metric
from circuits.attribution.prefix import counterfactual_prefix
from circuits.graph import GraphShape, edge_mask
from circuits.relations.pairs import PairBatch
from circuits.relations.roles import ROLES
from circuits.vocab import Ablation, InputError, Metric, hook_point

__all__ = [
    "ablated_senders",
    "attribute_edges",
    "edge_products",
    "exact_edges",
    "exact_nodes",
    "mean_senders",
]

log = logging.getLogger(__name__)


def mean_senders(harness: Harness, batch: PairBatch) -> Tensor:
    """Every sender's output averaged over the real positions of the clean prompts: [S, d]."""
    buffer, _ = harness.senders(batch.clean.to(harness.model.device))
    mask = batch.mask.to(buffer.device)[None, :, :, None].to(buffer.dtype)
    return (buffer * mask).sum((1, 2)) / mask.sum()


def ablated_senders(
    harness: Harness, batch: PairBatch, ablation: Ablation, means: Tensor | None = None
) -> Tensor:
    """The values removed edges carry, for every sender: [S, batch, pos, d]."""
    ablation = Ablation(ablation)
    device = harness.model.device
    if ablation is Ablation.COUNTERFACTUAL:
        buffer, _ = harness.senders(batch.corrupt.to(device))
        return buffer
    shape = (harness.shape.n_senders, *batch.clean.shape, int(harness.model.cfg.d_model))
    if ablation is Ablation.ZERO:
        return torch.zeros(shape, dtype=harness._dtype(), device=device)
    if means is None:
        raise InputError("mean ablation needs the relation's mean sender outputs")
    return means.to(device)[:, None, None].expand(shape).clone()


def clean_metric(harness: Harness, batch: PairBatch, metric: Metric | str) -> tuple[MetricFn, Tensor]:
    """The bound metric and its per-example values on the clean prompts."""
    device = harness.model.device
    with torch.no_grad():
        final = harness.run_to_final(batch.clean.to(device), [])
        last_logits = harness.last_logits(final, batch.last)
    fn = make_metric(metric, batch.answer.to(device), batch.corrupt_answer.to(device), last_logits)
    return fn, fn(last_logits)


def edge_products(
    shape: GraphShape, delta: Tensor, grads: Tensor, *, per_pair: bool = False, role: Tensor | None = None
) -> Tensor:
    """``Σ_{batch,pos} delta_u · grads_v`` for every real edge: [S, R] (``per_pair``: [batch, S, R]).

    ``delta`` is [S, batch, pos, d] and ``grads`` [R, batch, pos, d]; one
    matrix product of every sender with every receiver, masked to the edges.
    With ``per_pair`` the sum runs over positions only, one score matrix per
    pair (their sum over pairs is the summed result, up to rounding). With
    ``role`` ([batch, pos] indices into :data:`~circuits.relations.roles.ROLES`)
    the sum is split by the role of the position: [n_roles, S, R] (``per_pair``:
    [batch, n_roles, S, R]); every position is in one role's sum, so the roles
    add up to the summed scores and the products cost the same.
    """
    # Only (example, position) slots where some sender's Δ and some receiver's
    # gradient are non-zero contribute. With counterfactual prompts every
    # position before the subject is identical in both runs (Δ = 0 exactly),
    # and padding has no gradient, so dropping those slots is exact and
    # shrinks the products several-fold for one-shot templates.
    live = _nonzero_slots(delta) & _nonzero_slots(grads)
    groups = [live] if role is None else [live & (role.to(live.device) == r) for r in range(len(ROLES))]
    edges = torch.from_numpy(edge_mask(shape)).to(device=delta.device, dtype=delta.dtype)

    def products(rows: slice | int) -> Tensor:
        d, g = (delta, grads) if isinstance(rows, slice) else (delta[:, rows], grads[:, rows])
        parts = [
            _masked_products(shape, d, g, group[rows].reshape(-1).nonzero()[:, 0], edges) for group in groups
        ]
        return parts[0] if role is None else torch.stack(parts)

    if not per_pair:
        return products(slice(None))
    return torch.stack([products(b) for b in range(delta.shape[1])])


def _nonzero_slots(t: Tensor) -> Tensor:
    """[batch, pos]: where any row of ``t`` ([rows, batch, pos, d]) is non-zero
    (two reductions, no copy of ``t``)."""
    return (t.amax(dim=(0, 3)) != 0) | (t.amin(dim=(0, 3)) != 0)


def _masked_products(shape: GraphShape, delta: Tensor, grads: Tensor, slots: Tensor, edges: Tensor) -> Tensor:
    """The [S, R] edge products over the flattened slots ``slots`` of ``delta``/``grads`` ([S|R, ..., d]).

    One matrix product of every sender with every receiver, then the pairs
    that are no edge (a receiver reading a later sender) zeroed by ``edges``,
    the graph's edge mask: about twice the arithmetic of one product per
    layer over the senders it sees, but one large product runs about three
    times faster on a CPU than thirty skinny ones.
    """
    S, R = shape.n_senders, shape.n_receivers
    d = delta.shape[-1]
    D = delta.reshape(S, -1, d)[:, slots].reshape(S, -1)
    G = grads.reshape(R, -1, d)[:, slots].reshape(R, -1)
    return (D @ G.T) * edges


def attribute_edges(
    harness: Harness,
    batch: PairBatch,
    *,
    metric: Metric | str = Metric.LOGIT_DIFF,
    ablation: Ablation | str = Ablation.COUNTERFACTUAL,
    ig_steps: int = 1,
    means: Tensor | None = None,
    ablated: Tensor | None = None,
    per_pair: bool = False,
    by_role: bool = False,
    shared_prefix: bool = True,
) -> Tensor:
    """EAP (``ig_steps=1``) or EAP-IG edge scores of one batch, summed over its pairs: [S, R].

    ``ablated`` ([S, batch, pos, d]) overrides ``ablation`` with explicit values
    for the removed edges to carry. With ``per_pair`` the scores of each pair
    are returned apart, [batch, S, R]: the gradient of the batch mean at one
    pair's positions depends on that pair alone, so this costs no extra pass.
    With ``by_role`` each score is split by the role of the position it is
    summed over (:func:`edge_products`): [n_roles, S, R], or
    [batch, n_roles, S, R] with ``per_pair``; the batch must carry roles.
    With ``shared_prefix`` (and counterfactual ablation) the positions each
    pair's two prompts share run once (:mod:`circuits.attribution.prefix`);
    the scores are the same.
    """
    if by_role and batch.role is None:
        raise InputError("position-aware scores need a batch with position roles (batch_pairs makes them)")
    if ig_steps < 1:
        raise InputError(f"ig_steps must be at least 1, not {ig_steps}")
    with counterfactual_prefix(harness, batch, ablation, enabled=shared_prefix and ablated is None) as batch:
        return _attribute(
            harness, batch, Metric(metric), Ablation(ablation), ig_steps, means, ablated, per_pair, by_role
        )


def _attribute(
    harness: Harness,
    batch: PairBatch,
    metric: Metric,
    ablation: Ablation,
    ig_steps: int,
    means: Tensor | None,
    ablated: Tensor | None,
    per_pair: bool,
    by_role: bool,
) -> Tensor:
    device = harness.model.device
    clean = batch.clean.to(device)
    last = batch.last.to(device)
    if metric is Metric.KL:
        fn, _ = clean_metric(harness, batch, metric)
    else:
        fn = make_metric(metric, batch.answer.to(device), batch.corrupt_answer.to(device))
    if ablated is None:
        ablated = ablated_senders(harness, batch, ablation, means)
    else:
        ablated = ablated.clone()
    clean_senders = harness.new_buffer(clean)
    grads: Tensor | None = None
    x_base = ablated[0]
    x_clean = harness.input_embedding(clean) if ig_steps > 1 else None
    for k in range(1, ig_steps + 1):
        if k < ig_steps:
            assert x_clean is not None
            point: Tensor | None = x_base + (k / ig_steps) * (x_clean - x_base)
            g, _ = harness.gradients(clean, fn, last, input_value=point)
        else:
            g, _ = harness.gradients(clean, fn, last, buffer=clean_senders)
        grads = g if grads is None else grads.add_(g)
    assert grads is not None
    grads /= ig_steps
    delta = ablated.sub_(clean_senders)
    # gradients are of the batch mean; scale back to a sum over pairs
    role = batch.role if by_role else None
    return edge_products(harness.shape, delta, grads, per_pair=per_pair, role=role) * len(batch)


@torch.no_grad()
def exact_edges(
    harness: Harness,
    batch: PairBatch,
    edges: Sequence[tuple[int, ...]],
    *,
    metric: Metric | str = Metric.LOGIT_DIFF,
    ablation: Ablation | str = Ablation.COUNTERFACTUAL,
    means: Tensor | None = None,
    max_rows: int = 512,
    progress: Any = None,
    ablated: Tensor | None = None,
    per_pair: bool = False,
    shared_prefix: bool = True,
) -> np.ndarray:
    """Exact patching scores of ``edges`` (sender, receiver indices), averaged over pairs.

    An edge given as ``(sender, receiver, role)`` is a position-aware unit: the
    corrupted value reaches the receiver only at the positions of that role
    (an index into :data:`~circuits.relations.roles.ROLES`; the batch must
    carry roles). ``ablated`` ([S, batch, pos, d]) overrides ``ablation`` as in
    :func:`attribute_edges`. With ``per_pair`` the changes are kept apart:
    ``[len(edges), batch]``. ``shared_prefix`` as in :func:`attribute_edges`.
    """
    shape = harness.shape
    mask = edge_mask(shape)
    for edge in edges:
        s, r = edge[0], edge[1]
        if not (0 <= s < shape.n_senders and 0 <= r < shape.n_receivers and mask[s, r]):
            raise InputError(f"({s}, {r}) is not an edge of this graph")
        if len(edge) == 3 and (batch.role is None or not 0 <= edge[2] < len(ROLES)):
            raise InputError(
                f"unit {tuple(edge)}: a role index lies in [0, {len(ROLES)}) and needs a batch "
                "with position roles"
            )
    with counterfactual_prefix(harness, batch, ablation, enabled=shared_prefix and ablated is None) as batch:
        return _exact(harness, batch, edges, metric, ablation, means, max_rows, progress, ablated, per_pair)


def _exact(
    harness: Harness,
    batch: PairBatch,
    edges: Sequence[tuple[int, ...]],
    metric: Metric | str,
    ablation: Ablation | str,
    means: Tensor | None,
    max_rows: int,
    progress: Any,
    ablated: Tensor | None,
    per_pair: bool,
) -> np.ndarray:
    shape = harness.shape
    device = harness.model.device
    clean = batch.clean.to(device)
    fn, base, delta = _patching_setup(harness, batch, metric, ablation, means, ablated)
    n = len(batch)
    per_chunk = max(1, max_rows // n)
    scores = np.zeros((len(edges), n) if per_pair else len(edges), dtype=np.float64)
    by_layer: dict[int, list[int]] = {}
    for i, edge in enumerate(edges):
        by_layer.setdefault(_receiver_layer(shape, edge[1]), []).append(i)
    role = None if batch.role is None else batch.role.to(device)
    last = batch.last.to(device)
    for layer, members in sorted(by_layer.items()):
        # logits receivers sit after the last block: start there, patch at ln_final
        start_layer = min(layer, shape.n_layers - 1)
        resid = harness.residual_before(clean, start_layer)
        for start in range(0, len(members), per_chunk):
            chunk = members[start : start + per_chunk]
            adds = _edge_deltas(shape, [edges[i] for i in chunk], delta, role)
            rows = resid.repeat(len(chunk), 1, 1)

            def delta_fn(
                at: int, kind: str, adds: dict[str, Tensor] = adds, layer: int = layer
            ) -> Tensor | None:
                return adds.get(kind) if at == layer else None

            logits = harness.patched(rows, delta_fn, last.repeat(len(chunk)), start_layer=start_layer)
            values = fn.repeat(len(chunk))(logits)
            scores[chunk] = _changes(values, base, len(chunk), per_pair=per_pair)
            if progress is not None:
                progress.update(len(chunk))
    return scores


def _patching_setup(
    harness: Harness,
    batch: PairBatch,
    metric: Metric | str,
    ablation: Ablation | str,
    means: Tensor | None,
    ablated: Tensor | None,
) -> tuple[MetricFn, Tensor, Tensor]:
    """The bound metric, its clean values and every sender's Δ (ablated − clean)."""
    fn, base = clean_metric(harness, batch, metric)
    clean_senders, _ = harness.senders(batch.clean.to(harness.model.device))
    if ablated is None:
        ablated = ablated_senders(harness, batch, Ablation(ablation), means)
    return fn, base, ablated - clean_senders


def _changes(values: Tensor, base: Tensor, blocks: int, *, per_pair: bool = False) -> np.ndarray:
    """Per block of rows (one intervention each), the change from the clean metric: its mean, or per pair."""
    diffs = (values - base.repeat(blocks)).view(blocks, -1)
    return (diffs if per_pair else diffs.mean(1)).double().cpu().numpy()


def _receiver_layer(shape: GraphShape, r: int) -> int:
    return shape.n_layers if r == shape.logits_receiver else r // shape.receivers_per_layer


def _edge_deltas(
    shape: GraphShape, edges: Sequence[tuple[int, ...]], delta: Tensor, role: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-kind receiver additions for a chunk of edges, one edge per block of rows.

    A ``(sender, receiver, role)`` unit adds its sender's Δ only at the positions of that role.
    """
    _, n, pos, d = delta.shape
    rows = n * len(edges)
    adds: dict[str, Tensor] = {}

    def get(kind: str, heads: int | None) -> Tensor:
        if kind not in adds:
            size = (rows, pos, heads, d) if heads else (rows, pos, d)
            adds[kind] = torch.zeros(size, dtype=delta.dtype, device=delta.device)
        return adds[kind]

    H, KV = shape.n_heads, shape.n_kv_heads
    for e, edge in enumerate(edges):
        s, r = edge[0], edge[1]
        block = slice(e * n, (e + 1) * n)
        value = delta[s]
        if len(edge) == 3:
            assert role is not None
            value = value * (role == edge[2])[..., None].to(value.dtype)
        if r == shape.logits_receiver:
            get("logits", None)[block] += value
            continue
        offset = r % shape.receivers_per_layer
        if offset < H:
            get("q", H)[block, :, offset] += value
        elif offset < H + KV:
            get("k", KV)[block, :, offset - H] += value
        elif offset < H + 2 * KV:
            get("v", KV)[block, :, offset - H - KV] += value
        else:
            get("mlp", None)[block] += value
    return adds


@torch.no_grad()
def exact_nodes(
    harness: Harness,
    batch: PairBatch,
    *,
    metric: Metric | str = Metric.LOGIT_DIFF,
    ablation: Ablation | str = Ablation.COUNTERFACTUAL,
    means: Tensor | None = None,
    max_rows: int = 512,
    shared_prefix: bool = True,
) -> np.ndarray:
    """Exact scores of every sender: its output ablated everywhere downstream, per pair mean: [S].

    ``shared_prefix`` as in :func:`attribute_edges`.
    """
    with counterfactual_prefix(harness, batch, ablation, enabled=shared_prefix) as batch:
        return _exact_nodes(harness, batch, metric, ablation, means, max_rows)


def _exact_nodes(
    harness: Harness,
    batch: PairBatch,
    metric: Metric | str,
    ablation: Ablation | str,
    means: Tensor | None,
    max_rows: int,
) -> np.ndarray:
    shape = harness.shape
    device = harness.model.device
    clean = batch.clean.to(device)
    fn, base, delta = _patching_setup(harness, batch, metric, ablation, means, None)
    n = len(batch)
    last = batch.last.to(device)
    scores = np.zeros(shape.n_senders)
    groups: list[tuple[int, list[int]]] = [(0, [0])]
    for layer in range(shape.n_layers):
        groups.append(
            (layer, [shape.head_sender(layer, h) for h in range(shape.n_heads)] + [shape.mlp_sender(layer)])
        )
    per_chunk = max(1, max_rows // n)
    for layer, senders in groups:
        resid = harness.residual_before(clean, layer)
        for start in range(0, len(senders), per_chunk):
            chunk = senders[start : start + per_chunk]
            rows = resid.repeat(len(chunk), 1, 1)
            adds = torch.cat([delta[s] for s in chunk])  # [rows, pos, d]
            final = _run_with_sender_added(harness, rows, layer, chunk, adds)
            values = fn.repeat(len(chunk))(harness.last_logits(final, last.repeat(len(chunk))))
            scores[chunk] = _changes(values, base, len(chunk))
    return scores


def _run_with_sender_added(
    harness: Harness, rows: Tensor, layer: int, chunk: list[int], adds: Tensor
) -> Tensor:
    """Final residual of a forward from ``layer``, each block of rows adding one sender's Δ."""
    shape = harness.shape
    n = rows.shape[0] // len(chunk)
    if chunk == [0]:
        return _from_input(harness, rows, adds)
    head_rows = torch.zeros_like(rows)
    mlp_rows = torch.zeros_like(rows)
    for e, s in enumerate(chunk):
        target = mlp_rows if s == shape.mlp_sender(layer) else head_rows
        target[e * n : (e + 1) * n] = adds[e * n : (e + 1) * n]

    def attn_hook(x: Tensor, hook: Any) -> Tensor:
        return x + head_rows

    def mlp_hook(x: Tensor, hook: Any) -> Tensor:
        return x + mlp_rows

    hooks = [(hook_point("attn_out", layer), attn_hook), (hook_point("mlp_out", layer), mlp_hook)]
    with torch.no_grad():
        return harness.run_to_final(rows, hooks, start_layer=layer)


def _from_input(harness: Harness, rows: Tensor, adds: Tensor) -> Tensor:
    with torch.no_grad():
        return harness.run_to_final(rows + adds, [], start_layer=0)
