"""Interventions and what they do to a relation's prompts: accuracy, p(answer), logit difference.

An edit (:mod:`~circuits.mechanisms.edits`) scales, ablates (zero, the mean
over the relation's scoring prompts as :func:`circuits.attribution.mean_senders`
computes it, or the counterfactual prompt's value) or cuts an output subspace
of a node or an edge; :mod:`~circuits.mechanisms.editing` applies edits to a
forward. :func:`intervene` measures top-1 accuracy, the answer's probability
and the logit difference on a split of a relation's pairs before and after
the edits: one batched forward each, a paired bootstrap over prompts for the
change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from circuits.attribution.harness import Harness
from circuits.attribution.scoring import mean_senders
from circuits.mechanisms.editing import edited_logits, node_hooks
from circuits.mechanisms.edits import Edit, parse_edits
from circuits.progress import progress_bar
from circuits.relations.pairs import PairBatch, PairSet, batch_pairs
from circuits.uncertainty import DEFAULT_BOOT, Interval, bootstrap_intervals
from circuits.vocab import Ablation, InputError

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = [
    "METRICS",
    "SPLITS",
    "Edit",
    "InterventionResult",
    "edited_logits",
    "intervene",
    "measure",
    "node_hooks",
    "paired_intervals",
    "parse_edits",
    "scoring_means",
    "split_pairs",
]

METRICS = ("accuracy", "answer_prob", "logit_diff")
"""What :func:`intervene` measures per prompt: answer is top-1, p(answer), answer − corrupt-answer logit."""

SPLITS = ("heldout", "scoring", "all")


def measure(logits: Tensor, batch: PairBatch) -> dict[str, np.ndarray]:
    """Per-prompt top-1 accuracy, answer probability and logit difference of last-position logits."""
    logits = logits.float().cpu()
    rows = torch.arange(logits.shape[0])
    answer, corrupt = batch.answer.cpu(), batch.corrupt_answer.cpu()
    probs = logits.softmax(-1)
    return {
        "accuracy": (logits.argmax(-1) == answer).double().numpy(),
        "answer_prob": probs[rows, answer].double().numpy(),
        "logit_diff": (logits[rows, answer] - logits[rows, corrupt]).double().numpy(),
    }


def split_pairs(pairs: PairSet, split: str) -> list[Any]:
    """The pairs of ``split`` (``heldout``, ``scoring`` or ``all``), or an InputError."""
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    chosen = {"heldout": pairs.heldout, "scoring": pairs.scoring, "all": pairs.pairs}[split]
    if not chosen:
        hint = " (make the pairs with a positive heldout_fraction)" if split == "heldout" else ""
        raise InputError(f"relation {pairs.relation.name!r} has no {split} pairs{hint}")
    return chosen


def scoring_means(harness: Harness, pairs: PairSet) -> Tensor:
    """Every sender's mean output over the scoring prompts (:func:`~circuits.attribution.mean_senders`)."""
    if not pairs.scoring:
        raise InputError(f"relation {pairs.relation.name!r} has no scoring pairs to take mean outputs from")
    return mean_senders(harness, batch_pairs(pairs.scoring, pad=harness.model.pad_id))


