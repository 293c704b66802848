"""Final-layer suppression (Lv et al. 2024): last-layer components that push the right answer down.

For each relation, every head and MLP of the last ``last_layers`` layers gets
its direct effect on the answer's centred logit at the last position
(:mod:`~circuits.mechanisms.direct_effects`), on the relation's scoring
prompts. A component *suppresses* on a relation when its effect is negative on
more than ``majority`` of the prompts; it is a *suppressor* when it suppresses
on at least ``relations_share`` of the relations and its mean effect, pooled
over them, is negative.

The mitigation scales every suppressor's output by ``alpha`` in ``[0, 1]``
(:func:`~circuits.mechanisms.interventions.intervene`) and reports top-1
accuracy and the answer's probability on each relation's *held-out* prompts
before and after. The control is the mean next-token loss, before and after,
on other text (full sentences of relations that were not analysed): what the
mitigation costs elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from circuits.mechanisms.direct_effects import last_position
from circuits.mechanisms.editing import node_hooks
from circuits.mechanisms.edits import parse_edits
from circuits.mechanisms.interventions import InterventionResult, intervene
from circuits.mechanisms.lens import Prompts, run_with_hooks
from circuits.progress import progress_bar
from circuits.relations.facts import pad_rows
from circuits.relations.pairs import PairSet
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import InputError, head_name, mlp_name

__all__ = [
    "DirectEffect",
    "SuppressionResult",
    "choose_suppressors",
    "last_layer_components",
    "relation_effects",
    "suppression",
    "text_loss",
]


@dataclass(frozen=True)
class DirectEffect:
    """One component's direct effect on the answer on one relation."""

    name: str
    effect: Interval  # mean over prompts, 95% bootstrap interval
    negative_share: float  # share of prompts where the effect is negative

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.name,
            "effect": self.effect.as_dict(),
            "negative_share": round(self.negative_share, 4),
        }


@dataclass
class SuppressionResult:
    """Last-layer direct effects per relation, the suppressors, and the mitigation with its control."""

    model: str
    relations: list[str]
    layers: list[int]
    alpha: float
    majority: float
    relations_share: float
    effects: dict[str, list[DirectEffect]]  # relation -> components of the last layers
    suppressors: list[str]
    mitigation: dict[str, InterventionResult]  # relation -> before/after on its held-out prompts
    control: dict[str, Interval] = field(default_factory=dict)  # loss before, after, change
    control_texts: int = 0
    n_boot: int = DEFAULT_BOOT
    seed: int = 0
    seconds: float = 0.0

    def suppresses_on(self, name: str) -> list[str]:
        """The relations on which ``name`` is negative on more than ``majority`` of the prompts."""
        return [
            r
            for r, comps in self.effects.items()
            for c in comps
            if c.name == name and c.negative_share > self.majority
        ]

    def as_dict(self) -> dict[str, Any]:
        metrics = ("accuracy", "answer_prob")
        return {
            "analysis": "suppression",
            "model": self.model,
            "relations": self.relations,
            "relation": "+".join(self.relations)
            if len(self.relations) <= 3
            else f"{len(self.relations)} relations",
            "n_prompts": sum(len(r.before_values["accuracy"]) for r in self.mitigation.values()),
            "layers": self.layers,
            "alpha": self.alpha,
            "majority": self.majority,
            "relations_share": self.relations_share,
            "definition": "direct effect of each component of the last layers on the answer's centred logit at "
            "the last position (scoring prompts); a suppressor is negative on more than "
            f"{self.majority:.0%} of the prompts of at least {self.relations_share:.0%} of the "
            f"relations; mitigation scales suppressors by alpha, measured on held-out prompts",
            "effects": {r: [c.as_dict() for c in comps] for r, comps in self.effects.items()},
            "suppressors": [{"component": s, "relations": self.suppresses_on(s)} for s in self.suppressors],
            "mitigation": {
                r: {
                    "n_prompts": m.n_prompts,
                    "before": {k: m.before[k].as_dict() for k in metrics},
                    "after": {k: m.after[k].as_dict() for k in metrics},
                    "change": {k: m.change[k].as_dict() for k in metrics},
                }
                for r, m in self.mitigation.items()
            },
            "control": {
                "what": "mean next-token loss (nats) on full sentences of relations not analysed",
                "n_texts": self.control_texts,
                **{k: v.as_dict() for k, v in self.control.items()},
            },
            "n_boot": self.n_boot,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
        }


def last_layer_components(model: Any, last_layers: int) -> tuple[list[int], list[str]]:
    """The layers and the component names (heads, then the MLP, per layer) of the last ``last_layers``."""
    n_layers = int(model.n_layers)
    if not 1 <= last_layers <= n_layers:
        raise InputError(f"--last-layers must lie in [1, {n_layers}] for {model.name}, not {last_layers}")
    layers = list(range(n_layers - last_layers, n_layers))
    names = [
        n for layer in layers for n in (*(head_name(layer, h) for h in range(model.n_heads)), mlp_name(layer))
    ]
    return layers, names


