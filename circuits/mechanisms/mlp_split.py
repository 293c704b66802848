"""An MLP's input as a sum of upstream components, and its output split exactly into one part per component.

The residual stream an MLP reads at one position is a sum of what the earlier
components wrote there, ``x = Σ_c x_c``:

- ``input``: the token embedding (with the position embedding where the model
  has one), read at ``blocks.0.hook_resid_pre``;
- ``a{l}.h{h}``: each head's output ``z_h W_O^h`` of every earlier layer and of
  the MLP's own layer (a sequential block's MLP reads its own attention; a
  parallel block's does not);
- ``m{l}``: each earlier MLP's output without its output bias;
- ``bias`` (models with biases only): the constants, attention ``b_O`` of the
  layers read and the earlier MLPs' ``b_out``.

With the norm's scale ``r(x)`` and the nonlinearity's per-neuron factor
frozen from the real input, the MLP is linear in the components, so it splits
into one *part* per component that sums exactly to the real output (hook
``mlp_out``):

- gated MLP (Llama, SmolLM2): ``g = act(W_gate n(x))`` from the real input;
  ``MLP_c = W_down (g ⊙ W_up (γ ⊙ x_c / r(x)))``. Biases of the up and down
  projections, if any, go to the ``bias`` part.
- ungated MLP (GPT-2): ``z = W_in n(x) + b_in`` on the real input and the
  per-neuron ratio ``ρ = act(z) / z``; LayerNorm centres each component, so
  ``n_c = γ ⊙ (x_c − mean x_c) / σ(x)`` and ``MLP_c = W_out (ρ ⊙ W_in n_c)``.
  The ``bias`` part holds ``W_out (ρ ⊙ (W_in β + b_in)) + b_out`` (``β`` the
  norm's bias) plus, for the neurons with ``|z| < 1e-6`` where the ratio is
  undefined (their ``ρ`` is set to 0), ``W_out act(z)``: the sum stays exact.

:func:`decompose` computes the parts of one layer as one batched product over
all components; :func:`input_components` captures, in one forward, what the
components wrote at the ``last`` position or at the last subject token
(``position="subject"``). :mod:`circuits.mechanisms.mlp_parts` measures the
parts (gains, pushes toward the answer) over a relation's prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuits.mechanisms.lens import FrozenNorm, Prompts, Recorder, run_with_hooks
from circuits.models.load import hf_module
from circuits.records.mlp import POSITIONS, check_position
from circuits.vocab import InputError, head_name, hook_point, mlp_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = [
    "POSITIONS",
    "capture_inputs",
    "check_layers",
    "check_position",
    "decompose",
    "gains",
    "input_components",
    "upstream_components",
]

_SMALL_Z = 1e-6  # |pre-activation| below which a neuron's ratio act(z)/z is not used
_SMALL_X = 1e-6  # ‖x_c‖ / ‖x‖ below which a component's gain is undefined


# ------------------------------------------------------------ checks


def check_layers(model: LoadedModel, layers: Sequence[int] | None) -> list[int]:
    """Sorted distinct layers (all when ``None``), each checked against the model's depth."""
    n_layers = int(model.n_layers)
    if layers is None:
        return list(range(n_layers))
    chosen = sorted({int(layer) for layer in layers})
    if not chosen:
        raise InputError(f"no layers to decompose; {model.name} has layers 0-{n_layers - 1}")
    for layer in chosen:
        if not 0 <= layer < n_layers:
            raise InputError(f"layer {layer} is out of range; {model.name} has layers 0-{n_layers - 1}")
    return chosen


# ------------------------------------------------------------ the decomposition


def _activation(model: LoadedModel, layer: int) -> Any:
    inner = getattr(model.bridge.blocks[layer].mlp, "original_component", None)
    for name in ("act_fn", "act", "activation_fn"):
        fn = getattr(inner, name, None)
        if callable(fn):
            return fn
    raise InputError(f"cannot find the activation function of the MLP in layer {layer} of {model.name}")


def _float(t: Any) -> Tensor | None:
    return None if t is None else t.detach().float()


