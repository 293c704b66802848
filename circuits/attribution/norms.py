"""A model's norms: their form, their transposed Jacobian ``J_norm(x)^T g``, and a norm's frozen scale.

A receiver's gradient with respect to its own copy of the residual stream is
``J_norm(x)^T g`` (see :mod:`circuits.attribution.harness`). Re-running the
norm under autograd on one copy of ``x`` per head is general but costs about
a third of each gradient step; for the two norms decoder models use the
product has a closed form, with ``r = sqrt(mean(x²) + ε)`` and ``ĝ = w ⊙ g``:

- RMSNorm (``y = w ⊙ x / r``): ``ĝ / r − x · Σ(ĝ ⊙ x) / (d r³)``;
- LayerNorm (``y = w ⊙ x̂ + b``, ``x̂ = (x − μ) / σ``, ``σ² = var(x) + ε``):
  ``(ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ``.

Which formula (and whether the scale is ``w`` or ``1 + w``, as in Gemma) is
not read from class names: :func:`norm_form` checks each candidate form
against the module's own output on a random probe, and :class:`NormVJP`
keeps autograd where none matches. :class:`NormScale` writes an RMS norm
as ``x ⊙ s(x)``, which splits a normalised sum into its terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from circuits.vocab import InputError

__all__ = ["NormForm", "NormScale", "NormVJP", "norm_form"]

Formula = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class NormForm:
    """What a norm module computes, settled by probing it: ``kind`` ``"rms"`` or ``"layer"``,
    its gain and bias."""

    kind: str
    gain: Tensor  # [d]: w, or 1 + w (Gemma)
    bias: Tensor | None
    eps: float
    one_plus: bool = False  # the gain is 1 + w


def norm_form(norm: torch.nn.Module) -> NormForm | None:
    """The form of a bridge norm component (or a plain module), or ``None`` when no candidate matches it.

    Candidates: RMSNorm with gain ``w`` or ``1 + w``, LayerNorm with gain ``w``
    (and its bias); each is checked against the module on a random probe, so
    nothing rests on class names.
    """
    inner = getattr(norm, "original_component", None)
    module = inner if inner is not None else norm
    weight = getattr(module, "weight", None)
    shape = getattr(module, "normalized_shape", None)
    if weight is None and isinstance(shape, tuple) and len(shape) == 1:  # a norm without a gain: gain 1
        weight = torch.ones(int(shape[0]))
    eps = next((getattr(module, n) for n in ("variance_epsilon", "eps") if hasattr(module, n)), None)
    if not isinstance(weight, Tensor) or weight.ndim != 1 or not isinstance(eps, float):
        return None
    w = weight.detach()
    bias = getattr(module, "bias", None)
    bias = bias.detach() if isinstance(bias, Tensor) else None
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 3, int(w.shape[0]), generator=gen) * 3 + 0.5).to(w)
    with torch.no_grad():
        want = module(x).float()
    tol = 1e-6 * float(want.abs().max())
    for form in (
        NormForm("rms", w, None, eps),
        NormForm("rms", 1.0 + w, None, eps, one_plus=True),
        NormForm("layer", w, bias, eps),
    ):
        if torch.allclose(_apply(form, x.float()), want, rtol=1e-4, atol=tol):
            return form
    return None


def _apply(form: NormForm, x: Tensor) -> Tensor:
    if form.kind == "layer":
        x = x - x.mean(-1, keepdim=True)
    out = x * (x.pow(2).mean(-1, keepdim=True) + form.eps).rsqrt() * form.gain.float()
    return out if form.bias is None else out + form.bias.float()


class NormVJP:
    """``J_norm(x)^T g`` of one norm module: ``x`` is ``[..., d]``, ``g`` ``[..., n, d]`` (one per head)."""

    def __init__(self, norm: torch.nn.Module) -> None:
        inner = getattr(norm, "original_component", None)
        self.module: torch.nn.Module = inner if inner is not None else norm
        self.kind = "autograd"
        self._formula: Formula | None = None
        form = norm_form(norm)
        if form is not None:
            self.kind = "rms (1 + w)" if form.one_plus else form.kind
            self._formula = (_rms if form.kind == "rms" else _layer)(form.gain, form.eps)

    def __call__(self, x: Tensor, grad_out: Tensor) -> Tensor:
        if self._formula is not None:
            return self._formula(x[..., None, :], grad_out)
        return self._autograd(x, grad_out)

    def _autograd(self, x: Tensor, grad_out: Tensor) -> Tensor:
        copies = x[..., None, :].expand_as(grad_out).contiguous().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.module(copies), copies, grad_out)
        return grad


def _rms(w: Tensor, eps: float) -> Formula:
    def vjp(x: Tensor, g: Tensor) -> Tensor:
        x32, wg = x.float(), (w * g).float()
        r = (x32.pow(2).mean(-1, keepdim=True) + eps).rsqrt()
        out = wg * r - x32 * (wg * x32).sum(-1, keepdim=True) * r.pow(3) / x.shape[-1]
        return out.to(g.dtype)

    return vjp


def _layer(w: Tensor, eps: float) -> Formula:
    def vjp(x: Tensor, g: Tensor) -> Tensor:
        x32, wg = x.float(), (w * g).float()
        centred = x32 - x32.mean(-1, keepdim=True)
        inv = (centred.pow(2).mean(-1, keepdim=True) + eps).rsqrt()
        xhat = centred * inv
        out = (wg - wg.mean(-1, keepdim=True) - xhat * (wg * xhat).mean(-1, keepdim=True)) * inv
        return out.to(g.dtype)

    return vjp


class NormScale:
    """A norm that follows a block, written as ``norm(x) = x ⊙ s(x)`` with ``s(x) = g / rms(x)``.

    Gemma-style models normalise the attention block's output before adding it
    to the residual stream. The attention output is a sum over heads, so at a
    fixed scale the norm is linear in it and splits exactly into one term per
    head: head ``h`` writes ``(z_h W_O^h) ⊙ s(Σ_h z_h W_O^h)``, the scale taken
    from the forward being analysed. Only RMS norms have this form (a LayerNorm
    also subtracts the mean); the gain ``g`` (``w`` or ``1 + w``) is settled by
    a probe against the module itself, and a norm that matches neither is an
    error rather than a silent approximation.
    """

    def __init__(self, norm: torch.nn.Module, where: str = "the norm after the attention block") -> None:
        form = norm_form(norm)
        if form is None or form.kind != "rms":
            module = getattr(norm, "original_component", norm)
            raise InputError(
                f"{where} ({type(module).__name__}) is not an RMS norm; the engine splits a "
                "normalised attention output into heads only for RMS norms"
            )
        self.gain, self.eps = form.gain, form.eps

    def __call__(self, x: Tensor) -> Tensor:
        """``s(x)``: ``[..., d]``, the multiplier of ``x`` at its own scale."""
        r = (x.float().pow(2).mean(-1, keepdim=True) + self.eps).rsqrt()
        return (r * self.gain.float()).to(x.dtype)
