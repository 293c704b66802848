"""MLP decomposition: how much each upstream component's contribution an MLP amplifies, erases or turns into the answer.

Each MLP's output is split exactly into one part per upstream component
(input, each earlier head, each earlier MLP, bias) with the norm's scale and
the nonlinearity frozen from the real input; the formulas are in
:mod:`circuits.mechanisms.mlp_split`.

Two numbers per part, per prompt, averaged over prompts with a 95% bootstrap
interval:

- **gain** ``a_c = ⟨MLP_c, x_c⟩ / ‖x_c‖²``: the MLP's part along what the
  component wrote, in units of it. ``a_c > 0`` amplifies the component's
  direction, ``a_c < 0`` erases it (``−1`` would remove it exactly). A part
  ``k · x_c`` has gain ``k``. Undefined (left out of the mean) where
  ``‖x_c‖`` is below ``1e-6 ‖x‖``, as for a bias that is zero.
- **push** toward the answer: the part's direct effect on the answer's
  centred logit, ``FrozenNorm(ln_final, x_final)(MLP_c) · (W_U[:, answer] −
  mean_v W_U[:, v])`` with ``x_final`` the final residual stream at the same
  position (the final norm's scale frozen, no bias; centring over the
  vocabulary removes every constant shift). The parts' pushes add up to the
  whole MLP's direct push.

**Subject-moving heads** answer which heads' information the later MLPs act
on: the heads whose output at the ``last`` position carries the most from the
subject's positions, ``‖Σ_{s ∈ subject} A_h[last, s] · v_s W_O^h‖`` averaged
over prompts (grouped-query attention: query head ``h`` reads key/value head
``h // (n_heads / n_kv_heads)``). For the top heads the result lists their
parts' gain and push in every decomposed MLP that reads them.

The decomposition runs at the ``last`` position (where the answer is
predicted) or at the last subject token (``position="subject"``). One forward
caches what is needed at that position.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.mechanisms.lens import FrozenNorm, Prompts
from circuits.mechanisms.mlp_split import (
    capture_inputs,
    check_layers,
    check_position,
    decompose,
    gains,
    upstream_components,
)
from circuits.progress import progress_bar
from circuits.relations.roles import role_positions
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import InputError, head_name, mlp_name

__all__ = [
    "ComponentEffect",
    "LayerDecomposition",
    "MLPDecomposition",
    "MovingHead",
    "MovingPart",
    "mlp_decomposition",
]

MOVING_HEADS = 5  # subject-moving heads whose parts are followed through the later MLPs


# ------------------------------------------------------------ results


@dataclass(frozen=True)
class ComponentEffect:
    """One component's part in one MLP: its gain and push (means over prompts), and its size."""

    name: str
    gain: Interval
    push: Interval
    norm: float  # mean ‖x_c‖: how much the component wrote at the position

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gain": self.gain.as_dict(5),
            "push": self.push.as_dict(5),
            "norm": round(self.norm, 5),
        }


@dataclass
class LayerDecomposition:
    """The parts of one MLP: every component's gain and push, the whole MLP's push, the sum's residual."""

    layer: int
    components: list[ComponentEffect]
    total_push: Interval  # the whole MLP's direct push (the sum of the parts')
    residual: float  # max |Σ parts − real output| over prompts and dimensions
    relative_residual: float  # the same over max |real output|

    def component(self, name: str) -> ComponentEffect:
        for c in self.components:
            if c.name == name:
                return c
        raise InputError(f"MLP {self.layer} reads no component {name!r}")

    def by_push(self) -> list[ComponentEffect]:
        """Components by mean push, most toward the answer first."""
        return sorted(self.components, key=lambda c: -c.push.value)

    def by_gain(self, *, min_share: float = 0.05) -> list[ComponentEffect]:
        """Components by |mean gain|; only those that wrote at least ``min_share`` of the largest norm."""
        largest = max((c.norm for c in self.components), default=0.0)
        sized = [c for c in self.components if c.norm >= min_share * largest and np.isfinite(c.gain.value)]
        return sorted(sized, key=lambda c: -abs(c.gain.value))

    def as_dict(self, top: int = 10, keep: set[str] | None = None) -> dict[str, Any]:
        """The record of this MLP; ``keep`` limits ``components`` to those names (all by default)."""
        return {
            "layer": self.layer,
            "mlp": mlp_name(self.layer),
            "total_push": self.total_push.as_dict(5),
            "residual": float(f"{self.residual:.3g}"),
            "relative_residual": float(f"{self.relative_residual:.3g}"),
            "top_by_push": [c.name for c in self.by_push()[:top]],
            "top_by_gain": [c.name for c in self.by_gain()[:top]],
            "n_components": len(self.components),
            "components": [c.as_dict() for c in self.components if keep is None or c.name in keep],
        }


