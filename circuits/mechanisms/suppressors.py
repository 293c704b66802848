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

import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from circuits.mechanisms.direct_effects import last_position
from circuits.mechanisms.editing import node_hooks
from circuits.mechanisms.edits import parse_edits
from circuits.mechanisms.interventions import intervene
from circuits.mechanisms.lens import Prompts, run_with_hooks
from circuits.progress import progress_bar
from circuits.records.suppression import (
    DirectEffect,
    Mitigation,
    SuppressionRecord,
    SuppressionSettings,
    joined,
)
from circuits.relations import load_relation
from circuits.relations.facts import pad_rows
from circuits.relations.schema import bundled_relations
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import InputError, head_name, mlp_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = [
    "DirectEffect",
    "choose_suppressors",
    "control_sentences",
    "last_layer_components",
    "relation_effects",
    "run",
    "suppression",
    "text_loss",
]


def last_layer_components(model: LoadedModel, last_layers: int) -> tuple[list[int], list[str]]:
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
    model: LoadedModel,
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
    model: LoadedModel, texts: Sequence[str], hooks: Sequence[Any] = (), *, batch_size: int = 32
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
    model: LoadedModel,
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
) -> SuppressionRecord:
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
    mitigation: dict[str, Mitigation] = {}
    for pairs in pair_sets:
        m = intervene(model, pairs, edits, n_boot=n_boot, seed=seed, progress=False)
        mitigation[pairs.relation.name] = Mitigation(
            m.n_prompts, m.before, m.after, m.change, m.before_values, m.after_values
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
    relations = [p.relation.name for p in pair_sets]
    provenance = SuppressionRecord.provenance_of(
        model.name,
        joined(relations),
        n_prompts=sum(m.n_prompts for m in mitigation.values()),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    return SuppressionRecord(
        provenance,
        relations,
        layers,
        alpha,
        majority,
        relations_share,
        effects,
        suppressors,
        mitigation,
        control,
        len(control_texts),
    )


def control_sentences(exclude: Sequence[str], n: int, *, seed: int = 0) -> list[str]:
    """Up to ``n`` full-fact sentences of bundled relations not named in ``exclude`` (seeded sample).

    >>> texts = control_sentences(["country_capital_city"], 3)
    >>> len(texts), all(isinstance(t, str) and len(t) > 5 for t in texts)
    (3, True)
    """
    sentences = []
    for name in bundled_relations():
        if name in exclude:
            continue
        rel = load_relation(name)
        template = rel.prompt_templates[0]
        sentences += [f"{template.format(f.subject)} {f.object}" for f in rel.facts]
    random.Random(seed).shuffle(sentences)
    return sentences[:n]


def run(
    model: LoadedModel,
    pair_sets: Sequence[PairSet],
    settings: SuppressionSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> SuppressionRecord:
    """Suppressors of the last layers across the relations of ``pair_sets``, and scaling them.

    The control sentences are full facts ("<prompt> <object>") of the bundled
    relations not analysed, a seeded sample.
    """
    names = [p.relation.name for p in pair_sets]
    record = suppression(
        model,
        pair_sets,
        last_layers=settings.last_layers,
        alpha=settings.alpha,
        majority=settings.majority,
        relations_share=settings.relations_share,
        control_texts=control_sentences(names, settings.n_control, seed=seed),
        n_boot=settings.n_boot,
        seed=seed,
        progress=progress,
    )
    per_relation = {
        p.relation.name: {
            "template": p.template,
            "n_facts": p.n_facts,
            "n_known": p.n_known,
            "n_scoring": len(p.scoring),
            "n_heldout": len(p.heldout),
        }
        for p in pair_sets
    }
    return record.with_prompts({"heldout_fraction": settings.heldout_fraction, "per_relation": per_relation})
