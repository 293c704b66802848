"""A channel's two ends: the senders whose output is scored and the receivers that read it.

Words as in :mod:`circuits.graph`: a sender is a head (its OV) or an MLP (its
``W_out``), in sender order; a receiver a head's ``<q>``, ``<k>`` or ``<v>``
input, in receiver order. Every receiver's matrix ``R = A B`` is kept reduced
to ``A~ = A Rb^T`` (``B^T = Qb Rb``), so ``||X R||_F = ||X A~||_F`` for any
``X`` (see :mod:`circuits.channels.composition`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from circuits.channels.svd import Factored, HeadWeights, factored_svd, single_threaded
from circuits.deprecation import old_attributes
from circuits.graph import GraphShape
from circuits.vocab import head_name, mlp_name, qkv_name

__all__ = ["Receivers", "Senders", "make_receivers", "make_senders"]


@old_attributes({"senders": "index"})
@dataclass
class Senders:
    """Senders whose output matrices are scored: heads (OV) and, optionally, MLPs (``W_out``).

    ``index`` ``[n]`` is each one's row in the graph (:meth:`GraphShape.head_sender`).
    ``directions`` ``[n, c, d]`` are the top ``c`` output singular vectors
    (``c = d_head``: all of a head's), ``sigma`` ``[n, c]`` their singular
    values and ``norm`` ``[n]`` the full Frobenius norm. ``gram``
    ``[n_mlps, d, d]`` holds ``W_out^T W_out`` of the MLP senders in order,
    whose kept components do not span their whole output.
    """

    names: list[str]
    layers: np.ndarray
    index: np.ndarray
    is_mlp: np.ndarray
    directions: Tensor
    sigma: Tensor
    norm: Tensor
    gram: Tensor | None = None


@old_attributes({"receivers": "index"})
@dataclass
class Receivers:
    """Receivers with their reduced reading factor ``reduced`` ``[n, d, dh]`` (see module docstring).

    ``index`` ``[n]`` is each one's column in the graph (:meth:`GraphShape.q_receiver`, ...).
    """

    names: list[str]
    kinds: np.ndarray
    layers: np.ndarray
    index: np.ndarray
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


def make_receivers(weights: HeadWeights, shape: GraphShape) -> Receivers:
    """Every q/k/v receiver of ``shape`` with its reduced reading factor, in receiver order."""
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
    return Receivers(names, np.array(kinds), np.array(layers), np.array(receivers), torch.cat(blocks))


def make_senders(weights: HeadWeights, shape: GraphShape, *, mlp_out: Tensor | None = None) -> Senders:
    """Every head (and MLP when ``mlp_out`` is given) of ``shape`` as a sender, in sender order.

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
    return Senders(
        names, np.array(layers), np.array(senders), np.array(is_mlp, dtype=bool), dirs, sigma, norm, gram
    )