@dataclass(frozen=True)
class MovingHead:
    """How much a head moves from the subject's positions to the last position: mean ‖Σ_s A v W_O‖."""

    head: str
    moved: Interval

    def as_dict(self) -> dict[str, Any]:
        return {"head": self.head, "moved": self.moved.as_dict(5)}


@dataclass(frozen=True)
class MovingPart:
    """A subject-moving head's part in a later MLP."""

    head: str
    layer: int
    gain: Interval
    push: Interval

    def as_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "layer": self.layer,
            "gain": self.gain.as_dict(5),
            "push": self.push.as_dict(5),
        }


@dataclass
class MLPDecomposition:
    """Per decomposed MLP the parts of its input components; the subject-moving heads and their parts."""

    model: str
    relation: str
    template: str
    n_layers: int
    n_prompts: int
    position: str
    layers: list[LayerDecomposition]
    moving_heads: list[MovingHead]  # every head, most moving first
    moving_parts: list[MovingPart]  # the top moving heads' parts in the decomposed MLPs that read them
    moving_total_push: dict[str, Interval] = field(default_factory=dict)  # per top head, Σ over those MLPs
    n_moving: int = MOVING_HEADS
    seconds: float = 0.0
    n_boot: int = DEFAULT_BOOT
    seed: int = 0

    def layer(self, layer: int) -> LayerDecomposition:
        for d in self.layers:
            if d.layer == layer:
                return d
        raise InputError(f"layer {layer} was not decomposed; decomposed: {[d.layer for d in self.layers]}")

    def top_moving(self) -> list[str]:
        return [h.head for h in self.moving_heads[: self.n_moving]]

    def parts_of(self, head: str) -> list[MovingPart]:
        return [p for p in self.moving_parts if p.head == head]

    def strongest(self, key: str, n: int) -> set[str]:
        """The ``n`` components with the largest |mean ``key``| (push or gain) in any decomposed MLP."""
        best: dict[str, float] = {}
        for d in self.layers:
            for c in d.by_gain() if key == "gain" else d.components:
                value = abs(getattr(c, key).value)
                if np.isfinite(value):
                    best[c.name] = max(best.get(c.name, 0.0), value)
        return set(sorted(best, key=lambda name: -best[name])[:n])

    @property
    def residual(self) -> float:
        """The largest relative residual of the sum over the decomposed layers."""
        return max((d.relative_residual for d in self.layers), default=0.0)

    def as_dict(self, top: int = 10) -> dict[str, Any]:
        """The record; each MLP lists only the notable components, so the file stays small: the subject-moving
        heads and the ``2 * top`` components with the largest |push|, and the ``top`` with the largest |gain|,
        in any MLP."""
        keep = set(self.top_moving()) | self.strongest("push", 2 * top) | self.strongest("gain", top)
        return {
            "analysis": "mlp",
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "n_layers": self.n_layers,
            "n_prompts": self.n_prompts,
            "position": self.position,
            "gain": "<MLP_c, x_c> / |x_c|^2: the MLP's part for component c along what c wrote (> 0 amplifies, "
            "< 0 erases); mean over prompts, 95% bootstrap interval",
            "push": "the part's direct effect on the answer's centred logit through the frozen final norm",
            "components_listed": f"the subject-moving heads and the {2 * top} components with the largest |push| "
            f"and the {top} with the largest |gain| in any MLP",
            "layers": [d.as_dict(top, keep) for d in self.layers],
            "moving_heads": [h.as_dict() for h in self.moving_heads],
            "top_moving": self.top_moving(),
            "moving_parts": [p.as_dict() for p in self.moving_parts],
            "moving_total_push": {h: iv.as_dict(5) for h, iv in self.moving_total_push.items()},
            "max_relative_residual": float(f"{self.residual:.3g}"),
            "seconds": round(self.seconds, 3),
            "n_boot": self.n_boot,
            "seed": self.seed,
        }


# ------------------------------------------------------------ the analysis


def _intervals(values: np.ndarray, n_boot: int, seed: int) -> list[Interval]:
    with warnings.catch_warnings():  # a column with no defined value (a zero bias) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return bootstrap_intervals(values, n_boot=n_boot, seed=seed)


