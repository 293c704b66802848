"""Which facts a model knows: the answer token, its rank and probability at the last position.

A fact is *known* when its answer (the first token of ``" " + object``) ranks
at most ``max_rank`` among the next-token logits of its prompt, with at least
``min_prob`` probability. Rows are right-padded: with causal attention a real
token never sees the padding after it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuits.relations.prompts import DemoPicker, PromptFormat, default_shots
from circuits.relations.schema import Fact, Relation, check_template
from circuits.vocab import InputError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel

__all__ = [
    "FACT_BUDGET",
    "FactCheck",
    "answer_token",
    "check_facts",
    "checked_facts",
    "encoder",
    "fact_budget",
    "last_logits",
    "pad_rows",
]


@dataclass(frozen=True)
class FactCheck:
    """How a model does on one fact: rank and probability of its answer token.

    ``demos`` are the demonstrations its prompt starts with (``None`` when the
    relation has too few other facts to give it ``shots`` of them; it is then
    not run, and not known).
    """

    fact: Fact
    tokens: tuple[int, ...]
    answer: int
    rank: int
    prob: float
    known: bool
    demos: tuple[Fact, ...] | None = ()


def answer_token(model: LoadedModel, obj: str, *, where: str = "") -> int:
    """First token of ``" " + obj``; an error if it tokenizes to nothing."""
    ids = model.tokenizer(" " + obj, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"{where}object {obj!r} tokenizes to nothing with {model.name}'s tokenizer")
    return int(ids[0])


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded ``[rows, width]`` token ids, their mask, and each row's last position."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return ids, mask, last


@torch.no_grad()
def last_logits(model: LoadedModel, rows: Sequence[Sequence[int]], *, batch_size: int = 64) -> Tensor:
    """Next-token logits at each row's last token, rows right-padded in batches."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids, _, last = pad_rows(chunk, model.pad_id)
        logits = model.bridge(ids.to(model.device))
        out.append(logits[torch.arange(len(chunk)), last.to(logits.device)].float().cpu())
    return torch.cat(out)


def check_facts(
    model: LoadedModel,
    relation: Relation,
    *,
    template: str | None = None,
    shots: int | None = None,
    seed: int = 0,
    max_rank: int = 1,
    min_prob: float = 0.0,
    facts: Sequence[Fact] | None = None,
    batch_size: int = 64,
    progress: bool = False,
    picker: DemoPicker | None = None,
) -> list[FactCheck]:
    """Rank and probability of every fact's answer; ``known`` by the thresholds.

    Each fact's prompt is ``template`` (default: the relation's first) after
    ``shots`` demonstrations from the relation's other facts (default:
    :func:`~circuits.relations.prompts.default_shots`), drawn under ``seed``
    (:class:`~circuits.relations.prompts.DemoPicker`). The facts are tokenized
    and run ``batch_size`` at a time and only each one's rank and probability
    are kept, so memory stays flat however many facts a relation has (a
    progress bar with ``progress``). ``facts`` (default: all of the
    relation's) checks a subset.

    >>> from circuits import load_model, load_relation
    >>> model, relation = load_model("tiny-llama"), load_relation("country_capital_city")
    >>> checks = check_facts(model, relation, max_rank=10**9, batch_size=7)
    >>> len(checks) == len(relation.facts), all(c.known for c in checks)
    (True, True)
    >>> again = check_facts(model, relation, max_rank=10**9, facts=relation.facts[:3])
    >>> [(c.rank, round(c.prob, 6)) for c in again] == [(c.rank, round(c.prob, 6)) for c in checks[:3]]
    True
    >>> shot = check_facts(model, relation, template="The capital of {} is", max_rank=10**9)
    >>> [len(c.demos) for c in shot[:3]], all(c.fact not in c.demos for c in shot)
    ([1, 1, 1], True)
    """
    from circuits.progress import progress_bar

    template = template or relation.template
    check_template(template, f"{relation.source}: template")
    if picker is None:
        fmt = PromptFormat(template, default_shots(template) if shots is None else shots)
        picker = DemoPicker(relation, fmt, seed=seed, encode=encoder(model))
    fmt = picker.fmt
    facts = relation.facts if facts is None else facts
    checks: list[FactCheck] = []
    bar = progress_bar(len(facts), f"known facts of {relation.name}", enabled=progress)
    for start in range(0, len(facts), batch_size):
        chunk = facts[start : start + batch_size]
        answers = [answer_token(model, f.object, where=f"{relation.source}: ") for f in chunk]
        demos = [picker.pick([f], [a]) for f, a in zip(chunk, answers, strict=True)]
        runs = [i for i, d in enumerate(demos) if d is not None]
        tokens = {i: tuple(model.encode(fmt.text(chunk[i], demos[i]))) for i in runs}  # type: ignore[arg-type]
        ranks, probs = _rank_answers(model, [tokens[i] for i in runs], [answers[i] for i in runs], batch_size)
        at = {i: k for k, i in enumerate(runs)}
        for i, (f, a, d) in enumerate(zip(chunk, answers, demos, strict=True)):
            if i not in at:
                checks.append(FactCheck(f, (), a, 0, 0.0, False, None))
                continue
            r, p = int(ranks[at[i]]), float(probs[at[i]])
            checks.append(FactCheck(f, tokens[i], a, r, p, r <= max_rank and p >= min_prob, d))
        bar.update(len(chunk))
    bar.close()
    return checks


