"""Composition scores between writers and later readers: whole-matrix and per SVD component.

For a writer matrix ``L`` (a head's OV, or an MLP's ``W_out``) and a reader
matrix ``R``, the composition score (Elhage et al. 2021) is

    CS(L, R) = ||L R||_F / (||L||_F ||R||_F),

with ``R`` the reader's ``QK`` (Q-composition: the writer feeds the query),
``QK^T`` (K-composition: it feeds the key) or ``OV`` (V-composition). The
per-component score (Talking Heads, Merullo et al.) takes one rank-1 SVD
component ``s_i u_i v_i^T`` of ``L``: ``CS(u_i v_i^T, R) = ||v_i^T R|| / ||R||_F``,
which does not depend on ``s_i``. Because the ``u_i`` are orthonormal,

    CS(L, R)^2 = sum_i s_i^2 CS(u_i v_i^T, R)^2 / sum_i s_i^2

exactly (the writer's SVD is on the *left* of the product; this is the side
for which the identity holds without further assumptions).

Readers are the graph's receivers (:mod:`circuits.graph`): a query head's
``<q>`` input reads through ``R = QK_h``; with grouped-query attention a
key/value head's ``<k>`` input is read by every query head of its group, so
its reader is the side-by-side concatenation ``[QK_h^T ...]`` over the group
(``||L R||^2`` is then the sum over the group), and likewise ``<v>`` reads
through ``[OV_h ...]``. With one query head per key/value head these are
Elhage's K- and V-composition matrices exactly.

Efficiency: every reader ``R = A B`` (``A: d x dh``) is reduced to ``A~ = A Rb^T``
with ``B^T = Qb Rb``, so ``||X R||_F = ||X A~||_F`` for any ``X``. The component
scores of one writer layer against all later readers are then one matrix
product; a head's whole-matrix score follows from all its components by the
identity above, an MLP's from its Gram matrix, ``||W R||^2 = <W^T W, A~ A~^T>``.
No ``d_model x d_model`` product is formed per pair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.channels.svd import (
    Factored,
    HeadWeights,
    factored_svd,
    head_weights,
    mlp_out_matrices,
    single_threaded,
)
from circuits.graph import GraphShape
from circuits.vocab import InputError, head_name, mlp_name, qkv_name

__all__ = [
    "READER_KINDS",
    "ChannelAnalysis",
    "NullStats",
    "Readers",
    "Writers",
    "analyze",
    "composition_score",
    "make_readers",
    "make_writers",
    "null_distribution",
]

log = logging.getLogger(__name__)
READER_KINDS = ("q", "k", "v")


def composition_score(L: Tensor | Factored, R: Tensor | Factored) -> Tensor:
    """``||L R||_F / (||L||_F ||R||_F)`` over the last two dimensions (dense reference)."""
    L = L.dense() if isinstance(L, Factored) else L
    R = R.dense() if isinstance(R, Factored) else R
    num = torch.linalg.matrix_norm(L @ R)
    return num / (torch.linalg.matrix_norm(L) * torch.linalg.matrix_norm(R))


@dataclass
class Writers:
    """Senders whose output matrices are scored: heads (OV) and, optionally, MLPs (``W_out``).

    ``directions`` ``[n, c, d]`` are the top ``c`` output singular vectors
    (``c = d_head``: all of a head's), ``sigma`` ``[n, c]`` their singular
    values and ``norm`` ``[n]`` the full Frobenius norm. ``gram``
    ``[n_mlps, d, d]`` holds ``W_out^T W_out`` of the MLP writers in order,
    whose kept components do not span their whole output.
    """

    names: list[str]
    layers: np.ndarray
    senders: np.ndarray
    is_mlp: np.ndarray
    directions: Tensor
    sigma: Tensor
    norm: Tensor
    gram: Tensor | None = None


@dataclass
class Readers:
    """Receivers with their reduced reading factor ``reduced`` ``[n, d, dh]`` (see module docstring)."""

    names: list[str]
    kinds: np.ndarray
    layers: np.ndarray
    receivers: np.ndarray
    reduced: Tensor

    @property
    def norm(self) -> Tensor:
        return torch.linalg.matrix_norm(self.reduced)

    def matrix(self) -> Tensor:
        """All reduced factors side by side, ``[d, n * dh]``; later layers are a suffix of columns."""
        n, d, dh = self.reduced.shape
        return self.reduced.permute(1, 0, 2).reshape(d, n * dh).contiguous()


def _reduce(A: Tensor, Bt: Tensor) -> Tensor:
    """``A Rb^T`` with ``Bt = Qb Rb``: the ``d x r`` factor that keeps ``||X A B||``."""
    with single_threaded():
        return A @ torch.linalg.qr(Bt)[1].transpose(-2, -1)


def make_readers(weights: HeadWeights, shape: GraphShape) -> Readers:
    """Every q/k/v receiver of ``shape`` with its reduced reader, in receiver order."""
    g, kv = weights.group, weights.kv_of_query()
    L, H, KV, d, dh = weights.n_layers, weights.n_heads, weights.n_kv_heads, weights.d_model, weights.d_head
    q = _reduce(weights.W_Q, weights.W_K[:, kv])  # R = W_Q W_K^T
    grouped_q = weights.W_Q.reshape(L, KV, g * d, dh)  # B^T of [QK_h^T ...] over the group
    k = _reduce(weights.W_K, grouped_q)
    grouped_o = weights.W_O.transpose(-2, -1).reshape(L, KV, g * d, dh)
    v = _reduce(weights.W_V, grouped_o)
    names, kinds, layers, receivers, blocks = [], [], [], [], []
    index = {"q": shape.q_receiver, "k": shape.k_receiver, "v": shape.v_receiver}
    for layer in range(L):
        for kind, mats, count in (("q", q, H), ("k", k, KV), ("v", v, KV)):
            for head in range(count):
                names.append(qkv_name(layer, head, kind))
                kinds.append(kind)
                layers.append(layer)
                receivers.append(index[kind](layer, head))
            blocks.append(mats[layer])
    return Readers(names, np.array(kinds), np.array(layers), np.array(receivers), torch.cat(blocks))


def make_writers(weights: HeadWeights, shape: GraphShape, *, mlp_out: Tensor | None = None) -> Writers:
    """Every head (and MLP when ``mlp_out`` is given) of ``shape`` as a writer, in sender order.

    Heads keep all ``d_head`` components; MLPs their top ``d_head``.
    """
    L, H, dh = weights.n_layers, weights.n_heads, weights.d_head
    svd = factored_svd(Factored(weights.W_V[:, weights.kv_of_query()], weights.W_O))
    n = L * (H + (mlp_out is not None))
    d = weights.d_model
    dirs, sigma, norm = torch.zeros(n, dh, d), torch.zeros(n, dh), torch.zeros(n)
    gram = mlp_out.transpose(-2, -1) @ mlp_out if mlp_out is not None else None
    names: list[str] = []
    layers: list[int] = []
    senders: list[int] = []
    is_mlp: list[bool] = []
    for layer in range(L):
        for head in range(H):
            i = len(names)
            dirs[i], sigma[i] = svd.Vh[layer, head], svd.S[layer, head]
            norm[i] = svd.S[layer, head].norm()
            names.append(head_name(layer, head))
            senders.append(shape.head_sender(layer, head))
        layers += [layer] * H
        is_mlp += [False] * H
        if mlp_out is not None and gram is not None:
            i = len(names)
            with single_threaded():
                e, vecs = torch.linalg.eigh(gram[layer].double())
            top = torch.argsort(e, descending=True)[:dh]
            dirs[i], sigma[i] = vecs[:, top].T.float(), e[top].clamp_min(0).sqrt().float()
            norm[i] = mlp_out[layer].norm()
            names.append(mlp_name(layer))
            senders.append(shape.mlp_sender(layer))
            layers.append(layer)
            is_mlp.append(True)
    return Writers(
        names, np.array(layers), np.array(senders), np.array(is_mlp, dtype=bool), dirs, sigma, norm, gram
    )


def _mlp_whole(writers: Writers, wsel: np.ndarray, rmat: Tensor, rnorm: Tensor, *, chunk: int = 64) -> Tensor:
    """Whole-matrix scores ``[w, r]`` of MLP writers: ``sqrt(<W^T W, A~ A~^T>) / (||W|| ||A~||)``."""
    assert writers.gram is not None
    n = rnorm.shape[0]
    d, dh = rmat.shape[0], rmat.shape[1] // n
    rank = np.cumsum(writers.is_mlp) - 1  # writer index -> row of gram
    grams = writers.gram[torch.as_tensor(rank[wsel])].reshape(len(wsel), d * d)
    sq = torch.empty(len(wsel), n)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        block = rmat[:, s * dh : (s + k) * dh].reshape(d, k, dh).permute(1, 0, 2)
        sq[:, s : s + k] = grams @ (block @ block.transpose(1, 2)).reshape(k, d * d).T
    norms = writers.norm[torch.as_tensor(wsel)]
    return sq.clamp_min(0).sqrt() / (norms[:, None].clamp_min(1e-30) * rnorm.clamp_min(1e-30))


def _scores(
    writers: Writers,
    wsel: np.ndarray,
    rmat: Tensor,
    rnorm: Tensor,
    *,
    chunk: int = 64,
    mlp_whole: bool = True,
) -> tuple[Tensor, Tensor]:
    """Whole-matrix ``[w, r]`` and component ``[w, r, c]`` scores of selected writers against readers.

    ``rmat`` ``[d, n * dh]`` holds the readers' reduced factors side by side
    (:meth:`Readers.matrix`), ``rnorm`` ``[n]`` their norms. A head's
    whole-matrix score follows from its components by the identity in the
    module docstring (all its components are kept); an MLP's comes from
    :func:`_mlp_whole` (NaN with ``mlp_whole=False``, to be filled in bulk).
    """
    n = rnorm.shape[0]
    d, dh = rmat.shape[0], rmat.shape[1] // n
    widx = torch.as_tensor(wsel)
    dirs = writers.directions[widx]
    nw, c, _ = dirs.shape
    flat = dirs.reshape(nw * c, d)
    comp = torch.empty(nw * c, n)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        prod = flat @ rmat[:, s * dh : (s + k) * dh]
        comp[:, s : s + k] = torch.linalg.vector_norm(prod.view(-1, k, dh), dim=-1)
    comp = (comp.view(nw, c, n) / rnorm.clamp_min(1e-30)).transpose(1, 2)
    sigma = writers.sigma[widx]
    whole = (
        (comp**2 * sigma[:, None, :] ** 2).sum(-1) / (sigma**2).sum(-1, keepdim=True).clamp_min(1e-30)
    ).sqrt()
    mlps = np.nonzero(writers.is_mlp[wsel])[0]
    if mlp_whole and len(mlps):
        whole[mlps] = _mlp_whole(writers, wsel[mlps], rmat, rnorm, chunk=chunk)
    return whole, comp


@dataclass(frozen=True)
class NullStats:
    """Mean and standard deviation of scores between random matrices of the real shapes.

    ``whole[(writer_kind, reader_kind)]`` and ``component[reader_kind]`` are
    ``(mean, std)``; writer kinds are ``"head"`` and ``"mlp"``.
    """

    whole: dict[tuple[str, str], tuple[float, float]]
    component: dict[str, tuple[float, float]]
    n: int
    seed: int


def null_distribution(
    weights: HeadWeights, *, d_mlp: int | None = None, n: int = 48, seed: int = 0
) -> NullStats:
    """Scores of Gaussian random writers against Gaussian random readers of the same shapes.

    Random heads are ``A B`` with ``A: d x dh``, ``B: dh x d``; random MLPs
    ``d_mlp x d`` matrices; random readers have the real readers' factor
    shapes (``d x dh`` times ``dh x d`` for q, ``dh x group*d`` for k and v);
    every entry is standard normal. ``n`` writers of each kind are scored
    against ``n`` readers of each kind. Components of a random head are
    uniformly random directions, so one component null serves every writer.
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
    readers = make_readers(rw, GraphShape(1, n * g, n))
    rmat, rnorm = readers.matrix(), readers.norm
    whole, comp = _scores(make_writers(heads, GraphShape(n, 1, 1)), np.arange(n), rmat, rnorm)
    scored = {"head": whole}
    if d_mlp:  # MLPs are costly: 8 random ones, each against every random reader
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
        mlps = make_writers(some, GraphShape(few, 1, 1), mlp_out=randn(few, d_mlp, d))
        scored["mlp"] = _scores(mlps, np.nonzero(mlps.is_mlp)[0], rmat, rnorm)[0]
    out_whole, out_comp = {}, {}
    for kind in READER_KINDS:
        cols = torch.as_tensor(readers.kinds == kind)
        out_comp[kind] = (float(comp[:, cols].mean()), float(comp[:, cols].std()))
        for wkind, values in scored.items():
            out_whole[(wkind, kind)] = (float(values[:, cols].mean()), float(values[:, cols].std()))
    return NullStats(out_whole, out_comp, n, seed)


@dataclass
class ChannelAnalysis:
    """Composition scores of every writer against every later q/k/v reader of one model.

    ``whole`` ``[writers, readers]`` and ``component`` ``[writers, readers, c]``
    hold NaN where the reader is not later than the writer. ``whole_z`` and
    ``component_z`` are z-scores against :class:`NullStats`.
    """

    model: str
    shape: GraphShape
    writers: Writers
    readers: Readers
    whole: np.ndarray
    component: np.ndarray
    null: NullStats
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sigma(self) -> np.ndarray:
        return self.writers.sigma.numpy()

    def _null(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        mean = np.zeros((len(self.writers.names), len(self.readers.names)), np.float32)
        std = np.ones_like(mean)
        for wi, mlp in enumerate(self.writers.is_mlp):
            for kind in READER_KINDS:
                cols = self.readers.kinds == kind
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
        """Spread ``[writers, readers]`` values onto the graph's ``[senders, receivers]`` (NaN elsewhere)."""
        out = np.full((self.shape.n_senders, self.shape.n_receivers), np.nan, np.float32)
        out[np.ix_(self.writers.senders, self.readers.receivers)] = values
        return out


def analyze(
    model: Any,
    *,
    mlp: bool = True,
    fold_norm: bool = True,
    center: bool | None = None,
    n_null: int = 48,
    seed: int = 0,
) -> ChannelAnalysis:
    """Whole-matrix and per-component Q/K/V composition scores of every writer/later-reader pair.

    Every head keeps all ``d_head`` components of its OV; every MLP the top
    ``d_head`` components of its ``W_out`` (its whole-matrix score uses all).

    Parameters
    ----------
    model : LoadedModel
    mlp : bool
        Score MLP outputs as writers too.
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
    writers = make_writers(weights, shape, mlp_out=mlp_out)
    readers = make_readers(weights, shape)
    rmat, rnorm = readers.matrix(), readers.norm
    dh = weights.d_head
    c = writers.directions.shape[1]
    whole = np.full((len(writers.names), len(readers.names)), np.nan, np.float32)
    component = np.full((*whole.shape, c), np.nan, np.float32)
    with torch.no_grad():
        for layer in range(shape.n_layers - 1):
            wsel = np.nonzero(writers.layers == layer)[0]
            first = int(np.searchsorted(readers.layers, layer, side="right"))  # later readers: a suffix
            w, cpt = _scores(writers, wsel, rmat[:, first * dh :], rnorm[first:], mlp_whole=False)
            whole[wsel, first:] = w.numpy()
            component[wsel, first:] = cpt.numpy()
        mlps = np.nonzero(writers.is_mlp)[0]
        if len(mlps):  # every MLP against every reader at once; keep the later readers
            later = writers.layers[mlps, None] < readers.layers[None, :]
            whole[mlps] = np.where(later, _mlp_whole(writers, mlps, rmat, rnorm).numpy(), np.nan)
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
        "channel analysis of %s: %d writers x %d readers in %.1f s",
        model.name,
        len(writers.names),
        len(readers.names),
        seconds,
    )
    return ChannelAnalysis(model.name, shape, writers, readers, whole, component, null, settings, seconds)
