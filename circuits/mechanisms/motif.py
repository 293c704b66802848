"""The additive motif (Chughtai et al. 2024): the answer emerges only from the sum of groups.

The direct effects at the last position are grouped: subject heads, relation
heads and mixed heads (from :mod:`~circuits.mechanisms.per_source_dla`),
all MLPs, and the rest (the input embedding, unclassified heads, biases and the
final norm's and unembedding's constant). Each group's direct logits are read
on the relation's *candidate answers* (the first tokens of all its objects).
The groups add up to the model's own logits exactly.

For each group alone, and for the sum, the rank of the true answer among the
candidates is ``1 + #{other candidates with a logit >= the answer's}`` (an
empty group ranks it last, not first). The motif holds on a prompt when no
single group ranks the answer first but the sum does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from circuits.mechanisms.direct_effects import LastPosition
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import InputError, mlp_name

__all__ = ["GROUPS", "MotifResult", "additive_motif"]

GROUPS = ("subject heads", "relation heads", "mixed heads", "MLPs", "rest")


@dataclass
class MotifResult:
    """Group contributions to the answer, each group's rank of it, and how often only the sum finds it."""

    model: str
    relation: str
    template: str
    n_prompts: int
    n_candidates: int
    members: dict[str, list[str]]  # group -> component names
    contribution: dict[str, Interval]  # mean direct effect on the answer's centred logit
    top1: dict[str, Interval]  # share of prompts where the group (or "sum") ranks the answer first
    median_rank: dict[str, float]
    motif: Interval  # share of prompts: no group ranks it first, the sum does
    ranks: np.ndarray  # [prompts, groups + 1] (the sum last)
    n_boot: int = DEFAULT_BOOT
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "analysis": "motif",
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "n_prompts": self.n_prompts,
            "n_candidates": self.n_candidates,
            "groups": list(GROUPS),
            "members": {g: m if g in GROUPS[:3] else len(m) for g, m in self.members.items()},
            "contribution": {g: iv.as_dict() for g, iv in self.contribution.items()},
            "top1": {g: iv.as_dict() for g, iv in self.top1.items()},
            "median_rank": self.median_rank,
            "motif": self.motif.as_dict(),
            "definition": "contribution: a group's direct effect on the answer's centred logit; top1: share of "
            "prompts where the group's direct logits rank the answer first among the relation's "
            "candidate answers; motif: share where no group alone does but their sum does",
            "n_boot": self.n_boot,
            "seed": self.seed,
        }


def _ranks(logits: Tensor, answer_index: Tensor) -> Tensor:
    """``[batch, k]`` ranks of the answer among ``[batch, k, candidates]`` logits, ties counted against it."""
    target = logits.gather(-1, answer_index[:, None, None].expand(-1, logits.shape[1], 1))
    beaten = (logits >= target).sum(-1) - 1  # the answer itself ties with itself
    return beaten + 1


def additive_motif(
    lp: LastPosition,
    classes: dict[str, str],
    answer: Tensor,
    candidates: Sequence[int],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    model: str = "",
    relation: str = "",
    template: str = "",
) -> MotifResult:
    """The additive motif on the prompts of ``lp`` (answer direction), heads grouped by ``classes``."""
    if lp.direction != "answer":
        raise InputError("the additive motif reads the answer's centred logit: use direction 'answer'")
    cands = torch.tensor(sorted(set(int(c) for c in candidates)), dtype=torch.long)
    position = {int(t): i for i, t in enumerate(cands)}
    missing = [int(a) for a in answer if int(a) not in position]
    if missing:
        raise InputError(f"answer tokens {missing[:3]} are not among the relation's candidate answers")
    answer_index = torch.tensor([position[int(a)] for a in answer])
    members: dict[str, list[str]] = {g: [] for g in GROUPS}
    names = {"subject": "subject heads", "relation": "relation heads", "mixed": "mixed heads"}
    mlps = {mlp_name(layer) for layer in range(lp.n_layers)}
    for name in lp.names:
        if name in classes and classes[name] in names:
            members[names[classes[name]]].append(name)
        elif name in mlps:
            members["MLPs"].append(name)
        else:
            members["rest"].append(name)
    select = torch.zeros(len(GROUPS), len(lp.names))
    for g, group in enumerate(GROUPS):
        for name in members[group]:
            select[g, lp.index(name)] = 1.0
    grouped = torch.einsum("gc,bcd->bgd", select, lp.vectors)  # [batch, groups, d]
    logits = lp.logits(grouped, cands)  # [batch, groups, candidates]
    logits[:, GROUPS.index("rest")] += lp.constant[cands]
    total = logits.sum(1, keepdim=True)
    ranks = _ranks(torch.cat([logits, total], dim=1), answer_index).numpy()  # [batch, groups + 1]
    # contribution to the centred answer logit: effects summed per group, the constant centred over the vocabulary
    effects = torch.einsum("gc,bc->bg", select, lp.effects())
    centred_constant = (lp.constant - lp.constant.mean())[answer]
    effects[:, GROUPS.index("rest")] += centred_constant
    labels = [*GROUPS, "sum"]
    first = ranks == 1
    top1 = bootstrap_intervals(first.astype(float), n_boot=n_boot, seed=seed)
    contribution = bootstrap_intervals(
        torch.cat([effects, effects.sum(1, keepdim=True)], 1).double().numpy(), n_boot=n_boot, seed=seed
    )
    motif = (~first[:, :-1].any(1)) & first[:, -1]
    (motif_iv,) = bootstrap_intervals(motif.astype(float)[:, None], n_boot=n_boot, seed=seed)
    return MotifResult(
        model,
        relation,
        template,
        len(answer),
        len(cands),
        members,
        dict(zip(labels, contribution, strict=True)),
        dict(zip(labels, top1, strict=True)),
        {g: float(np.median(ranks[:, i])) for i, g in enumerate(labels)},
        motif_iv,
        ranks,
        n_boot,
        seed,
    )
