"""Per-head OV and QK matrices from a model's weights, as factored matrices, and their SVD.

Conventions (row vectors, as TransformerLens): a head reads ``x`` (a residual
stream row) and writes ``x OV`` with ``OV = W_V W_O`` (``d_model x d_model``,
rank ``d_head``); its attention score between a query row ``x_q`` and a key row
``x_k`` is ``x_q QK x_k^T`` with ``QK = W_Q W_K^T``.

What is folded in, and what is not:

- **Norm weights.** A head reads its input through its layer's ``ln1``. The
  norm's elementwise weight ``w`` multiplies the rows of ``W_Q``, ``W_K`` and
  ``W_V``: ``W -> diag(w) W``. The norm's *scale* (``1/rms(x)`` or
  ``1/std(x)``) depends on the input and is ignored: composition scores are
  ratios of Frobenius norms, and a positive scalar on the receiving side cancels out.
  A LayerNorm also removes the mean of its input; with ``center=True`` (the
  default for LayerNorm models) that projection ``P = I - 11^T/d`` is folded in
  too (``W -> P diag(w) W``), so a sender writing along the all-ones direction
  is, correctly, not read. RMSNorm does not centre. Norm biases and attention
  biases add constants to queries, keys and values; they carry no
  composition and are left out.
- **Norms after attention and on queries and keys** (Gemma 2 and 3). A
  head's output passes the post-attention norm before it reaches the
  residual stream; that norm's gain ``g`` (``1 + w``) is folded into the
  writing side, ``W_O -> W_O diag(g)``, and its input-dependent scale is
  ignored like the reading norm's. The per-head norms of queries and keys
  rescale each query and key vector by a positive number and are ignored
  too: they change no subspace.
- **Grouped-query attention.** Query head ``h`` reads keys and values through
  key/value head ``h // group``; its ``QK`` and ``OV`` use that head's
  ``W_K`` / ``W_V``. Nothing is ungrouped in the weights themselves.
- **Rotary position embeddings** (Llama, SmolLM2) rotate queries and keys by
  an angle proportional to their position. They are ignored: ``QK`` is the
  unrotated bilinear form, i.e. the form at relative position 0. Rotations
  are orthogonal, so the norm of ``QK`` does not change, but which subspaces
  align at larger distances does; scores of Q- and K-composition on rotary
  models are therefore a statement about relative position 0.
- Weights are read from the bridge as they are. With ``processing="fold"``
  TransformerLens has already folded the norm weights (they read as ones) and
  centred the writing weights; folding again is then a no-op.

The SVD of a factored ``A B`` (``A: m x r``, ``B: r x n``) is computed from
two thin QR decompositions and one ``r x r`` SVD, never from the dense
``m x n`` product.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.attribution.norms import norm_form
from circuits.models.load import LoadedModel, hf_module

__all__ = [
    "SVD",
    "Factored",
    "HeadWeights",
    "factored_svd",
    "head_weights",
    "is_layernorm",
    "mlp_out_matrices",
    "ov_matrices",
    "qk_matrices",
    "rank_one_components",
    "single_threaded",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Factored:
    """A (batched) matrix kept as a product ``A @ B``.

    Attributes
    ----------
    A : Tensor
        ``[..., m, r]``.
    B : Tensor
        ``[..., r, n]``.
    """

    A: Tensor
    B: Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.A.shape[:-1], self.B.shape[-1])

    def dense(self) -> Tensor:
        """The full product (for tests and small matrices only)."""
        return self.A @ self.B

    def T(self) -> Factored:
        """The transpose ``B^T A^T``, still factored."""
        return Factored(self.B.transpose(-2, -1), self.A.transpose(-2, -1))

    def __getitem__(self, index: Any) -> Factored:
        return Factored(self.A[index], self.B[index])

    def norm(self) -> Tensor:
        """Frobenius norm over the last two dimensions, from an ``r x r`` Gram product."""
        gram = (self.A.transpose(-2, -1) @ self.A) * (self.B @ self.B.transpose(-2, -1))
        return gram.sum((-2, -1)).clamp_min(0).sqrt()

    def tl(self) -> Any:
        """The same matrix as a TransformerLens ``FactoredMatrix``."""
        from transformer_lens.FactoredMatrix import FactoredMatrix

        return FactoredMatrix(self.A, self.B)


@dataclass(frozen=True)
class SVD:
    """Thin SVD ``M = U diag(S) Vh`` of a batch of matrices.

    ``U`` is ``[..., m, r]``, ``S`` ``[..., r]`` (descending), ``Vh`` ``[..., r, n]``.
    In the row-vector convention the rows of ``Vh`` are the *output* directions
    a sender writes (residual-stream directions) and the columns of ``U`` the
    input directions it reads.
    """

    U: Tensor
    S: Tensor
    Vh: Tensor

    def component(self, i: int) -> Factored:
        """Rank-1 component ``i``: ``S_i u_i v_i^T`` as a factored ``m x 1 @ 1 x n``."""
        return Factored((self.U[..., :, i] * self.S[..., i, None])[..., None], self.Vh[..., i, None, :])


@dataclass(frozen=True)
class HeadWeights:
    """Attention weights of every layer with the reading norm folded in.

    ``W_Q`` ``[L, H, d, dh]``, ``W_K``/``W_V`` ``[L, KV, d, dh]``, ``W_O``
    ``[L, H, dh, d]``; ``norm_weight`` ``[L, d]`` is what was folded;
    ``centered`` says whether the LayerNorm mean removal was folded too.
    """

    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor
    norm_weight: Tensor
    centered: bool
    n_heads: int
    n_kv_heads: int

    @property
    def group(self) -> int:
        return self.n_heads // self.n_kv_heads

    @property
    def n_layers(self) -> int:
        return int(self.W_Q.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.W_Q.shape[2])

    @property
    def d_head(self) -> int:
        return int(self.W_Q.shape[3])

    def kv_of_query(self) -> Tensor:
        """Index of the key/value head each query head reads: ``h // group``."""
        return torch.arange(self.n_heads) // self.group


