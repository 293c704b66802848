"""Applying edits to a forward: node edits as hooks, edge edits as receiver-input deltas.

- :func:`node_hooks`: forward hooks for the node edits of an edit list. A
  head's output is ``z_h W_O^h`` (read and written at ``blocks.{l}.attn.hook_z``,
  bias excluded, as the harness defines a head sender), an MLP's output is
  ``blocks.{l}.hook_mlp_out``. Scale, zero, mean and subspace edits work on
  any tokens; counterfactual values need the corrupt tokens of the same batch.
  A subspace edit scales the part of the output along the top ``RANK`` output
  singular directions (a head: of its OV matrix ``W_V^h W_O^h``, norm weight
  folded in as :mod:`circuits.channels.svd` does; they lie in ``W_O^h``'s row
  space, so the edit is exact on ``z``; an MLP: of ``W_out``). Where a norm
  follows the attention block (Gemma), a head's output is what it writes
  through that norm, ``(z_h W_O^h) ⊙ s`` (:meth:`Harness.head_writes`), and
  a head edit swaps that write inside the normalised output while the other
  heads keep theirs, so a node edit still equals cutting its outgoing edges
  (a head cannot take a node edit and edge edits in the same forward there).
- Edge edits ``SRC->DST`` go through the harness's receiver-input deltas
  (:meth:`circuits.attribution.Harness.patched`), as in circuit evaluation:
  receiver ``v`` reads ``in_v + Σ (a_u(ablated) − a_u(current))`` over its
  ablated edges, ``in_v + (F − 1) a_u(current)`` for a scaled one. Node hooks
  run first, so an edge reads its sender's edited output. Reference values
  (means, counterfactual runs) always come from the unedited model.
- :func:`edited_logits`: one forward of a pair batch under a list of edits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.graph import GraphShape
from circuits.mechanisms.edits import Edit
from circuits.mechanisms.lens import run_with_hooks
from circuits.relations.pairs import PairBatch
from circuits.vocab import INPUT, LOGITS, Ablation, InputError, hook_point, parse_node

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["Hook", "edited_logits", "node_hooks"]

Hook = tuple[str, Callable[..., Any]]


# ------------------------------------------------------------------ node edits


def _w_o(model: LoadedModel, layer: int, head: int) -> Tensor:
    return model.bridge.blocks[layer].attn.W_O[head].detach().double()  # [d_head, d]


def _ov_out_directions(model: LoadedModel, layer: int, head: int, cache: dict[str, Any]) -> Tensor:
    """Right singular vectors of head ``head``'s OV matrix, descending: ``[d_head, d_model]``."""
    from circuits.channels.svd import factored_svd, head_weights, ov_matrices

    if "ov" not in cache:
        cache["ov"] = ov_matrices(head_weights(model, dtype=torch.float64))
    return factored_svd(cache["ov"][layer, head]).Vh


def _head_subspace(model: LoadedModel, layer: int, head: int, rank: int, cache: dict[str, Any]) -> Tensor:
    """``M`` with ``z M W_O = (z W_O) V_r^T V_r``: the z-space projection on the top-``rank`` OV outputs."""
    W_O = _w_o(model, layer, head)
    V = _ov_out_directions(model, layer, head, cache)[:rank].to(W_O.device)
    return W_O @ V.T @ V @ torch.linalg.pinv(W_O)


def _mlp_subspace(model: LoadedModel, layer: int, rank: int) -> Tensor:
    """``V_r^T V_r``: the projection on the top-``rank`` right singular vectors of ``W_out``."""
    W_out = model.bridge.blocks[layer].mlp.W_out.detach().double()
    V = torch.linalg.svd(W_out, full_matrices=False).Vh[:rank]
    return V.T @ V


