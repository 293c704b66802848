"""The transposed Jacobian of a model's normalisation, ``J_norm(x)^T g``, for per-head gradients.

A receiver's gradient with respect to its own copy of the residual stream is
``J_norm(x)^T g`` (see :mod:`circuits.attribution.harness`). Re-running the
norm under autograd on one copy of ``x`` per head is general but costs about
a third of each gradient step; for the two norms decoder models use the
product has a closed form, with ``r = sqrt(mean(x²) + ε)`` and ``ĝ = w ⊙ g``:

- RMSNorm (``y = w ⊙ x / r``): ``ĝ / r − x · Σ(ĝ ⊙ x) / (d r³)``;
- LayerNorm (``y = w ⊙ x̂ + b``, ``x̂ = (x − μ) / σ``, ``σ² = var(x) + ε``):
  ``(ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)) / σ``.

Which formula (and whether the scale is ``w`` or ``1 + w``, as in Gemma) is
not read from class names: :class:`NormVJP` checks each candidate against
autograd on a random probe when it is made, and keeps autograd where none
matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["NormVJP"]

Formula = Callable[[Tensor, Tensor], Tensor]


class NormVJP:
    """``J_norm(x)^T g`` of one norm module: ``x`` is ``[..., d]``, ``g`` ``[..., n, d]`` (one per head)."""

    def __init__(self, norm: torch.nn.Module) -> None:
        inner = getattr(norm, "original_component", None)
        self.module: torch.nn.Module = inner if inner is not None else norm
        self.kind = "autograd"
        self._formula: Formula | None = None
        for kind, formula in self._candidates():
            if self._agrees(formula):
                self.kind, self._formula = kind, formula
                break

    def __call__(self, x: Tensor, grad_out: Tensor) -> Tensor:
        if self._formula is not None:
            return self._formula(x[..., None, :], grad_out)
        return self._autograd(x, grad_out)

    def _autograd(self, x: Tensor, grad_out: Tensor) -> Tensor:
        copies = x[..., None, :].expand_as(grad_out).contiguous().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.module(copies), copies, grad_out)
        return grad

    def _candidates(self) -> list[tuple[str, Formula]]:
        weight = getattr(self.module, "weight", None)
        eps = next(
            (getattr(self.module, n) for n in ("variance_epsilon", "eps") if hasattr(self.module, n)), None
        )
        if not isinstance(weight, Tensor) or weight.ndim != 1 or not isinstance(eps, float):
            return []
        w = weight.detach()
        return [("rms", _rms(w, eps)), ("rms (1 + w)", _rms(1.0 + w, eps)), ("layer", _layer(w, eps))]

    def _agrees(self, formula: Formula) -> bool:
        weight = self.module.weight
        gen = torch.Generator().manual_seed(0)
        d = int(weight.shape[0])
        x = torch.randn(2, 3, d, generator=gen).to(weight) * 3 + 0.5
        g = torch.randn(2, 3, 4, d, generator=gen).to(weight)
        with torch.no_grad():
            want = self._autograd(x, g)
            got = formula(x[..., None, :], g)
        return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-6 * float(want.abs().max())))


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
