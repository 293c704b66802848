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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from circuits.mechanisms.direct_effects import LastPosition, last_position
from circuits.mechanisms.lens import Prompts
from circuits.relations.roles import ROLES, role_positions
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_means
from circuits.vocab import InputError, head_name

__all__ = ["CLASSES", "HeadAttribution", "SourceAttribution", "Thresholds", "source_attribution"]

CLASSES = ("subject", "relation", "mixed")


@dataclass(frozen=True)
class Thresholds:
    """When a head counts as a subject, relation or mixed head (shares of its positive DLA)."""

    subject_share: float = 0.7
    relation_share: float = 0.7
    mixed_share: float = 0.25
    min_share: float = 0.02

    def __post_init__(self) -> None:
        for name in ("subject_share", "relation_share", "mixed_share", "min_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name.replace('_', '-')} must be a share in [0, 1], not {value}")

    def classify(self, shares: dict[str, float]) -> str:
        """``subject``, ``relation``, ``mixed`` or ``other`` from a head's positive-DLA shares per role."""
        if shares["subject"] >= self.subject_share:
            return "subject"
        if shares["relation"] >= self.relation_share:
            return "relation"
        if shares["subject"] >= self.mixed_share and shares["relation"] >= self.mixed_share:
            return "mixed"
        return "other"

    def as_dict(self) -> dict[str, float]:
        return {
            "subject_share": self.subject_share,
            "relation_share": self.relation_share,
            "mixed_share": self.mixed_share,
            "min_share": self.min_share,
        }


@dataclass(frozen=True)
class HeadAttribution:
    """One head: its direct effect, split by role, and its class (``None`` when not active)."""

    head: str
    dla: Interval
    by_role: dict[str, Interval]
    shares: dict[str, float]  # share of the positive DLA from each role
    head_class: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "dla": self.dla.as_dict(),
            "by_role": {r: iv.as_dict() for r, iv in self.by_role.items()},
            "positive_share": {r: round(v, 4) for r, v in self.shares.items()},
            "class": self.head_class,
        }


@dataclass
class SourceAttribution:
    """Every head's per-role direct effect on one relation's prompts, and the heads' classes."""

    model: str
    relation: str
    template: str
    direction: str
    n_layers: int
    n_heads: int
    n_prompts: int
    heads: list[HeadAttribution]
    thresholds: Thresholds
    max_sum_error: float  # max |Σ_s DLA(h, s) − DLA(h)| over heads and prompts
    seconds: float = 0.0
    n_boot: int = DEFAULT_BOOT
    seed: int = 0
    last: LastPosition | None = field(default=None, repr=False)
    n_top: int = 20  # heads listed under "top_heads" in the record (and drawn)

    def head(self, name: str) -> HeadAttribution:
        for h in self.heads:
            if h.head == name:
                return h
        raise InputError(f"no head {name!r}")

    def of_class(self, head_class: str) -> list[str]:
        """Heads of one class, strongest direct effect first."""
        chosen = [h for h in self.heads if h.head_class == head_class]
        return [h.head for h in sorted(chosen, key=lambda h: -h.dla.value)]

    def classes(self) -> dict[str, str]:
        """Head name -> class, for the active heads."""
        return {h.head: h.head_class for h in self.heads if h.head_class is not None}

    def top(self, n: int) -> list[str]:
        """The ``n`` heads with the largest mean |direct effect|."""
        return [h.head for h in sorted(self.heads, key=lambda h: -abs(h.dla.value))[:n]]

    def as_dict(self, top: int | None = None) -> dict[str, Any]:
        top = self.n_top if top is None else top
        counts = {c: len(self.of_class(c)) for c in (*CLASSES, "other")}
        return {
            "analysis": "dla",
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "direction": self.direction,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "n_prompts": self.n_prompts,
            "roles": list(ROLES),
            "dla": "direct effect of each head at the last position on the "
            + ("answer's centred logit" if self.direction == "answer" else "logit difference")
            + ", split by the role of the source position; mean over prompts, 95% bootstrap interval",
            "thresholds": self.thresholds.as_dict(),
            "counts": counts,
            "classes": {c: self.of_class(c) for c in (*CLASSES, "other")},
            "top_heads": [self.head(h).as_dict() for h in self.top(top)],
            "heads": [h.as_dict() for h in self.heads],
            "max_sum_error": self.max_sum_error,
            "seconds": round(self.seconds, 3),
            "n_boot": self.n_boot,
            "seed": self.seed,
        }


def role_masks(prompts: Prompts, n_pos: int) -> torch.Tensor:
    """``[batch, roles, pos]`` 0/1 masks of each prompt's role positions."""
    masks = torch.zeros(len(prompts), len(ROLES), n_pos)
    for b, roles in enumerate(prompts.roles):
        for r, positions in enumerate(role_positions(roles).values()):
            masks[b, r, positions] = 1.0
    return masks


def source_attribution(
    model: Any,
    prompts: Prompts,
    *,
    direction: str = "answer",
    thresholds: Thresholds | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    relation: str = "",
    template: str = "",
) -> SourceAttribution:
    """Per-role direct effects of every head, and which heads are subject, relation or mixed heads."""
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
    return SourceAttribution(
        model.name,
        relation,
        template,
        direction,
        L,
        H,
        len(prompts),
        heads,
        thresholds,
        error,
        time.perf_counter() - started,
        n_boot,
        seed,
        lp,
    )