def is_layernorm(model: LoadedModel) -> bool:
    """Whether the model's attention norm is a LayerNorm (which centres its input)."""
    inner = hf_module(model.bridge.blocks[0].ln1)
    return isinstance(inner, torch.nn.LayerNorm) or (
        "layernorm" in type(inner).__name__.lower() and "rms" not in type(inner).__name__.lower()
    )


def head_weights(
    model: LoadedModel,
    *,
    fold_norm: bool = True,
    center: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> HeadWeights:
    """Read every layer's ``W_Q, W_K, W_V, W_O`` with ``ln1`` folded in (see module docstring).

    Parameters
    ----------
    model : LoadedModel
    fold_norm : bool
        Fold the norm's elementwise weight into the reading matrices.
    center : bool, optional
        Fold a LayerNorm's mean removal in too; default: whether the norm is a
        LayerNorm. Ignored (False) for RMSNorm models.
    dtype : torch.dtype
        Precision of the returned tensors.
    """
    layernorm = is_layernorm(model)
    center = layernorm if center is None else (center and layernorm)
    qs, ks, vs, os_, ws = [], [], [], [], []
    with torch.no_grad():
        for block in model.bridge.blocks:
            attn = block.attn
            d = int(attn.W_Q.shape[1])
            form = norm_form(block.ln1)  # the gain is 1 + w in Gemma's norms
            w = torch.ones(d) if form is None or not fold_norm else form.gain.detach().float().cpu()
            fold = torch.diag(w)
            if center:
                fold = (torch.eye(d) - torch.full((d, d), 1.0 / d)) @ fold
            qs.append(fold @ attn.W_Q.detach().float().cpu())
            ks.append(fold @ attn.W_K.detach().float().cpu())
            vs.append(fold @ attn.W_V.detach().float().cpu())
            W_O = attn.W_O.detach().float().cpu()
            post = norm_form(block.ln1_post) if fold_norm and hasattr(block, "ln1_post") else None
            os_.append(W_O if post is None else W_O * post.gain.detach().float().cpu())
            ws.append(w)
    W_Q, W_K, W_V, W_O, norm_weight = (torch.stack(t).to(dtype) for t in (qs, ks, vs, os_, ws))
    return HeadWeights(
        W_Q=W_Q,
        W_K=W_K,
        W_V=W_V,
        W_O=W_O,
        norm_weight=norm_weight,
        centered=bool(center),
        n_heads=model.n_heads,
        n_kv_heads=model.n_kv_heads,
    )


def ov_matrices(weights: HeadWeights) -> Factored:
    """Every query head's OV circuit ``W_V^{h // g} W_O^h`` as ``Factored`` ``[L, H, d, d]``."""
    return Factored(weights.W_V[:, weights.kv_of_query()], weights.W_O)


def qk_matrices(weights: HeadWeights) -> Factored:
    """Every query head's QK circuit ``W_Q^h (W_K^{h // g})^T`` as ``Factored`` ``[L, H, d, d]``."""
    return Factored(weights.W_Q, weights.W_K[:, weights.kv_of_query()].transpose(-2, -1))


def mlp_out_matrices(model: LoadedModel, *, dtype: torch.dtype = torch.float32) -> Float[Tensor, "L d_mlp d"]:
    """Every MLP's output matrix ``W_out`` (``hidden -> residual``), the MLP's sender matrix.

    An MLP is non-linear, so only its output side enters composition: the
    MLP writes into the residual stream through ``W_out``'s row space.
    """
    with torch.no_grad():
        return torch.stack([b.mlp.W_out.detach().float().cpu() for b in model.bridge.blocks]).to(dtype)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """Run small batched decompositions on one thread.

    Threaded LAPACK on many small matrices (QR, SVD, eigh) was 10-100x slower
    than one thread on a busy two-core machine; matrix products are unaffected.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def factored_svd(matrix: Factored) -> SVD:
    """Thin SVD of ``A @ B`` from QR factors: ``A = Qa Ra``, ``B^T = Qb Rb``, SVD of ``Ra Rb^T``.

    The result has ``r = A.shape[-1]`` components (zero singular values
    included when ``A @ B`` has lower rank).
    """
    with single_threaded():
        qa, ra = torch.linalg.qr(matrix.A)
        qb, rb = torch.linalg.qr(matrix.B.transpose(-2, -1))
        u, s, vh = torch.linalg.svd(ra @ rb.transpose(-2, -1))
    return SVD(qa @ u, s, vh @ qb.transpose(-2, -1))


def rank_one_components(svd: SVD) -> Factored:
    """All rank-1 components ``S_i u_i v_i^T`` as ``Factored`` ``[..., r, m, n]``; they sum to the matrix."""
    A = (svd.U * svd.S[..., None, :]).transpose(-2, -1)[..., :, :, None]
    return Factored(A, svd.Vh[..., :, None, :])