def _reference(
    harness: Harness, tokens: Tensor, heads: set[tuple[int, int]], mlps: set[int], inputs: bool = False
) -> dict[str, Tensor]:
    """Unedited outputs on ``tokens``: heads' ``z`` (``[b, p, d_head]``) and, under ``a{l}.h{h}:write``, what
    they write to the residual (:meth:`Harness.head_writes`), MLP outputs, the input embedding."""
    store: dict[str, Tensor] = {}
    hooks: list[Hook] = []
    model = harness.model
    for layer in sorted({layer for layer, _ in heads}):

        def grab_z(z: Tensor, hook: Any, layer: int = layer) -> Tensor:
            writes = harness.head_writes(layer, z.detach())
            for lay, h in heads:
                if lay == layer:
                    store[f"a{lay}.h{h}"] = z[:, :, h].detach().clone()
                    store[f"a{lay}.h{h}:write"] = writes[:, :, h].clone()
            return z

        hooks.append((hook_point("z", layer), grab_z))
    for layer in sorted(mlps):

        def grab_mlp(out: Tensor, hook: Any, layer: int = layer) -> Tensor:
            store[f"m{layer}"] = out.detach().clone()
            return out

        hooks.append((hook_point("mlp_out", layer), grab_mlp))
    if inputs:

        def grab_input(x: Tensor, hook: Any) -> Tensor:
            store[INPUT] = x.detach().clone()
            return x

        hooks.append((hook_point("resid_pre", 0), grab_input))
    if hooks:
        run_with_hooks(model, tokens.to(model.device), hooks, stop_at=hook_point("final_in"))
    return store


def _check_batch(value: Tensor, x: Tensor, what: str) -> None:
    if tuple(value.shape[:2]) != tuple(x.shape[:2]):
        raise InputError(
            f"{what}: counterfactual values were computed on a batch of shape "
            f"{tuple(value.shape[:2])}, this forward has {tuple(x.shape[:2])}"
        )


def _node_fn(
    model: LoadedModel, edit: Edit, means: Tensor | None, ref: dict[str, Tensor], cache: dict[str, Any]
) -> list[Hook]:
    shape = GraphShape.of(model)
    kind, layer, head, _ = parse_node(edit.node)
    assert layer is not None
    if edit.op == "ablate" and edit.ablation is Ablation.MEAN and means is None:
        raise InputError(f"{edit}: mean ablation needs the mean sender outputs (means=mean_senders(...))")
    if kind == "head":
        assert head is not None
        if edit.op == "subspace":
            keep = torch.eye(int(model.cfg.d_head), dtype=torch.float64) - (1 - edit.factor) * _head_subspace(
                model, layer, head, int(edit.rank or 0), cache
            )
        if cache["harness"].post_attn[layer] is not None:
            return _normed_head_edit(
                cache["harness"], edit, layer, head, means, ref, keep if edit.op == "subspace" else None
            )
        mean_z = None
        if edit.op == "ablate" and edit.ablation is Ablation.MEAN:
            # the head's mean output lies in W_O's row space, so z = mean W_O^+ writes exactly that mean
            mean_out = means[shape.head_sender(layer, head)].double()  # type: ignore[index]
            mean_z = mean_out @ torch.linalg.pinv(_w_o(model, layer, head).to(mean_out.device))

        def on_z(z: Tensor, hook: Any) -> Tensor:
            z = z.clone()
            part = z[:, :, head]
            if edit.op == "scale":
                z[:, :, head] = part * edit.factor
            elif edit.op == "subspace":
                z[:, :, head] = (part.double() @ keep.to(part.device)).to(z.dtype)
            elif edit.ablation is Ablation.ZERO:
                z[:, :, head] = 0.0
            elif edit.ablation is Ablation.MEAN:
                z[:, :, head] = mean_z.to(z.device, z.dtype)  # type: ignore[union-attr]
            else:
                value = ref[edit.node]
                _check_batch(value, z, str(edit))
                z[:, :, head] = value.to(z.device, z.dtype)
            return z

        return [(hook_point("z", layer), on_z)]
    if edit.op == "subspace":
        keep_m = torch.eye(int(model.cfg.d_model), dtype=torch.float64) - (1 - edit.factor) * _mlp_subspace(
            model, layer, int(edit.rank or 0)
        )

    def on_mlp(out: Tensor, hook: Any) -> Tensor:
        if edit.op == "scale":
            return out * edit.factor
        if edit.op == "subspace":
            return (out.double() @ keep_m.to(out.device)).to(out.dtype)
        if edit.ablation is Ablation.ZERO:
            return torch.zeros_like(out)
        if edit.ablation is Ablation.MEAN:
            return means[shape.mlp_sender(layer)].to(out.device, out.dtype).expand_as(out).clone()  # type: ignore[index]
        value = ref[edit.node]
        _check_batch(value, out, str(edit))
        return value.to(out.device, out.dtype).clone()

    return [(hook_point("mlp_out", layer), on_mlp)]