def _moving(model: Any, prompts: Prompts, store: dict[str, Tensor]) -> np.ndarray:
    """``[n, layers, heads]``: ‖what each head moves from the subject positions to the last position‖."""
    n, n_heads = len(prompts), int(model.n_heads)
    group = n_heads // int(model.n_kv_heads)
    width = store["p0"].shape[-1]
    mask = torch.zeros(n, width)
    for i, roles in enumerate(prompts.roles):
        mask[i, role_positions(roles)["subject"]] = 1.0
    out = np.zeros((n, int(model.n_layers), n_heads))
    for layer in range(int(model.n_layers)):
        weights = store[f"p{layer}"] * mask[:, None]  # [n, heads, k]
        values = store[f"v{layer}"].repeat_interleave(group, dim=2)  # [n, k, heads, e]
        moved = torch.einsum("nhk,nkhe->nhe", weights, values)
        written = torch.einsum("nhe,hed->nhd", moved, model.bridge.blocks[layer].attn.W_O.detach().float())
        out[:, layer] = written.norm(dim=-1).numpy()
    out[mask.sum(1).numpy() == 0] = np.nan  # no subject token before the last: nothing to move
    return out


def mlp_decomposition(
    model: Any,
    prompts: Prompts,
    *,
    layers: Sequence[int] | None = None,
    position: str = "last",
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
    progress: bool = True,
    n_moving: int = MOVING_HEADS,
) -> MLPDecomposition:
    """Decompose the MLPs of ``layers`` (all by default) at ``position`` into their input components' parts.

    ``position`` is ``"last"`` (where the answer is predicted) or ``"subject"``
    (the last subject token). See the module docstring for gain and push.
    """
    started = time.perf_counter()
    check_position(position)
    chosen = check_layers(model, layers)
    if n_moving < 1:
        raise InputError(f"the number of subject-moving heads to follow must be positive, not {n_moving}")
    store = capture_inputs(model, prompts, position, chosen[-1])
    bridge = model.bridge
    final = FrozenNorm(bridge.ln_final, store["final"])
    W_U = bridge.W_U.detach().float()
    direction = W_U[:, prompts.answer].T - W_U.mean(1)  # [n, d]: the answer's centred unembedding
    results: list[LayerDecomposition] = []
    per_prompt: dict[int, tuple[list[str], np.ndarray, np.ndarray]] = {}
    bar = progress_bar(len(chosen), "mlp decomposition", enabled=progress)
    with torch.no_grad():
        for layer in chosen:
            names, components = upstream_components(model, store, layer)
            x = store[f"x{layer}"]
            parts, constant = decompose(model, layer, components, x)
            if names[-1] == "bias":
                parts[:, -1] += constant
            real = store[f"m{layer}"]
            error = (parts.sum(1) - real).abs().max().item()
            scale = max(real.abs().max().item(), 1e-30)
            gain = gains(parts, components, x).numpy()
            push = (final(parts, per_component=True) * direction[:, None]).sum(-1).numpy()
            gain_iv, push_iv = _intervals(gain, n_boot, seed), _intervals(push, n_boot, seed)
            norms = components.norm(dim=-1).mean(0).tolist()
            effects = [
                ComponentEffect(name, g, p, float(s))
                for name, g, p, s in zip(names, gain_iv, push_iv, norms, strict=True)
            ]
            total = _intervals(push.sum(1, keepdims=True), n_boot, seed)[0]
            results.append(LayerDecomposition(layer, effects, total, error, error / scale))
            per_prompt[layer] = (names, gain, push)
            bar.update(1)
    bar.close()
    moved = _moving(model, prompts, store)  # [n, layers, heads]
    n_heads = int(model.n_heads)
    moved_iv = _intervals(moved.reshape(len(prompts), -1), n_boot, seed)
    heads = [MovingHead(head_name(i // n_heads, i % n_heads), iv) for i, iv in enumerate(moved_iv)]
    heads.sort(key=lambda h: -h.moved.value if np.isfinite(h.moved.value) else np.inf)
    moving_parts: list[MovingPart] = []
    moving_total: dict[str, Interval] = {}
    for head in heads[:n_moving]:
        pushes_of_head = []
        for d in results:
            names, _, push = per_prompt[d.layer]
            if head.head in names:
                c = d.component(head.head)
                moving_parts.append(MovingPart(head.head, d.layer, c.gain, c.push))
                pushes_of_head.append(push[:, names.index(head.head)])
        if pushes_of_head:
            moving_total[head.head] = _intervals(
                np.stack(pushes_of_head, 1).sum(1, keepdims=True), n_boot, seed
            )[0]
    return MLPDecomposition(
        model.name,
        relation,
        template,
        int(model.n_layers),
        len(prompts),
        position,
        results,
        heads,
        moving_parts,
        moving_total,
        n_moving=n_moving,
        seconds=time.perf_counter() - started,
        n_boot=n_boot,
        seed=seed,
    )
