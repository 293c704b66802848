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

import dataclasses
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from circuits.mechanisms.direct_effects import LastPosition
from circuits.mechanisms.lens import Prompts
from circuits.mechanisms.per_source_dla import source_attribution
from circuits.records.base import pairs_record
from circuits.records.motif import GROUPS, MotifRecord, MotifSettings
from circuits.relations.facts import answer_token
from circuits.uncertainty import DEFAULT_BOOT, bootstrap_intervals
from circuits.vocab import InputError, mlp_name

if TYPE_CHECKING:
    from circuits.models import LoadedModel
    from circuits.relations.pairs import PairSet
    from circuits.relations.schema import Relation

__all__ = ["GROUPS", "additive_motif", "candidate_answers", "run"]


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
) -> MotifRecord:
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
    # contribution to the centred answer logit: effects summed per group, the constant centred over the vocab
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
    provenance = MotifRecord.provenance_of(
        model, relation, template=template, n_prompts=len(answer), seed=seed, n_boot=n_boot
    )
    return MotifRecord(
        provenance,
        len(cands),
        members,
        {g: len(m) for g, m in members.items()},
        dict(zip(labels, contribution, strict=True)),
        dict(zip(labels, top1, strict=True)),
        {g: float(np.median(ranks[:, i])) for i, g in enumerate(labels)},
        motif_iv,
        GROUPS,
        ranks,
    )


def candidate_answers(model: LoadedModel, relation: Relation) -> list[int]:
    """The relation's candidate answers: the first token of every object, once each."""
    return sorted({answer_token(model, f.object, where=f"{relation.source}: ") for f in relation.facts})


def run(
    model: LoadedModel,
    pairs: PairSet,
    settings: MotifSettings,
    *,
    seed: int = 0,
    progress: bool = True,
) -> MotifRecord:
    """The additive motif of a relation: heads classed by per-source DLA, groups ranked among candidates."""
    started = time.perf_counter()
    prompts = Prompts.of(pairs.pairs, model.pad_id)
    common = {"seed": seed, "relation": pairs.relation.name, "template": pairs.template}
    dla = source_attribution(
        model, prompts, thresholds=settings.thresholds(), n_boot=settings.n_boot, **common
    )
    assert dla.last is not None
    record = additive_motif(
        dla.last,
        dla.classes(),
        prompts.answer,
        candidate_answers(model, pairs.relation),
        n_boot=settings.n_boot,
        model=model.name,
        **common,
    )
    seconds = time.perf_counter() - started
    record = dataclasses.replace(record, provenance=dataclasses.replace(record.provenance, seconds=seconds))
    return record.with_prompts(pairs_record(pairs))
