"""Per-source direct logit attribution and head roles (Chughtai et al. 2024).

Every head's direct effect on the answer at the last position is split by the
source position it reads (:mod:`~circuits.mechanisms.direct_effects`) and
summed over the positions of each role (first, demo, subject, relation, last). A
head's *positive DLA from a role* is the sum over that role's positions of the
positive parts ``max(DLA(h, s), 0)``, averaged over prompts; its share of a
role is that over the sum across roles.

Only heads that matter are classified: a head is *active* when its mean direct
effect is positive, its 95% interval excludes zero, and it carries at least
``min_share`` of the summed positive direct effect of all heads. An active head
is a *subject head* when at least ``subject_share`` (0.7) of its positive DLA
comes from the subject, a *relation head* when at least ``relation_share``
(0.7) comes from the relation tokens, and a *mixed head* when at least
``mixed_share`` (0.25) comes from each; the rest are ``other`` (most of their
effect from the first or last position).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from circuits.mechanisms.direct_effects import last_position
from circuits.mechanisms.lens import Prompts
from circuits.records.base import pairs_record
from circuits.records.dla import CLASSES, DLARecord, DLASettings, HeadAttribution, Thresholds
from circuits.relations.roles import ROLES, role_positions
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_means
from circuits.vocab import head_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet

__all__ = ["CLASSES", "Thresholds", "role_masks", "run", "source_attribution"]


def role_masks(prompts: Prompts, n_pos: int) -> torch.Tensor:
    """``[batch, roles, pos]`` 0/1 masks of each prompt's role positions."""
    masks = torch.zeros(len(prompts), len(ROLES), n_pos)
    for b, roles in enumerate(prompts.roles):
        for r, positions in enumerate(role_positions(roles).values()):
            masks[b, r, positions] = 1.0
    return masks


def source_attribution(
    model: LoadedModel,
    prompts: Prompts,
    *,
    direction: str = "answer",
    thresholds: Thresholds | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
    n_top: int = 20,
) -> DLARecord:
    """Per-role direct effects of every head, and which heads are subject, relation or mixed heads.

    The record keeps the per-prompt direct effects (``last``) in memory, for the additive motif;
    ``n_top`` heads are listed (and drawn) as its top heads.
    """
    started = time.perf_counter()
    thresholds = thresholds or Thresholds()
    lp = last_position(model, prompts, direction=direction)
    L, H = lp.n_layers, lp.n_heads
    masks = role_masks(prompts, lp.per_source.shape[-1])
    by_role = torch.einsum("blhs,brs->blhr", lp.per_source, masks)  # [batch, L, H, roles]
    positive = torch.einsum("blhs,brs->blhr", lp.per_source.clamp(min=0), masks)
    total = lp.head_effects()  # [batch, L, H]
    error = float((lp.per_source.sum(-1) - total).abs().max())
    sample = torch.cat([total[..., None], by_role], dim=-1).reshape(len(prompts), -1).double().numpy()
    mean, low, high = bootstrap_means(sample, n_boot=n_boot, seed=seed)
    mean, low, high = (a.reshape(L, H, 1 + len(ROLES)) for a in (mean, low, high))
    pos_mean = positive.mean(0).double().numpy()  # [L, H, roles]
    head_mean = mean[..., 0]
    budget = float(np.clip(head_mean, 0, None).sum())
    heads = []
    for layer in range(L):
        for h in range(H):
            pos = pos_mean[layer, h]
            shares = {r: float(pos[i] / pos.sum()) if pos.sum() > 0 else 0.0 for i, r in enumerate(ROLES)}
            dla = Interval(float(head_mean[layer, h]), float(low[layer, h, 0]), float(high[layer, h, 0]))
            active = (
                dla.value > 0 and dla.low > 0 and budget > 0 and dla.value >= thresholds.min_share * budget
            )
            roles = {
                r: Interval(
                    float(mean[layer, h, i + 1]), float(low[layer, h, i + 1]), float(high[layer, h, i + 1])
                )
                for i, r in enumerate(ROLES)
            }
            heads.append(
                HeadAttribution(
                    head_name(layer, h), dla, roles, shares, thresholds.classify(shares) if active else None
                )
            )
    provenance = DLARecord.provenance_of(
        model.name,
        relation,
        template=template,
        n_prompts=len(prompts),
        seed=seed,
        n_boot=n_boot,
        seconds=time.perf_counter() - started,
    )
    return DLARecord(provenance, direction, L, H, heads, thresholds, error, n_top, ROLES, lp)


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: DLASettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> DLARecord:
    """Every head's direct effect split by source role, and its class (the registry's entry point).

    >>> from circuits import load_model
    >>> from circuits.jobs.mechanisms import PromptChoice, choice_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = choice_pairs(model, "country_capital_city", PromptChoice(max_pairs=6, max_rank=10**9))
    >>> record = run(model, pairs, DLASettings())
    >>> record.roles, record.max_sum_error < 1e-5
    (('first', 'demo', 'subject', 'relation', 'last'), True)
    """
    record = source_attribution(
        model,
        Prompts.of(pairs.pairs, model.pad_id),
        direction=settings.direction,
        thresholds=settings.thresholds(),
        n_boot=settings.n_boot,
        seed=seed,
        relation=pairs.relation.name,
        template=pairs.template,
        n_top=settings.top,
    )
    return record.with_prompts(pairs_record(pairs))
