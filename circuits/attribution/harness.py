"""One harness for every scoring and evaluation method.

It reads and writes the computation graph of :mod:`circuits.graph` through the
standard hook points of a TransformerLens 4 ``TransformerBridge``:

- senders: ``blocks.0.hook_resid_pre`` (the input embedding, with position
  embeddings where the model has them), each head's output
  ``z_h W_O^h`` from ``blocks.{l}.attn.hook_z``, and ``blocks.{l}.hook_mlp_out``.
  Where a norm follows the attention block (Gemma 2 and 3: ``ln1_post``), a
  head writes ``(z_h W_O^h) ⊙ s`` with ``s`` the norm's scale on the whole
  attention output in the same forward (:class:`~circuits.attribution.norms.NormScale`):
  each run's scale is frozen into its own sender values, the heads of a
  layer still sum to exactly what the block adds, and a patched forward
  records its own scale. ``hook_mlp_out`` is read after the norm that
  follows the MLP, so an MLP needs no such step;
- receivers: a head's q/k/v input is the residual stream that its own copy of
  the attention norm and projection reads. TransformerLens's split-input mode
  materialises that per-head copy but costs about 25x a forward here, so the
  harness does the same arithmetic itself: the gradient with respect to head
  ``h``'s query input is ``J_norm(x)^T W_Q^h dm/dq_h``, with ``dm/dq_h`` read at
  ``blocks.{l}.attn.hook_q`` and the norm's Jacobian applied in closed form
  (:mod:`circuits.attribution.norms`, each formula checked against autograd
  on the layer's own norm module, which is the fallback); a patched input is
  applied by recomputing ``norm(x + delta_h) W_Q^h + b_Q^h`` at the same hook.
  An MLP's input is read at ``blocks.{l}.ln2.hook_in`` and the logits' input
  at ``ln_final.hook_in``; both feed nothing but their norm.

The residual stream is exactly the sum of the sender outputs (plus constant
biases), which is what makes edge interventions exact.

While :meth:`Harness.sharing` holds a :class:`~circuits.attribution.prefix.SharedPrefix`,
every forward takes the positions after each row's cached prefix only.

The forwards themselves (stopped at the final norm, resumed at a layer, after
a shared prefix) are :class:`~circuits.attribution.forwards.Forwards`, which
:class:`Harness` extends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.attribution.forwards import Forwards, frozen_weights
from circuits.attribution.norms import NormScale, NormVJP
from circuits.vocab import InputError, hook_point

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["DeltaFn", "Harness", "frozen_weights"]

# delta(layer, kind) -> added input: [rows, pos, n, d] for kind q/k/v (one per
# receiver head), [rows, pos, d] for "mlp" and "logits"; None for no change.
DeltaFn = Callable[[int, str], Tensor | None]


@dataclass
class _LayerWeights:
    W_Q: Tensor  # [n_heads, d_model, d_head]
    W_K: Tensor  # [n_kv, d_model, d_head]
    W_V: Tensor
    W_O: Tensor  # [n_heads, d_head, d_model]
    b_Q: Tensor | None  # [n_heads, d_head]
    b_K: Tensor | None
    b_V: Tensor | None
    b_O: Tensor | None  # [d_model]


def _maybe(tensor: Any) -> Tensor | None:
    return None if tensor is None else tensor.detach()


def _nonzero(tensor: Any) -> Tensor | None:
    return None if tensor is None or not bool(tensor.detach().any()) else tensor.detach()


class Harness(Forwards):
    """Hooks a loaded model for sender capture, receiver gradients and patching."""

    def __init__(self, model: LoadedModel) -> None:
        super().__init__(model)
        self.layers = []
        for block in self.bridge.blocks:
            attn = block.attn
            self.layers.append(
                _LayerWeights(
                    attn.W_Q.detach(),
                    attn.W_K.detach(),
                    attn.W_V.detach(),
                    attn.W_O.detach(),
                    _maybe(attn.b_Q),
                    _maybe(attn.b_K),
                    _maybe(attn.b_V),
                    _nonzero(getattr(attn, "b_O", None)),
                )
            )
        # J_norm^T of each attention norm, closed-form where a probe confirms it (attribution.norms)
        self.norm_vjps = [NormVJP(block.ln1) for block in self.bridge.blocks]
        # the scale of a norm after the attention block, where there is one (Gemma 2/3)
        self.post_attn = [
            NormScale(block.ln1_post, f"layer {i}'s norm after attention")
            if hasattr(block, "ln1_post")
            else None
            for i, block in enumerate(self.bridge.blocks)
        ]
        if any(p is not None for p in self.post_attn) and any(w.b_O is not None for w in self.layers):
            raise InputError(
                f"model {model.name!r} normalises an attention output that has a bias; "
                "the engine cannot split that into heads"
            )

    def head_writes(self, layer: int, z: Tensor) -> Tensor:
        """What each head of ``layer`` adds to the residual stream: ``[..., heads, d]`` from ``z``.

        ``z`` is ``[..., heads, d_head]``; a head writes ``z_h W_O^h``, times
        the scale of the norm after the attention block where the model has one
        (taken from these same ``z``, so the heads sum to the block's
        normalised output).
        """
        out = torch.einsum("...he,hed->...hd", z, self.layers[layer].W_O.to(z.dtype))
        post = self.post_attn[layer]
        return out if post is None else out * post(out.sum(-2))[..., None, :]

    def write_scale(self, layer: int, z: Tensor) -> Tensor | None:
        """The scale :meth:`head_writes` multiplies by, ``[..., d]`` (``None``: no norm after attention)."""
        post = self.post_attn[layer]
        if post is None:
            return None
        return post(torch.einsum("...he,hed->...d", z, self.layers[layer].W_O.to(z.dtype)))

    def _sender_hooks(
        self,
        buffer: Tensor,
        input_fn: Callable[[Tensor], Tensor] | None,
        start_layer: int = 0,
        base: Tensor | None = None,
    ) -> list[tuple[str, Callable[..., Any]]]:
        """Hooks writing each sender's output into ``buffer`` [S, batch, pos, d].

        With ``base`` given they write ``base - output`` instead, the difference
        a removed edge adds to its receiver.
        """
        shape = self.shape
        hooks: list[tuple[str, Callable[..., Any]]] = []

        def on_input(x: Tensor, hook: Any) -> Tensor:
            if input_fn is not None:
                x = input_fn(x)
            buffer[0] = x.detach() if base is None else base[0] - x.detach().to(base.device)
            return x

        if start_layer == 0:
            hooks.append((hook_point("resid_pre", 0), on_input))
        for layer in range(start_layer, shape.n_layers):
            first = shape.head_sender(layer, 0)

            def on_z(z: Tensor, hook: Any, first: int = first, layer: int = layer) -> Tensor:
                out = self.head_writes(layer, z.detach()).permute(2, 0, 1, 3)
                stop = first + shape.n_heads
                buffer[first:stop] = out if base is None else base[first:stop] - out.to(base.device)
                return z

            def on_mlp(out: Tensor, hook: Any, index: int = shape.mlp_sender(layer)) -> Tensor:
                buffer[index] = out.detach() if base is None else base[index] - out.detach().to(base.device)
                return out

            hooks.append((hook_point("z", layer), on_z))
            hooks.append((hook_point("mlp_out", layer), on_mlp))
        return hooks

    def new_buffer(self, tokens: Tensor) -> Tensor:
        batch, pos = tokens.shape[:2]
        d = int(self.model.cfg.d_model)
        return torch.zeros(
            self.shape.n_senders,
            batch,
            pos,
            d,
            device=tokens.device,
            dtype=self._dtype(),
            requires_grad=False,
        )

    @torch.no_grad()
    def senders(self, tokens: Tensor) -> tuple[Float[Tensor, "sender batch pos d"], Tensor]:
        """Every sender's output on ``tokens`` (sender-major), and the final residual stream."""
        buffer = self.new_buffer(tokens)
        final = self.run_to_final(tokens, self._sender_hooks(buffer, None))
        return buffer, final

    def input_embedding(self, tokens: Tensor) -> Tensor:
        """The input sender's output (``blocks.0.hook_resid_pre``) on ``tokens``."""
        return self.residual_before(tokens, 0)

    def gradients(
        self,
        tokens: Tensor,
        metric: Callable[[Tensor], Tensor],
        last: Tensor,
        *,
        input_value: Tensor | None = None,
        buffer: Tensor | None = None,
    ) -> tuple[Float[Tensor, "receiver batch pos d"], Tensor]:
        """Gradient of the mean metric with respect to every receiver's input.

        ``input_value`` replaces the input embedding (EAP-IG's interpolation
        points); ``buffer``, when given, receives the senders' outputs.
        Returns the gradients stacked in receiver order [R, batch, pos, d],
        and the metric values.
        """
        shape = self.shape
        store: dict[str, Tensor] = {}
        hooks: list[tuple[str, Callable[..., Any]]] = []

        def set_input(x: Tensor) -> Tensor:
            value = x if input_value is None else input_value.to(x.dtype)
            return value.detach().clone().requires_grad_(True)

        if buffer is not None:
            hooks += self._sender_hooks(buffer, set_input)
        else:
            hooks.append((hook_point("resid_pre", 0), lambda x, hook: set_input(x)))

        def keep(name: str, clone: bool) -> Callable[..., Tensor]:
            def hook(x: Tensor, hook: Any) -> Tensor:
                if clone:
                    x = x.clone()
                store[name] = x
                return x

            return hook

        for layer in range(shape.n_layers):
            for kind in "qkv":
                name = hook_point(kind, layer)
                hooks.append((name, keep(name, False)))
            name = hook_point("attn_in", layer)
            hooks.append((name, keep(name, False)))
            name = hook_point("mlp_in", layer)
            hooks.append((name, keep(name, True)))

        with torch.enable_grad(), frozen_weights(self.bridge):
            final = self.run_to_final(tokens, hooks).clone()
            values = metric(self.last_logits(final, last))
            wanted = []
            for layer in range(shape.n_layers):
                wanted += [store[hook_point(k, layer)] for k in "qkv"]
                wanted.append(store[hook_point("mlp_in", layer)])
            wanted.append(final)
            grads = torch.autograd.grad(values.mean(), wanted, allow_unused=True)
        return self._receiver_grads(store, list(grads), tokens), values.detach()

    def _receiver_grads(self, store: dict[str, Tensor], grads: list[Tensor | None], tokens: Tensor) -> Tensor:
        shape = self.shape
        batch, pos = tokens.shape[:2]
        d = int(self.model.cfg.d_model)
        # every column is written below, so no zero-fill of this large buffer
        out = torch.empty(shape.n_receivers, batch, pos, d, dtype=self._dtype(), device=tokens.device)
        for layer in range(shape.n_layers):
            w = self.layers[layer]
            gq, gk, gv, gmlp = grads[4 * layer : 4 * layer + 4]
            parts = []
            for g, W in ((gq, w.W_Q), (gk, w.W_K), (gv, w.W_V)):
                if g is None:
                    g = torch.zeros(batch, pos, W.shape[0], W.shape[2], dtype=W.dtype)
                parts.append(torch.einsum("bphe,hde->bphd", g, W))
            per_head = torch.cat(parts, dim=2)
            x = store[hook_point("attn_in", layer)].detach()
            cols = shape.attn_receivers(layer)
            out[cols] = self.norm_vjps[layer](x, per_head).permute(2, 0, 1, 3)
            out[shape.mlp_receiver(layer)] = 0.0 if gmlp is None else gmlp
        out[shape.logits_receiver] = 0.0 if grads[-1] is None else grads[-1]
        return out

    # ------------------------------------------------------------ patching

    def patched(
        self,
        tokens_or_resid: Tensor,
        delta: DeltaFn,
        last: Tensor,
        *,
        start_layer: int = 0,
        capture: Tensor | None = None,
        base: Tensor | None = None,
    ) -> Tensor:
        """A forward where receiver inputs get ``delta(layer, kind)`` added.

        Given a float tensor, the input is the residual stream entering
        ``start_layer`` (``blocks.{start_layer}.hook_resid_pre``), so a shared
        clean prefix is not recomputed; given token ids, the forward starts at
        the embedding. ``capture`` (a sender buffer) is filled with the
        senders' current outputs as the forward goes (``base`` minus them when
        ``base`` is given), so ``delta`` may read them. Returns the logits at
        each row's ``last`` position.
        """
        shape = self.shape
        store: dict[str, Tensor] = {}
        hooks: list[tuple[str, Callable[..., Any]]] = []
        if capture is not None:
            hooks += self._sender_hooks(capture, None, start_layer, base)
        for layer in range(start_layer, shape.n_layers):
            ln1 = self.bridge.blocks[layer].ln1
            w = self.layers[layer]

            def keep_x(x: Tensor, hook: Any, layer: int = layer) -> Tensor:
                store[f"x{layer}"] = x
                return x

            hooks.append((hook_point("attn_in", layer), keep_x))
            for kind, W, b in (("q", w.W_Q, w.b_Q), ("k", w.W_K, w.b_K), ("v", w.W_V, w.b_V)):

                def on_proj(
                    out: Tensor,
                    hook: Any,
                    layer: int = layer,
                    kind: str = kind,
                    W: Tensor = W,
                    b: Tensor | None = b,
                    ln1: Any = ln1,
                ) -> Tensor:
                    add = delta(layer, kind)
                    if add is None:
                        return out
                    x = store[f"x{layer}"]
                    normed = _call_unhooked(
                        ln1, x[:, :, None, :] + add.to(x.device)
                    )  # a layer may sit on another GPU
                    new = torch.einsum("bphd,hde->bphe", normed, W)
                    return new + b if b is not None else new

                hooks.append((hook_point(kind, layer), on_proj))

            def on_mlp_in(x: Tensor, hook: Any, layer: int = layer) -> Tensor:
                add = delta(layer, "mlp")
                return x if add is None else x + add.to(x.device)

            hooks.append((hook_point("mlp_in", layer), on_mlp_in))

        with torch.no_grad():
            final = self.run_to_final(tokens_or_resid, hooks, start_layer=start_layer)
            add = delta(shape.n_layers, "logits")
            return self.last_logits(final if add is None else final + add.to(final.device), last)


def _call_unhooked(norm: torch.nn.Module, x: Tensor) -> Tensor:
    """Apply a bridge norm component to a per-head tensor, bypassing its hook points."""
    inner = getattr(norm, "original_component", None)
    return inner(x) if inner is not None else norm(x)
