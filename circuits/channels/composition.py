"""Composition scores between senders and later receivers: whole-matrix and per SVD component.

Channels use the graph's words (:mod:`circuits.graph`): a **sender** is a head
or an MLP whose output is scored, a **receiver** a later head's ``<q>``,
``<k>`` or ``<v>`` input. For a sender (writer, in Elhage's and Talking Heads'
terms) matrix ``L`` (a head's OV, or an MLP's ``W_out``) and a receiver matrix
``R``, the composition score (Elhage et al. 2021) is

    CS(L, R) = ||L R||_F / (||L||_F ||R||_F),

with ``R`` the receiver's ``QK`` (Q-composition: the sender feeds the query),
``QK^T`` (K-composition: it feeds the key) or ``OV`` (V-composition). The
per-component score (Talking Heads, Merullo et al.) takes one rank-1 SVD
component ``s_i u_i v_i^T`` of ``L``: ``CS(u_i v_i^T, R) = ||v_i^T R|| / ||R||_F``,
which does not depend on ``s_i``. Because the ``u_i`` are orthonormal,

    CS(L, R)^2 = sum_i s_i^2 CS(u_i v_i^T, R)^2 / sum_i s_i^2

exactly (the sender's SVD is on the *left* of the product; this is the side
for which the identity holds without further assumptions).

A query head's ``<q>`` input reads through ``R = QK_h``; with grouped-query
attention a key/value head's ``<k>`` input is read by every query head of its
group, so its matrix is the side-by-side concatenation ``[QK_h^T ...]`` over the group
(``||L R||^2`` is then the sum over the group), and likewise ``<v>`` reads
through ``[OV_h ...]``. With one query head per key/value head these are
Elhage's K- and V-composition matrices exactly.

Efficiency: every receiver's ``R = A B`` (``A: d x dh``) is reduced to ``A~ = A Rb^T``
with ``B^T = Qb Rb``, so ``||X R||_F = ||X A~||_F`` for any ``X``. The component
scores of one sender layer against all later receivers are then one matrix
product; a head's whole-matrix score follows from all its components by the
identity above, an MLP's from its Gram matrix, ``||W R||^2 = <W^T W, A~ A~^T>``.
No ``d_model x d_model`` product is formed per pair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from circuits.channels.endpoints import Receivers, Senders, make_receivers, make_senders
from circuits.channels.svd import Factored, HeadWeights, head_weights, mlp_out_matrices
from circuits.deprecation import old_attributes, old_module_names
from circuits.graph import GraphShape
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = [
    "RECEIVER_KINDS",
    "ChannelAnalysis",
    "NullStats",
    "Receivers",
    "Senders",
    "analyze",
    "composition_score",
    "make_receivers",
    "make_senders",
    "null_distribution",
]

log = logging.getLogger(__name__)
RECEIVER_KINDS = ("q", "k", "v")


def composition_score(L: Tensor | Factored, R: Tensor | Factored) -> Tensor:
    """``||L R||_F / (||L||_F ||R||_F)`` over the last two dimensions (dense reference)."""
    L = L.dense() if isinstance(L, Factored) else L
    R = R.dense() if isinstance(R, Factored) else R
    num = torch.linalg.matrix_norm(L @ R)
    return num / (torch.linalg.matrix_norm(L) * torch.linalg.matrix_norm(R))


def _mlp_whole(senders: Senders, wsel: np.ndarray, rmat: Tensor, rnorm: Tensor, *, chunk: int = 64) -> Tensor:
    """Whole-matrix scores ``[w, r]`` of MLP senders: ``sqrt(<W^T W, A~ A~^T>) / (||W|| ||A~||)``."""
    assert senders.gram is not None
    n = rnorm.shape[0]
    d, dh = rmat.shape[0], rmat.shape[1] // n
    rank = np.cumsum(senders.is_mlp) - 1  # sender index -> row of gram
    grams = senders.gram[torch.as_tensor(rank[wsel])].reshape(len(wsel), d * d)
    sq = torch.empty(len(wsel), n)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        block = rmat[:, s * dh : (s + k) * dh].reshape(d, k, dh).permute(1, 0, 2)
        sq[:, s : s + k] = grams @ (block @ block.transpose(1, 2)).reshape(k, d * d).T
    norms = senders.norm[torch.as_tensor(wsel)]
    return sq.clamp_min(0).sqrt() / (norms[:, None].clamp_min(1e-30) * rnorm.clamp_min(1e-30))


def _scores(
    senders: Senders,
    wsel: np.ndarray,
    rmat: Tensor,
    rnorm: Tensor,
    *,
    chunk: int = 64,
    mlp_whole: bool = True,
) -> tuple[Tensor, Tensor]:
    """Whole-matrix ``[w, r]`` and component ``[w, r, c]`` scores of selected senders against receivers.

    ``rmat`` ``[d, n * dh]`` holds the receivers' reduced factors side by side
    (:meth:`Receivers.matrix`), ``rnorm`` ``[n]`` their norms. A head's
    whole-matrix score follows from its components by the identity in the
    module docstring (all its components are kept); an MLP's comes from
    :func:`_mlp_whole` (NaN with ``mlp_whole=False``, to be filled in bulk).
    """
    n = rnorm.shape[0]
    d, dh = rmat.shape[0], rmat.shape[1] // n
    widx = torch.as_tensor(wsel)
    dirs = senders.directions[widx]
    nw, c, _ = dirs.shape
    flat = dirs.reshape(nw * c, d)
    comp = torch.empty(nw * c, n)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        prod = flat @ rmat[:, s * dh : (s + k) * dh]
        comp[:, s : s + k] = torch.linalg.vector_norm(prod.view(-1, k, dh), dim=-1)
    comp = (comp.view(nw, c, n) / rnorm.clamp_min(1e-30)).transpose(1, 2)
    sigma = senders.sigma[widx]
    whole = (
        (comp**2 * sigma[:, None, :] ** 2).sum(-1) / (sigma**2).sum(-1, keepdim=True).clamp_min(1e-30)
    ).sqrt()
    mlps = np.nonzero(senders.is_mlp[wsel])[0]
    if mlp_whole and len(mlps):
        whole[mlps] = _mlp_whole(senders, wsel[mlps], rmat, rnorm, chunk=chunk)
    return whole, comp


@dataclass(frozen=True)
class NullStats:
    """Mean and standard deviation of scores between random matrices of the real shapes.

    ``whole[(sender_kind, receiver_kind)]`` and ``component[receiver_kind]`` are
    ``(mean, std)``; sender kinds are ``"head"`` and ``"mlp"``.
    """

    whole: dict[tuple[str, str], tuple[float, float]]
    component: dict[str, tuple[float, float]]
    n: int
    seed: int


def null_distribution(
    weights: HeadWeights, *, d_mlp: int | None = None, n: int = 48, seed: int = 0
) -> NullStats:
    """Scores of Gaussian random senders against Gaussian random receivers of the same shapes.

    Random heads are ``A B`` with ``A: d x dh``, ``B: dh x d``; random MLPs
    ``d_mlp x d`` matrices; random receivers have the real receivers' factor
    shapes (``d x dh`` times ``dh x d`` for q, ``dh x group*d`` for k and v);
    every entry is standard normal. ``n`` senders of each kind are scored
    against ``n`` receivers of each kind. Components of a random head are
    uniformly random directions, so one component null serves every sender.
    """
    gen = torch.Generator().manual_seed(seed)
    d, dh, g = weights.d_model, weights.d_head, weights.group

    def randn(*size: int) -> Tensor:
        return torch.randn(*size, generator=gen)

    heads = HeadWeights(
        W_Q=randn(n, 1, d, dh),
        W_K=randn(n, 1, d, dh),
        W_V=randn(n, 1, d, dh),
        W_O=randn(n, 1, dh, d),
        norm_weight=torch.ones(n, d),
        centered=False,
        n_heads=1,
        n_kv_heads=1,
    )
    rw = HeadWeights(
        W_Q=randn(1, n * g, d, dh),
        W_K=randn(1, n, d, dh),
        W_V=randn(1, n, d, dh),
        W_O=randn(1, n * g, dh, d),
        norm_weight=torch.ones(1, d),
        centered=False,
        n_heads=n * g,
        n_kv_heads=n,
    )
    receivers = make_receivers(rw, GraphShape(1, n * g, n))
    rmat, rnorm = receivers.matrix(), receivers.norm
    whole, comp = _scores(make_senders(heads, GraphShape(n, 1, 1)), np.arange(n), rmat, rnorm)
    scored = {"head": whole}
    if d_mlp:  # MLPs are costly: 8 random ones, each against every random receiver
        few = min(n, 8)
        some = HeadWeights(
            W_Q=heads.W_Q[:few],
            W_K=heads.W_K[:few],
            W_V=heads.W_V[:few],
            W_O=heads.W_O[:few],
            norm_weight=heads.norm_weight[:few],
            centered=False,
            n_heads=1,
            n_kv_heads=1,
        )
        mlps = make_senders(some, GraphShape(few, 1, 1), mlp_out=randn(few, d_mlp, d))
        scored["mlp"] = _scores(mlps, np.nonzero(mlps.is_mlp)[0], rmat, rnorm)[0]
    out_whole, out_comp = {}, {}
    for kind in RECEIVER_KINDS:
        cols = torch.as_tensor(receivers.kinds == kind)
        out_comp[kind] = (float(comp[:, cols].mean()), float(comp[:, cols].std()))
        for wkind, values in scored.items():
            out_whole[(wkind, kind)] = (float(values[:, cols].mean()), float(values[:, cols].std()))
    return NullStats(out_whole, out_comp, n, seed)


@old_attributes({"writers": "senders", "readers": "receivers"})
@dataclass
class ChannelAnalysis:
    """Composition scores of every sender against every later q/k/v receiver of one model.

    ``whole`` ``[senders, receivers]`` and ``component`` ``[senders, receivers, c]``
    hold NaN where the receiver is not later than the sender. ``whole_z`` and
    ``component_z`` are z-scores against :class:`NullStats`.
    """

    model: str
    shape: GraphShape
    senders: Senders
    receivers: Receivers
    whole: np.ndarray
    component: np.ndarray
    null: NullStats
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sigma(self) -> np.ndarray:
        return self.senders.sigma.numpy()

    def _null(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        mean = np.zeros((len(self.senders.names), len(self.receivers.names)), np.float32)
        std = np.ones_like(mean)
        for wi, mlp in enumerate(self.senders.is_mlp):
            for kind in RECEIVER_KINDS:
                cols = self.receivers.kinds == kind
                key = ("mlp" if mlp else "head", kind)
                m, s = self.null.whole[key] if which == "whole" else self.null.component[kind]
                mean[wi, cols], std[wi, cols] = m, s
        return mean, std

    @property
    def whole_z(self) -> np.ndarray:
        mean, std = self._null("whole")
        return (self.whole - mean) / std

    @property
    def component_z(self) -> np.ndarray:
        mean, std = self._null("component")
        return (self.component - mean[..., None]) / std[..., None]

    def edge_matrix(self, values: np.ndarray) -> np.ndarray:
        """Spread ``[channel senders, channel receivers]`` values onto the graph's (NaN elsewhere)."""
        out = np.full((self.shape.n_senders, self.shape.n_receivers), np.nan, np.float32)
        out[np.ix_(self.senders.index, self.receivers.index)] = values
        return out