def encoder(model: LoadedModel) -> Callable[[str], Sequence[int]]:
    """Token ids of a text with ``model``'s tokenizer, no special tokens."""
    return lambda text: model.tokenizer(text, add_special_tokens=False)["input_ids"]


def _rank_answers(
    model: LoadedModel, rows: Sequence[Sequence[int]], answers: Sequence[int], batch_size: int
) -> tuple[Tensor, Tensor]:
    """Each row's answer rank (1 = top) and probability at its last position."""
    if not rows:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    logits = last_logits(model, rows, batch_size=batch_size)
    answer_ids = torch.tensor(list(answers))
    answer_logit = logits[torch.arange(len(answers)), answer_ids]
    ranks = (logits > answer_logit[:, None]).sum(-1) + 1
    return ranks, logits.softmax(-1)[torch.arange(len(answers)), answer_ids]


FACT_BUDGET = 512
"""Facts checked at a time when a pair cap makes checking a large relation whole unnecessary."""


def fact_budget(max_pairs: int | None) -> int | None:
    """How many facts are checked at a time for ``max_pairs`` pairs (``None``: all of them).

    >>> fact_budget(None), fact_budget(8), fact_budget(200)
    (None, 512, 1600)
    """
    return None if max_pairs is None else max(FACT_BUDGET, 8 * max_pairs)


def checked_facts(
    model: LoadedModel,
    relation: Relation,
    picker: DemoPicker,
    max_rank: int,
    min_prob: float,
    max_pairs: int | None,
    seed: int,
    progress: bool,
) -> list[FactCheck]:
    """The fact checks pairs are made from: every fact,
    or for a large relation and a pair cap, enough of them.

    A relation within the budget is checked whole and in its own order (so the
    pairs are the same as with no cap). A larger one is checked in a seeded
    random order, one budget at a time, until at least ``max_pairs`` known
    facts have an equal-length partner with another answer among the checked facts.
    """
    budget = fact_budget(max_pairs)
    facts = relation.facts
    common = {"max_rank": max_rank, "min_prob": min_prob, "progress": progress, "picker": picker}
    if budget is None or len(facts) <= budget:
        return check_facts(model, relation, **common)
    order = list(range(len(facts)))
    random.Random(seed + 2).shuffle(order)
    checks: list[FactCheck] = []
    for start in range(0, len(order), budget):
        chunk = [facts[i] for i in order[start : start + budget]]
        checks += check_facts(model, relation, facts=chunk, **common)
        by_length: dict[int, set[int]] = {}
        for c in checks:
            by_length.setdefault(len(c.tokens), set()).add(c.answer)
        pairable = sum(1 for c in checks if c.known and len(by_length[len(c.tokens)] - {c.answer}) > 0)
        if pairable >= max_pairs:  # type: ignore[operator]
            break
    log.info(
        "relation %s: checked %d of %d facts (a budget of %d at a time) for %d pairs",
        relation.name,
        len(checks),
        len(facts),
        budget,
        max_pairs,
    )
    return checks
