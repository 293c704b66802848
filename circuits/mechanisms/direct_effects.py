"""Direct effects at the last position: what each component writes into the answer's logit.

The final residual stream at the last position is an exact sum of component
outputs (the input embedding, every head ``z_h W_O^h`` (times the scale of the
norm after attention where there is one, :meth:`~circuits.attribution.harness.Harness.head_writes`),
every MLP, and the
attention output biases, kept as one ``bias`` term). Through the final norm
with its scale frozen from the real run (:class:`~circuits.mechanisms.lens.FrozenNorm`)
and the unembedding, each component gets a *direct effect* on any logit; with
the final norm's bias and the unembedding bias as a constant, the effects add up
to the model's logits exactly.

A direction ``u`` turns effects into numbers: ``answer`` is the answer's
unembedding centred over the vocabulary (``W_U[:, a] - mean_j W_U[:, j]``, the
centred logit), ``logit-diff`` is ``W_U[:, a] - W_U[:, a']`` with ``a'`` the
counterfactual prompt's answer. Because the frozen norm is linear, the effect of
a component ``c`` is ``c · e`` with ``e`` the direction pulled back through the
norm (one vector per prompt).

Per-source attribution (Chughtai et al. 2024) splits a head's direct effect by
the position it reads: ``DLA(h, s) = A_h[last, s] · (v_s W_O^h) · e``, where
``v_s`` is the value of the key/value head that query head ``h`` reads
(grouped-query attention natively: no key/value head is copied). It sums over
``s`` to the head's direct effect because ``z_h = Σ_s A_h[last, s] v_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.mechanisms.lens import FrozenNorm, Prompts, Recorder, run_with_hooks
from circuits.models.load import hf_module
from circuits.vocab import INPUT, InputError, head_name, hook_point, mlp_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["BIAS", "DIRECTIONS", "LastPosition", "last_position"]

DIRECTIONS = ("answer", "logit-diff")
BIAS = "bias"  # attention output biases: the part of the residual stream no head or MLP wrote


@dataclass
class LastPosition:
    """Component outputs at each prompt's last position, with everything needed to read them as logits.

    ``names`` are ``input``, every head ``a{l}.h{h}``, every MLP ``m{l}`` and
    ``bias``; ``vectors[b, c]`` is component ``c``'s output in prompt ``b``,
    and ``vectors.sum(1)`` is the final residual stream. ``per_source[b, l, h, s]``
    is head ``(l, h)``'s direct effect on the chosen direction from source
    position ``s`` (zero beyond the last position).
    """

    names: list[str]
    vectors: Tensor  # [batch, components, d_model]
    norm: FrozenNorm
    W_U: Tensor  # [d_model, vocab]
    constant: Tensor  # [vocab]: final-norm bias through W_U, plus the unembedding bias
    direction: str
    pulled: Tensor  # [batch, d_model]: e, the direction pulled back through the frozen norm
    per_source: Tensor  # [batch, layers, heads, pos]
    n_layers: int
    n_heads: int

    def index(self, name: str) -> int:
        return self.names.index(name)

    def effects(self) -> Tensor:
        """``[batch, components]``: each component's direct effect on the direction."""
        return torch.einsum("bcd,bd->bc", self.vectors, self.pulled)

    def head_effects(self) -> Tensor:
        """``[batch, layers, heads]``: each head's direct effect (the per-source sum)."""
        start = self.index(head_name(0, 0))
        heads = self.effects()[:, start : start + self.n_layers * self.n_heads]
        return heads.reshape(-1, self.n_layers, self.n_heads)

    def logits(self, vectors: Tensor, tokens: Tensor | None = None) -> Tensor:
        """Direct logits of ``[batch, k, d_model]`` summed components: ``[batch, k, vocab or tokens]``.

        Linear in ``vectors``: no norm bias and no unembedding bias (see :attr:`constant`).
        """
        W_U = self.W_U if tokens is None else self.W_U[:, tokens]
        return self.norm(vectors, per_component=True) @ W_U


