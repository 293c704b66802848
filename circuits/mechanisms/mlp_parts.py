"""MLP decomposition: which upstream writes an MLP amplifies, erases or turns into the answer.

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
from typing import TYPE_CHECKING

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
from circuits.records.base import pairs_record
from circuits.records.mlp import (
    ComponentEffect,
    LayerDecomposition,
    MLPRecord,
    MLPSettings,
    MovingHead,
    MovingPart,
)
from circuits.relations.roles import role_positions
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import InputError, head_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = ["mlp_decomposition", "run"]

MOVING_HEADS = 5  # subject-moving heads whose parts are followed through the later MLPs


# ------------------------------------------------------------ the analysis


def _intervals(values: np.ndarray, n_boot: int, seed: int) -> list[Interval]:
    with warnings.catch_warnings():  # a column with no defined value (a zero bias) is NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        return bootstrap_intervals(values, n_boot=n_boot, seed=seed)


def _moving(model: LoadedModel, prompts: Prompts, store: dict[str, Tensor]) -> np.ndarray:
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
    model: LoadedModel,
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
) -> MLPRecord:
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
            results.append(LayerDecomposition.of(layer, effects, total, error, error / scale))
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
    provenance = MLPRecord.provenance_of(
        model.name,
        relation,
        template=template,
        n_prompts=len(prompts),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    return MLPRecord(
        provenance,
        int(model.n_layers),
        position,
        results,
        heads,
        moving_parts,
        moving_total,
        n_moving=n_moving,
    )


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: MLPSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> MLPRecord:
    """Decompose the MLPs of ``settings.layers`` (all by default) at ``settings.position``.

    >>> from circuits import load_model
    >>> from circuits.jobs.mechanisms import PromptChoice, choice_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = choice_pairs(model, "country_capital_city", PromptChoice(max_pairs=6, max_rank=10**9))
    >>> record = run(model, pairs, MLPSettings(layers=(2,)), progress=False)
    >>> [d.layer for d in record.layers], record.NAME, record.residual < 1e-4
    ([2], 'mlp', True)
    """
    record = mlp_decomposition(
        model,
        Prompts.of(pairs.pairs, model.pad_id),
        layers=settings.layers,
        position=settings.position,
        n_boot=settings.n_boot,
        seed=seed,
        relation=pairs.relation.name,
        template=pairs.template,
        progress=progress,
    )
    return record.with_prompts(pairs_record(pairs))