def _normed_head_edit(
    harness: Harness,
    edit: Edit,
    layer: int,
    head: int,
    means: Tensor | None,
    ref: dict[str, Tensor],
    keep: Tensor | None,
) -> list[Hook]:
    """A head edit where a norm follows attention: the head's write is replaced in the normalised output.

    ``z`` is left as it is; at ``hook_attn_out`` the head's write in this
    forward, ``(z_h W_O^h) ⊙ s``, is swapped for the edited one (scaled,
    projected, zero, the mean write, or the counterfactual run's write), so
    the other heads keep theirs and the edit equals removing the head's
    outgoing edges, as it does in a model without that norm.
    """
    store: dict[str, Tensor] = {}

    def keep_z(z: Tensor, hook: Any) -> Tensor:
        store["z"] = z.detach()
        return z

    def on_out(x: Tensor, hook: Any) -> Tensor:
        z = store.pop("z")
        now = harness.head_writes(layer, z)[:, :, head]
        if edit.op == "scale":
            new = now * edit.factor
        elif edit.op == "subspace":
            assert keep is not None
            edited = (z[:, :, head].double() @ keep.to(z.device)).to(z.dtype)
            scale = harness.write_scale(layer, z)
            new = (edited @ harness.layers[layer].W_O[head].to(z.dtype)) * scale
        elif edit.ablation is Ablation.ZERO:
            new = torch.zeros_like(now)
        elif edit.ablation is Ablation.MEAN:
            new = means[harness.shape.head_sender(layer, head)].to(x.device, x.dtype)  # type: ignore[index]
        else:
            new = ref[f"{edit.node}:write"]
            _check_batch(new, x, str(edit))
            new = new.to(x.device, x.dtype)
        return x + (new - now)

    return [(hook_point("z", layer), keep_z), (hook_point("attn_out", layer), on_out)]


def node_hooks(
    model: LoadedModel,
    edits: Sequence[Edit],
    *,
    means: Tensor | None = None,
    corrupt_tokens: Tensor | None = None,
    harness: Harness | None = None,
) -> list[Hook]:
    """Forward hooks ``(hook_name, fn)`` that apply the node edits of ``edits`` (edge edits are skipped).

    Scale, zero and subspace edits, and mean ablations (given ``means``, the
    ``[senders, d_model]`` output of :func:`circuits.attribution.mean_senders`),
    work on any batch of tokens of any length. Counterfactual ablations read
    the unedited model's outputs on ``corrupt_tokens`` (one forward, run here),
    so the hooks then apply only to batches of that shape. Use them with
    ``model.bridge.hooks(fwd_hooks=...)`` or
    :func:`circuits.mechanisms.lens.run_with_hooks`. ``harness``: the
    model's :class:`Harness`, when the caller has one (else one is made).

    >>> import torch
    >>> from circuits import load_model
    >>> from circuits.mechanisms.edits import parse_edits
    >>> from circuits.mechanisms.lens import run_with_hooks
    >>> model = load_model("tiny-llama")
    >>> tokens = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    >>> hooks = node_hooks(model, parse_edits(model, scale=["a1.h0=1", "m2=1"]))
    >>> [name for name, _ in hooks]
    ['blocks.1.attn.hook_z', 'blocks.2.hook_mlp_out']
    >>> bool((run_with_hooks(model, tokens, hooks) == run_with_hooks(model, tokens, [])).all())
    True
    """
    nodes = [e for e in edits if not e.is_edge]
    cf = [e for e in nodes if e.op == "ablate" and e.ablation is Ablation.COUNTERFACTUAL]
    ref: dict[str, Tensor] = {}
    if cf and corrupt_tokens is None:
        raise InputError(f"{cf[0]}: a counterfactual ablation needs the corrupt prompts' tokens")
    heads, mlps = set(), set()
    for e in cf:
        kind, layer, head, _ = parse_node(e.node)
        if kind == "head":
            heads.add((layer, head))
        else:
            mlps.add(layer)
    harness = harness if harness is not None else Harness(model)
    if cf:
        ref = _reference(harness, corrupt_tokens, heads, mlps)  # type: ignore[arg-type]
    cache: dict[str, Any] = {"harness": harness}
    return [hook for e in nodes for hook in _node_fn(model, e, means, ref, cache)]


