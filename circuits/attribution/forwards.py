"""The forwards a harness runs: stopped at the final norm, resumed at a layer, after a cached prefix.

:class:`Forwards` holds a loaded model's TransformerLens bridge and runs it
under hooks. A forward ends at the final norm's input (:meth:`Forwards.run_to_final`;
the engine reads only each prompt's last position, so the unembedding of every
other position is skipped), a forward given a residual stream resumes at that
layer without running the blocks below it, and while :meth:`Forwards.sharing`
holds a :class:`~circuits.attribution.prefix.SharedPrefix` every forward runs the
positions after each row's cached prefix only.
:class:`~circuits.attribution.harness.Harness` adds the graph's senders and
receivers on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from circuits.graph import GraphShape
from circuits.vocab import InputError, hook_point

if TYPE_CHECKING:
    from circuits.attribution.prefix import SharedPrefix
    from circuits.models import LoadedModel

__all__ = ["Forwards", "frozen_weights"]


@contextlib.contextmanager
def frozen_weights(module: torch.nn.Module) -> Iterator[None]:
    """Turn off weight gradients: the engine only differentiates activations."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class Forwards:
    """A loaded model's hooked forwards (the base of :class:`~circuits.attribution.harness.Harness`)."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.bridge = model.bridge
        self.shape = GraphShape.of(model)
        self.prefix: SharedPrefix | None = None
        self._check_architecture()

    def _check_architecture(self) -> None:
        names = set(self.bridge.hook_dict)
        needed = [hook_point("resid_pre", 0), hook_point("final_in")]
        for layer in range(self.shape.n_layers):
            needed += [hook_point(p, layer) for p in ("z", "q", "k", "v", "mlp_out", "attn_in", "mlp_in")]
        missing = [n for n in needed if n not in names]
        if missing:
            raise InputError(
                f"model {self.model.name!r} lacks the hook points the engine reads "
                f"(pre-norm decoder blocks): missing {missing[:4]}"
            )

    # ------------------------------------------------------------ forwards

    @contextlib.contextmanager
    def sharing(self, prefix: SharedPrefix | None) -> Iterator[None]:
        """Serve every forward's leading positions from ``prefix`` while open (None: full sequences)."""
        before, self.prefix = self.prefix, prefix
        try:
            yield
        finally:
            self.prefix = before

    def _forward_kwargs(self, inputs: Tensor) -> dict[str, Any]:
        if self.prefix is None:
            return {}
        return self.prefix.forward_kwargs(int(inputs.shape[0]), int(inputs.shape[1]), inputs.device)

    @torch.no_grad()
    def key_values(self, tokens: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Every layer's attention keys and values on ``tokens``: ``[batch, n_kv, pos, d_head]`` each."""
        from transformers import DynamicCache

        cache = DynamicCache()
        # TransformerLens 4.3's attention reads its cache as ``layer_past``; transformers 5 passes ``cache``
        with self.sharing(None):
            self.run_to_final(tokens, [], cache=cache, layer_past=cache, use_cache=True)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _dtype(self) -> torch.dtype:
        return next(self.bridge.parameters()).dtype

    def run_to_final(
        self,
        inputs: Tensor,
        hooks: list[tuple[str, Callable[..., Any]]],
        *,
        start_layer: int = 0,
        **forward_kwargs: Any,
    ) -> Float[Tensor, "batch pos d"]:
        """Run the blocks under ``hooks`` and return the final residual stream.

        The forward stops at the final norm's input: the unembedding of every
        position (a ``d_model x vocab`` product per token) is skipped, since the
        engine reads only each prompt's last position (:meth:`last_logits`).
        A float ``inputs`` is the residual stream entering ``start_layer``.
        """
        store: dict[str, Tensor] = {}
        kwargs = {**self._forward_kwargs(inputs), **forward_kwargs}

        def grab(x: Tensor, hook: Any) -> Tensor:
            store["x"] = x
            raise _StopForwardError

        with self.bridge.hooks(fwd_hooks=[*hooks, (hook_point("final_in"), grab)]):
            with contextlib.suppress(_StopForwardError):
                if inputs.is_floating_point():
                    with self._blocks_from(start_layer):
                        self.bridge(inputs, start_at_layer=start_layer, **kwargs)
                elif start_layer:
                    raise InputError("a forward that starts after layer 0 takes a residual stream")
                else:
                    self.bridge(inputs, **kwargs)
        return store["x"]

    @contextlib.contextmanager
    def _blocks_from(self, start_layer: int) -> Iterator[None]:
        """Skip blocks below ``start_layer`` during a resumed forward.

        TransformerLens's ``start_at_layer`` swaps the given residual stream in
        at that block but still runs every block below it on a throw-away
        input. While this context is open those blocks are replaced in the
        wrapped model's block list by a pass-through, so a forward resumed
        halfway costs half a forward. Where the list cannot be found, every
        block runs (the result is the same).
        """
        holder = self._block_list() if start_layer > 0 else None
        if holder is None:
            yield
            return
        skipped = [holder[i] for i in range(start_layer)]
        for i in range(start_layer):
            holder[i] = _PassThrough()
        try:
            yield
        finally:
            for i, block in enumerate(skipped):
                holder[i] = block

    def _block_list(self) -> torch.nn.ModuleList | None:
        """The wrapped model's ``ModuleList`` that holds the bridge's blocks, in order."""
        if not hasattr(self, "_blocks_holder"):
            blocks = list(self.bridge.blocks)
            found = None
            model = getattr(self.bridge, "original_model", None)
            for module in model.modules() if model is not None else ():
                if (
                    isinstance(module, torch.nn.ModuleList)
                    and len(module) == len(blocks)
                    and all(a is b for a, b in zip(module, blocks, strict=True))
                ):
                    found = module
                    break
            self._blocks_holder = found
        return self._blocks_holder

    def last_logits(self, final: Tensor, last: Tensor) -> Float[Tensor, "batch vocab"]:
        """Logits at each row's ``last`` position from the final residual stream."""
        rows = torch.arange(final.shape[0], device=final.device)
        picked = final[rows, last.to(final.device)][:, None]
        return self.bridge.unembed(self.bridge.ln_final(picked))[:, 0]

    @torch.no_grad()
    def residual_before(self, tokens: Tensor, layer: int) -> Tensor:
        """The residual stream entering ``layer`` on ``tokens``."""
        if layer >= self.shape.n_layers:
            return self.run_to_final(tokens, []).clone()
        name = hook_point("resid_pre", layer)
        store: dict[str, Tensor] = {}

        def grab(x: Tensor, hook: Any) -> Tensor:
            store["x"] = x.detach().clone()
            raise _StopForwardError

        with self.bridge.hooks(fwd_hooks=[(name, grab)]), contextlib.suppress(_StopForwardError):
            self.bridge(tokens, **self._forward_kwargs(tokens))
        return store["x"]


class _PassThrough(torch.nn.Module):
    """Stands in for a skipped block: returns the hidden states it is given."""

    def forward(self, hidden_states: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return hidden_states


class _StopForwardError(Exception):
    """Raised by a hook to end a forward early."""