def analyze(
    model: LoadedModel,
    *,
    mlp: bool = True,
    fold_norm: bool = True,
    center: bool | None = None,
    n_null: int = 48,
    seed: int = 0,
) -> ChannelAnalysis:
    """Whole-matrix and per-component Q/K/V composition scores of every sender/later-receiver pair.

    Every head keeps all ``d_head`` components of its OV; every MLP the top
    ``d_head`` components of its ``W_out`` (its whole-matrix score uses all).

    Parameters
    ----------
    model : LoadedModel
    mlp : bool
        Score MLP outputs as senders too.
    fold_norm, center
        See :func:`circuits.channels.svd.head_weights`.
    n_null, seed
        Size and seed of the random null distribution.
    """
    if n_null < 2:
        raise InputError(f"n_null must be at least 2, not {n_null}")
    started = time.perf_counter()
    shape = GraphShape.of(model)
    weights = head_weights(model, fold_norm=fold_norm, center=center)
    mlp_out = mlp_out_matrices(model) if mlp else None
    senders = make_senders(weights, shape, mlp_out=mlp_out)
    receivers = make_receivers(weights, shape)
    rmat, rnorm = receivers.matrix(), receivers.norm
    dh = weights.d_head
    c = senders.directions.shape[1]
    whole = np.full((len(senders.names), len(receivers.names)), np.nan, np.float32)
    component = np.full((*whole.shape, c), np.nan, np.float32)
    with torch.no_grad():
        for layer in range(shape.n_layers - 1):
            wsel = np.nonzero(senders.layers == layer)[0]
            first = int(np.searchsorted(receivers.layers, layer, side="right"))  # later ones: a suffix
            w, cpt = _scores(senders, wsel, rmat[:, first * dh :], rnorm[first:], mlp_whole=False)
            whole[wsel, first:] = w.numpy()
            component[wsel, first:] = cpt.numpy()
        mlps = np.nonzero(senders.is_mlp)[0]
        if len(mlps):  # every MLP against every receiver at once; keep the later receivers
            later = senders.layers[mlps, None] < receivers.layers[None, :]
            whole[mlps] = np.where(later, _mlp_whole(senders, mlps, rmat, rnorm).numpy(), np.nan)
        null = null_distribution(
            weights, d_mlp=None if mlp_out is None else mlp_out.shape[1], n=n_null, seed=seed
        )
    seconds = time.perf_counter() - started
    settings = {
        "mlp": mlp,
        "n_components": c,
        "fold_norm": fold_norm,
        "centered": weights.centered,
        "n_null": n_null,
        "seed": seed,
        "rotary": "ignored (relative position 0)",
    }
    log.info(
        "channel analysis of %s: %d senders x %d receivers in %.1f s",
        model.name,
        len(senders.names),
        len(receivers.names),
        seconds,
    )
    return ChannelAnalysis(model.name, shape, senders, receivers, whole, component, null, settings, seconds)


__getattr__ = old_module_names(
    __name__,
    {
        "Writers": "Senders",
        "Readers": "Receivers",
        "make_writers": "make_senders",
        "make_readers": "make_receivers",
        "READER_KINDS": "RECEIVER_KINDS",
    },
    globals(),
)