def _direction(W_U: Tensor, prompts: Prompts, direction: str) -> Tensor:
    """``[batch, d_model]`` direction ``u`` in the normed residual space."""
    if direction == "answer":
        centred = W_U - W_U.mean(1, keepdim=True)
        return centred[:, prompts.answer].T
    if direction == "logit-diff":
        if prompts.counter is None:
            raise InputError("the logit-diff direction needs each prompt's counterfactual answer")
        return (W_U[:, prompts.answer] - W_U[:, prompts.counter]).T
    raise InputError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")


@torch.no_grad()
def last_position(model: LoadedModel, prompts: Prompts, *, direction: str = "answer") -> LastPosition:
    """One forward over ``prompts``: component outputs at the last position and per-source head effects."""
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    n_layers, n_heads = int(model.n_layers), int(model.n_heads)
    group = n_heads // int(model.n_kv_heads)
    harness = Harness(model)
    bridge = model.bridge
    last = prompts.last
    rec = Recorder(prompts.rows())
    store = rec.store
    hooks = [
        (hook_point("resid_pre", 0), rec.at(INPUT, last)),
        (hook_point("final_in"), rec.at("final", last)),
    ]
    for layer in range(n_layers):
        hooks += [
            (hook_point("z", layer), rec.at(f"z{layer}", last)),
            (hook_point("v", layer), rec.whole(f"v{layer}")),
            (hook_point("pattern", layer), rec.query_row(f"A{layer}", last)),
            (hook_point("attn_out", layer), rec.at(f"attn{layer}", last)),
            (hook_point("mlp_out", layer), rec.at(mlp_name(layer), last)),
        ]
    run_with_hooks(model, prompts.tokens.to(model.device), hooks)

    norm = FrozenNorm(bridge.ln_final, store["final"])
    W_U = bridge.W_U.detach().float()
    u = _direction(W_U, prompts, direction)  # [batch, d]
    # e: the direction pulled back through the (linear, frozen) norm, so that norm(c) · u = c · e
    d_model = W_U.shape[0]
    identity = torch.eye(d_model).expand(len(prompts), d_model, d_model)
    pulled = torch.einsum("bkd,bd->bk", norm(identity, per_component=True), u)

    names, vectors = [INPUT], [store[INPUT]]
    per_source = []
    bias = torch.zeros_like(store[INPUT])
    for layer in range(n_layers):
        W_O = harness.layers[layer].W_O.float()  # [heads, d_head, d]
        heads = harness.head_writes(layer, store[f"z{layer}"])
        names += [head_name(layer, h) for h in range(n_heads)]
        vectors += list(heads.unbind(1))
        bias += store[f"attn{layer}"] - heads.sum(1)
        # per source: A[b, h, s] * v[b, s, kv(h)] · (W_O^h (s_b ⊙ e_b)), s_b the post-attention norm's scale
        scale = harness.write_scale(layer, store[f"z{layer}"])
        read = torch.einsum(
            "hed,bd->bhe", W_O, pulled if scale is None else pulled * scale
        )  # [batch, heads, d_head]
        values = store[f"v{layer}"].repeat_interleave(group, dim=2)  # [batch, pos, heads, d_head]
        per_source.append(store[f"A{layer}"] * torch.einsum("bshe,bhe->bhs", values, read))
    for layer in range(n_layers):
        names.append(mlp_name(layer))
        vectors.append(store[mlp_name(layer)])
    names.append(BIAS)
    stacked = torch.stack([*vectors, bias], dim=1)
    # whatever the hooks did not name (e.g. a model's extra residual terms) joins the bias: the sum is exact
    stacked[:, -1] += store["final"] - stacked.sum(1)
    beta = getattr(hf_module(bridge.ln_final), "bias", None)
    constant = torch.zeros(W_U.shape[1]) if beta is None else beta.detach().float() @ W_U
    b_U = getattr(bridge, "b_U", None)
    if b_U is not None:
        constant = constant + b_U.detach().float()
    return LastPosition(
        names,
        stacked,
        norm,
        W_U,
        constant,
        direction,
        pulled,
        torch.stack(per_source, dim=1),
        n_layers,
        n_heads,
    )