def relation_effects(
    model: Any,
    prompts: Prompts,
    names: Sequence[str],
    *,
    n_boot: int,
    seed: int,
) -> list[DirectEffect]:
    """Direct effects of ``names`` on the answer's centred logit, over ``prompts``."""
    lp = last_position(model, prompts)
    effects = lp.effects()[:, [lp.index(n) for n in names]].double().numpy()  # [prompts, components]
    intervals = bootstrap_intervals(effects, n_boot=n_boot, seed=seed)
    negative = (effects < 0).mean(0)
    return [DirectEffect(n, iv, float(s)) for n, iv, s in zip(names, intervals, negative, strict=True)]


def choose_suppressors(
    effects: dict[str, list[DirectEffect]],
    *,
    majority: float,
    relations_share: float,
) -> list[str]:
    """Components negative on more than ``majority`` of prompts on at least ``relations_share`` of relations.

    Ordered by their mean effect over the relations, most negative first.
    """
    names = [c.name for c in next(iter(effects.values()))]
    chosen = []
    for i, name in enumerate(names):
        per_relation = [comps[i] for comps in effects.values()]
        suppressing = sum(c.negative_share > majority for c in per_relation)
        mean = float(np.mean([c.effect.value for c in per_relation]))
        if suppressing >= relations_share * len(per_relation) and suppressing > 0 and mean < 0:
            chosen.append((mean, name))
    return [name for _, name in sorted(chosen)]


@torch.no_grad()
def text_loss(
    model: Any, texts: Sequence[str], hooks: Sequence[Any] = (), *, batch_size: int = 32
) -> np.ndarray:
    """Mean next-token cross-entropy (nats) of each text under ``hooks``: ``[texts]``."""
    losses = []
    for start in range(0, len(texts), batch_size):
        rows = [model.encode(t) for t in texts[start : start + batch_size]]
        tokens, mask, _ = pad_rows(rows, model.pad_id)
        logits = run_with_hooks(model, tokens.to(model.device), list(hooks)).float().cpu()
        logprobs = logits[:, :-1].log_softmax(-1)
        target = tokens[:, 1:]
        nll = -logprobs.gather(-1, target[..., None])[..., 0]
        valid = mask[:, 1:].float()
        losses.append(((nll * valid).sum(1) / valid.sum(1).clamp(min=1)).double().numpy())
    return np.concatenate(losses) if losses else np.zeros(0)


def suppression(
    model: Any,
    pair_sets: Sequence[PairSet],
    *,
    last_layers: int = 2,
    alpha: float = 0.5,
    majority: float = 0.5,
    relations_share: float = 0.5,
    control_texts: Sequence[str] = (),
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    progress: bool = True,
) -> SuppressionResult:
    """Last-layer direct effects on every relation, the suppressors, and scaling them by ``alpha``."""
    started = time.perf_counter()
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha scales the suppressors down and must lie in [0, 1], not {alpha}")
    for name, value in (("majority", majority), ("relations-share", relations_share)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"--{name} must be a share in [0, 1], not {value}")
    if not pair_sets:
        raise InputError("suppression needs at least one relation")
    layers, names = last_layer_components(model, last_layers)
    bar = progress_bar(2 * len(pair_sets) + 1, "suppression", enabled=progress)
    effects: dict[str, list[DirectEffect]] = {}
    for pairs in pair_sets:
        prompts = Prompts.of(pairs.scoring, model.pad_id)
        effects[pairs.relation.name] = relation_effects(model, prompts, names, n_boot=n_boot, seed=seed)
        bar.update(1)
    suppressors = choose_suppressors(effects, majority=majority, relations_share=relations_share)
    edits = parse_edits(model, scale=[f"{s}={alpha:g}" for s in suppressors])
    mitigation = {}
    for pairs in pair_sets:
        mitigation[pairs.relation.name] = intervene(
            model, pairs, edits, n_boot=n_boot, seed=seed, progress=False
        )
        bar.update(1)
    control: dict[str, Interval] = {}
    if control_texts:
        before = text_loss(model, control_texts)
        after = text_loss(model, control_texts, node_hooks(model, edits)) if edits else before
        b, a, c = bootstrap_intervals(np.stack([before, after, after - before], 1), n_boot=n_boot, seed=seed)
        control = {"before": b, "after": a, "change": c}
    bar.update(1)
    bar.close()
    return SuppressionResult(
        model.name,
        [p.relation.name for p in pair_sets],
        layers,
        alpha,
        majority,
        relations_share,
        effects,
        suppressors,
        mitigation,
        control,
        len(control_texts),
        n_boot,
        seed,
        time.perf_counter() - started,
    )