@dataclass
class InterventionResult:
    """Before/after metrics of an intervention on one split of a relation's pairs.

    ``before``, ``after`` and ``change`` map each of :data:`METRICS` to an
    :class:`~circuits.uncertainty.Interval` (mean over prompts, 95% bootstrap
    interval; ``change = after − before`` from the same resamples, paired).
    ``before_values`` and ``after_values`` hold the per-prompt values.
    """

    model: str
    relation: str
    template: str
    split: str
    edits: list[Edit]
    n_prompts: int
    before: dict[str, Interval]
    after: dict[str, Interval]
    change: dict[str, Interval]
    before_values: dict[str, np.ndarray]
    after_values: dict[str, np.ndarray]
    subjects: list[str] = field(default_factory=list)
    n_boot: int = DEFAULT_BOOT
    seed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Strict JSON: ``before``/``after``/``change`` of ``{"value", "low", "high"}``, edits as strings."""
        return {
            "analysis": "intervene",
            "model": self.model,
            "relation": self.relation,
            "template": self.template,
            "split": self.split,
            "n_prompts": self.n_prompts,
            "edits": [str(e) for e in self.edits],
            "note": "no edits: after is the unedited model" if not self.edits else "",
            "metrics": {
                "accuracy": "answer is the top-1 next token",
                "answer_prob": "p(answer)",
                "logit_diff": "answer logit − corrupt answer logit",
            },
            "before": {k: v.as_dict() for k, v in self.before.items()},
            "after": {k: v.as_dict() for k, v in self.after.items()},
            "change": {k: v.as_dict() for k, v in self.change.items()},
            "per_prompt": {
                "subjects": self.subjects,
                "before": {k: [round(float(x), 6) for x in v] for k, v in self.before_values.items()},
                "after": {k: [round(float(x), 6) for x in v] for k, v in self.after_values.items()},
            },
            "n_boot": self.n_boot,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
        }


def paired_intervals(
    conditions: dict[str, dict[str, np.ndarray]],
    base: str,
    *,
    n_boot: int,
    seed: int,
) -> tuple[dict[str, dict[str, Interval]], dict[str, dict[str, Interval]]]:
    """Intervals of every condition's metrics and of ``condition − base``, all from the same resamples."""
    columns, keys = [], []
    for cond, per_prompt in conditions.items():
        for metric in METRICS:
            columns.append(per_prompt[metric])
            keys.append(("value", cond, metric))
            if cond != base:
                columns.append(per_prompt[metric] - conditions[base][metric])
                keys.append(("change", cond, metric))
    intervals = bootstrap_intervals(np.stack(columns, axis=1), n_boot=n_boot, seed=seed)
    values: dict[str, dict[str, Interval]] = {}
    changes: dict[str, dict[str, Interval]] = {}
    for (what, cond, metric), iv in zip(keys, intervals, strict=True):
        (values if what == "value" else changes).setdefault(cond, {})[metric] = iv
    return values, changes


def intervene(
    model: LoadedModel,
    pairs: PairSet,
    edits: Sequence[Edit],
    *,
    split: str = "heldout",
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    progress: bool = True,
) -> InterventionResult:
    """Accuracy, answer probability and logit difference on ``split`` before and after ``edits``.

    One batched forward for ``before`` (the unedited model), one for
    ``after``; mean ablations use the senders' mean outputs over
    ``pairs.scoring`` (one more forward), counterfactual ones the unedited
    model's outputs on each pair's corrupt prompt (one more).

    >>> from circuits import load_model, load_relation, make_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = make_pairs(model, load_relation("country_capital_city"), max_rank=10**9, max_pairs=8)
    >>> result = intervene(model, pairs, parse_edits(model, ablate=["a2.h1:zero"]), progress=False)
    >>> result.n_prompts, sorted(result.before) == sorted(result.after)
    (3, True)
    >>> same = intervene(model, pairs, [], progress=False)
    >>> same.change["logit_diff"].value
    0.0
    """
    started = time.perf_counter()
    chosen = split_pairs(pairs, split)
    harness = Harness(model)
    batch = batch_pairs(chosen, pad=model.pad_id)
    need_means = any(e.op == "ablate" and e.ablation is Ablation.MEAN for e in edits)
    bar = progress_bar(2 + need_means, f"intervene: {pairs.relation.name}", enabled=progress)
    means = None
    if need_means:
        means = scoring_means(harness, pairs)
        bar.update(1)
    before = measure(edited_logits(harness, batch, []), batch)
    bar.update(1)
    after = measure(edited_logits(harness, batch, edits, means=means), batch) if edits else before
    bar.update(1)
    bar.close()
    values, changes = paired_intervals({"before": before, "after": after}, "before", n_boot=n_boot, seed=seed)
    return InterventionResult(
        model=model.name,
        relation=pairs.relation.name,
        template=pairs.template,
        split=split,
        edits=list(edits),
        n_prompts=len(chosen),
        before=values["before"],
        after=values["after"],
        change=changes["after"],
        before_values=before,
        after_values={k: v.copy() for k, v in after.items()},
        subjects=[p.fact.subject for p in chosen],
        n_boot=n_boot,
        seed=seed,
        seconds=time.perf_counter() - started,
    )