def decompose(model: LoadedModel, layer: int, components: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """The MLP of ``layer`` split into one part per input component, plus its constant part.

    ``components`` is ``[n, C, d_model]`` (what each upstream component wrote
    at the position, summing to the MLP's input), ``x`` the real input
    ``[n, d_model]`` whose norm scale and nonlinearity are frozen. Returns
    ``(parts [n, C, d_model], constant [n, d_model])`` with ``parts.sum(1) +
    constant`` the MLP's output. The constant holds the norm's bias, the
    projections' biases and the neurons whose ratio ``act(z) / z`` is
    undefined; it is zero for a model without biases.
    """
    block = model.bridge.blocks[layer]
    mlp = block.mlp
    W_in, W_out = mlp.W_in.detach().float(), mlp.W_out.detach().float()  # [d, m], [m, d]
    W_gate = _float(getattr(mlp, "W_gate", None))
    b_in, b_out, b_gate = (_float(getattr(mlp, n, None)) for n in ("b_in", "b_out", "b_gate"))
    beta = _float(getattr(hf_module(block.ln2), "bias", None))
    act = _activation(model, layer)
    x = x.float()
    norm = FrozenNorm(block.ln2, x)
    with torch.no_grad():
        normed = norm(x) + (0 if beta is None else beta)  # the norm's real output
        pre = normed @ W_in + (0 if b_in is None else b_in)  # [n, m]
        if W_gate is not None:
            factor = act(normed @ W_gate + (0 if b_gate is None else b_gate))
            leftover = torch.zeros_like(factor)
        else:
            out = act(pre)
            small = pre.abs() < _SMALL_Z
            factor = torch.where(
                small, torch.zeros_like(out), out / torch.where(small, torch.ones_like(pre), pre)
            )
            leftover = torch.where(small, out, torch.zeros_like(out))
        hidden = torch.einsum("ncd,dm->ncm", norm(components, per_component=True), W_in) * factor[:, None]
        parts = hidden @ W_out
        fixed = torch.zeros_like(W_in[0])
        if beta is not None:
            fixed = fixed + beta @ W_in
        if b_in is not None:
            fixed = fixed + b_in
        constant = (factor * fixed + leftover) @ W_out
        if b_out is not None:
            constant = constant + b_out
    return parts, constant


def gains(parts: Tensor, components: Tensor, x: Tensor) -> Tensor:
    """``[n, C]`` gains ``⟨part_c, x_c⟩ / ‖x_c‖²``; NaN where ``‖x_c‖ < 1e-6 ‖x‖`` (nothing written).

    >>> x_c = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    >>> gains(torch.tensor([[[-0.5, -1.0], [3.0, 0.0]]]), x_c, x_c.sum(1)).tolist()
    [[-0.5, nan]]
    """
    sq = components.pow(2).sum(-1)
    defined = sq.sqrt() >= _SMALL_X * x.norm(dim=-1, keepdim=True)
    ratio = (parts * components).sum(-1) / sq.clamp_min(1e-30)
    return torch.where(defined, ratio, torch.full_like(ratio, float("nan")))


def _positions(prompts: Prompts, position: str) -> Tensor:
    if check_position(position) == "last":
        return prompts.last.clone()
    return torch.tensor([int(r.last_subject) for r in prompts.roles], dtype=torch.long)


def capture_inputs(model: LoadedModel, prompts: Prompts, position: str, upto: int) -> dict[str, Tensor]:
    """One forward: what the decomposition reads at ``position`` (and the subject movement at ``last``)."""
    pos = _positions(prompts, position)
    rec = Recorder(prompts.rows())
    at = rec.at
    hooks = [(hook_point("resid_pre", 0), at("input", pos)), (hook_point("final_in"), at("final", pos))]
    for layer in range(int(model.n_layers)):
        hooks += [
            (hook_point("z", layer), at(f"z{layer}", pos)),
            (hook_point("v", layer), rec.whole(f"v{layer}")),
            (hook_point("pattern", layer), rec.query_row(f"p{layer}", prompts.last)),
        ]
        if layer <= upto:
            hooks += [
                (hook_point("mlp_in", layer), at(f"x{layer}", pos)),
                (hook_point("mlp_out", layer), at(f"m{layer}", pos)),
            ]
    run_with_hooks(model, prompts.tokens.to(model.device), hooks)
    return rec.store


def _constants(model: LoadedModel) -> tuple[list[Tensor | None], list[Tensor | None], bool]:
    """Attention ``b_O`` and MLP ``b_out`` per layer, and whether the model has any bias at all."""
    b_O = [_float(getattr(block.attn, "b_O", None)) for block in model.bridge.blocks]
    b_out = [_float(getattr(block.mlp, "b_out", None)) for block in model.bridge.blocks]
    others = [
        getattr(block.mlp, "b_in", None) is not None
        or getattr(hf_module(block.ln2), "bias", None) is not None
        for block in model.bridge.blocks
    ]
    has = any(b is not None for b in b_O) or any(b is not None for b in b_out) or any(others)
    return b_O, b_out, has


def upstream_components(model: LoadedModel, store: dict[str, Tensor], layer: int) -> tuple[list[str], Tensor]:
    """Names and ``[n, C, d]`` outputs of the components the MLP of ``layer`` reads."""
    bridge = model.bridge
    b_O, b_out, has_bias = _constants(model)
    own = 0 if model.parallel else 1  # a sequential block's MLP reads its own layer's heads
    names, parts = ["input"], [store["input"][:, None]]
    for source in range(layer + own):
        W_O = bridge.blocks[source].attn.W_O.detach().float()  # [heads, d_head, d]
        parts.append(torch.einsum("nhe,hed->nhd", store[f"z{source}"], W_O))
        names += [head_name(source, h) for h in range(int(model.n_heads))]
    for source in range(layer):
        out = store[f"m{source}"]
        parts.append((out - b_out[source] if b_out[source] is not None else out)[:, None])
        names.append(mlp_name(source))
    if has_bias:
        total = torch.zeros_like(store["input"][0])
        for source in range(layer + own):
            if b_O[source] is not None:
                total = total + b_O[source]
        for source in range(layer):
            if b_out[source] is not None:
                total = total + b_out[source]
        parts.append(total.expand_as(store["input"])[:, None])
        names.append("bias")
    return names, torch.cat(parts, 1)


def input_components(
    model: LoadedModel,
    prompts: Prompts,
    layer: int,
    *,
    position: str = "last",
) -> tuple[list[str], Tensor, Tensor]:
    """The components of the MLP input of ``layer`` at ``position``: names, ``[n, C, d]`` and the real input.

    ``components.sum(1)`` is the residual stream the MLP's norm reads (hook
    ``mlp_in``), up to float rounding.
    """
    (layer,) = check_layers(model, [layer])
    store = capture_inputs(model, prompts, position, layer)
    names, components = upstream_components(model, store, layer)
    return names, components, store[f"x{layer}"]