# ------------------------------------------------------------------ edge edits


class _EdgePlan:
    """The receiver-input deltas of edge edits, for :meth:`Harness.patched`."""

    def __init__(
        self, harness: Harness, edits: Sequence[Edit], means: Tensor | None, corrupt: Tensor | None
    ) -> None:
        self.model = model = harness.model
        self.harness = harness
        self.shape = shape = GraphShape.of(model)
        self.edits = [e for e in edits if e.is_edge]
        self.current: dict[str, Tensor] = {}
        self.fixed: dict[str, Tensor] = {}  # mean and counterfactual values, d-space
        self.by_receiver: dict[tuple[int, str], list[tuple[int | None, Edit]]] = {}
        cf_heads: set[tuple[int, int]] = set()
        cf_mlps: set[int] = set()
        cf_input = False
        for e in self.edits:
            kind, layer, head, qkv = parse_node(e.receiver)  # type: ignore[arg-type]
            if kind == LOGITS:
                key: tuple[int, str] = (shape.n_layers, "logits")
                slot = None
            elif kind == "mlp":
                key, slot = (layer, "mlp"), None  # type: ignore[assignment]
            else:
                key, slot = (layer, qkv), head  # type: ignore[assignment]
            self.by_receiver.setdefault(key, []).append((slot, e))
            if e.op == "ablate" and e.ablation is Ablation.MEAN:
                if means is None:
                    raise InputError(f"{e}: mean ablation needs the mean sender outputs")
                self.fixed[f"mean:{e.node}"] = means[self._sender_index(e.node)]
            if e.op == "ablate" and e.ablation is Ablation.COUNTERFACTUAL:
                if corrupt is None:
                    raise InputError(f"{e}: a counterfactual ablation needs the corrupt prompts' tokens")
                skind, slayer, shead, _ = parse_node(e.node)
                if skind == "head":
                    cf_heads.add((slayer, shead))  # type: ignore[arg-type]
                elif skind == "mlp":
                    cf_mlps.add(slayer)  # type: ignore[arg-type]
                else:
                    cf_input = True
        if cf_heads or cf_mlps or cf_input:
            ref = _reference(harness, corrupt, cf_heads, cf_mlps, cf_input)  # type: ignore[arg-type]
            for name, value in ref.items():  # a head's counterfactual value is its write, not its z
                if parse_node(name.removesuffix(":write"))[0] != "head":
                    self.fixed[f"cf:{name}"] = value
                elif name.endswith(":write"):
                    self.fixed[f"cf:{name.removesuffix(':write')}"] = value
        self.senders = {e.node for e in self.edits}

    def _sender_index(self, name: str) -> int:
        kind, layer, head, _ = parse_node(name)
        if kind == INPUT:
            return 0
        if kind == "head":
            return self.shape.head_sender(layer, head)  # type: ignore[arg-type]
        return self.shape.mlp_sender(layer)  # type: ignore[arg-type]

    def capture_hooks(self) -> list[Hook]:
        """Hooks recording each edited edge's sender's current output (after any node edit)."""
        hooks: list[Hook] = []
        heads: dict[int, list[int]] = {}
        for name in sorted(self.senders):
            kind, layer, head, _ = parse_node(name)
            if kind == "head":
                heads.setdefault(layer, []).append(head)  # type: ignore[arg-type]
            elif kind == "mlp":

                def grab_mlp(out: Tensor, hook: Any, name: str = name) -> Tensor:
                    self.current[name] = out.detach()
                    return out

                hooks.append((hook_point("mlp_out", layer), grab_mlp))
            else:

                def grab_input(x: Tensor, hook: Any) -> Tensor:
                    self.current[INPUT] = x.detach()
                    return x

                hooks.append((hook_point("resid_pre", 0), grab_input))
        for layer, hs in heads.items():

            def grab_z(z: Tensor, hook: Any, layer: int = layer, hs: list[int] = hs) -> Tensor:
                writes = self.harness.head_writes(layer, z.detach())
                for h in hs:
                    self.current[f"a{layer}.h{h}"] = writes[:, :, h]
                return z

            hooks.append((hook_point("z", layer), grab_z))
        return hooks

    def _contribution(self, e: Edit) -> Tensor:
        current = self.current[e.node]
        if e.op == "scale":
            return (e.factor - 1.0) * current
        if e.ablation is Ablation.ZERO:
            return -current
        value = self.fixed[("mean:" if e.ablation is Ablation.MEAN else "cf:") + e.node]
        if e.ablation is Ablation.COUNTERFACTUAL:
            _check_batch(value, current, str(e))
        return value.to(current.device, current.dtype) - current

    def delta(self, layer: int, kind: str) -> Tensor | None:
        items = self.by_receiver.get((layer, kind))
        if not items:
            return None
        first = self._contribution(items[0][1])
        if kind in ("q", "k", "v"):
            n = self.shape.n_heads if kind == "q" else self.shape.n_kv_heads
            out = first.new_zeros(*first.shape[:2], n, first.shape[-1])
            for slot, e in items:
                out[:, :, slot] += self._contribution(e)
            return out
        out = first.new_zeros(first.shape)
        for _, e in items:
            out += self._contribution(e)
        return out


