"""Which facts a model knows: the answer token, its rank and probability at the last position.

A fact is *known* when its answer (the first token of ``" " + object``) ranks
at most ``max_rank`` among the next-token logits of its prompt, with at least
``min_prob`` probability. Rows are right-padded: with causal attention a real
token never sees the padding after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuits.relations.schema import Fact, Relation, check_template
from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel

__all__ = ["FactCheck", "answer_token", "check_facts", "last_logits", "pad_rows"]


@dataclass(frozen=True)
class FactCheck:
    """How a model does on one fact: rank and probability of its answer token."""

    fact: Fact
    tokens: tuple[int, ...]
    answer: int
    rank: int
    prob: float
    known: bool


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
    max_rank: int = 1,
    min_prob: float = 0.0,
    facts: Sequence[Fact] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> list[FactCheck]:
    """Rank and probability of every fact's answer; ``known`` by the thresholds.

    The facts are tokenized and run ``batch_size`` at a time and only each
    one's rank and probability are kept, so memory stays flat however many
    facts a relation has (a progress bar with ``progress``). ``facts``
    (default: all of the relation's) checks a subset.

    >>> from circuits import load_model, load_relation
    >>> model, relation = load_model("tiny-llama"), load_relation("country_capital_city")
    >>> checks = check_facts(model, relation, max_rank=10**9, batch_size=7)
    >>> len(checks) == len(relation.facts), all(c.known for c in checks)
    (True, True)
    >>> again = check_facts(model, relation, max_rank=10**9, facts=relation.facts[:3])
    >>> [(c.rank, round(c.prob, 6)) for c in again] == [(c.rank, round(c.prob, 6)) for c in checks[:3]]
    True
    """
    from circuits.progress import progress_bar

    template = template or relation.template
    check_template(template, f"{relation.source}: template")
    facts = relation.facts if facts is None else facts
    checks: list[FactCheck] = []
    bar = progress_bar(len(facts), f"known facts of {relation.name}", enabled=progress)
    for start in range(0, len(facts), batch_size):
        chunk = facts[start : start + batch_size]
        tokens = [tuple(model.encode(template.replace("{}", f.subject))) for f in chunk]
        answers = [answer_token(model, f.object, where=f"{relation.source}: ") for f in chunk]
        logits = last_logits(model, tokens, batch_size=batch_size)
        answer_ids = torch.tensor(answers)
        answer_logit = logits[torch.arange(len(answers)), answer_ids]
        ranks = (logits > answer_logit[:, None]).sum(-1) + 1
        answer_prob = logits.softmax(-1)[torch.arange(len(answers)), answer_ids]
        checks.extend(
            FactCheck(f, t, a, int(r), float(p), int(r) <= max_rank and float(p) >= min_prob)
            for f, t, a, r, p in zip(chunk, tokens, answers, ranks, answer_prob, strict=True)
        )
        bar.update(len(chunk))
    bar.close()
    return checks