def edited_logits(
    harness: Harness,
    batch: PairBatch,
    edits: Sequence[Edit],
    *,
    means: Tensor | None = None,
) -> Tensor:
    """Last-position logits ``[batch, vocab]`` of ``batch``'s clean prompts under ``edits`` (one forward).

    Counterfactual values come from ``batch.corrupt`` (one reference forward
    of the unedited model); ``means`` (``[senders, d]``) serve mean ablations.
    With no edits this is the clean forward.
    """
    model = harness.model
    device = model.device
    tokens, last = batch.clean.to(device), batch.last.to(device)
    corrupt = batch.corrupt.to(device)
    hooks = node_hooks(model, edits, means=means, corrupt_tokens=corrupt, harness=harness)
    with torch.no_grad():
        if not any(e.is_edge for e in edits):
            return harness.last_logits(harness.run_to_final(tokens, hooks), last).float()
        plan = _EdgePlan(harness, edits, means, corrupt)
        normed = {
            e.node
            for e in edits
            if not e.is_edge
            and parse_node(e.node)[0] == "head"
            and harness.post_attn[int(parse_node(e.node)[1] or 0)] is not None
        }
        if normed & plan.senders:
            raise InputError(
                f"{sorted(normed & plan.senders)[0]}: in a model with a norm after attention a head "
                "cannot take a node edit and edge edits in one forward; give them separately"
            )
        with model.bridge.hooks(fwd_hooks=[*hooks, *plan.capture_hooks()]):
            return harness.patched(tokens, plan.delta, last).float()
