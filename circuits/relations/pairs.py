"""The prompt pairs every analysis runs on: known facts, counterfactuals, position roles, batches.

:func:`make_pairs` turns a :class:`~circuits.relations.schema.Relation` into
clean/counterfactual :class:`PromptPair` objects for one model:

- the answer is the first token of ``" " + object``;
- only facts the model knows are kept (by default: the answer is its top-1
  next token);
- the corrupted prompt is the same template with another subject of the same
  relation whose prompt has the same token length and whose answer token
  differs (chosen under a seed);
- every prompt carries its position roles (subject span, last subject token,
  relation tokens, last token);
- pairs are split under a seed into a scoring set and a held-out set.

Batches are right-padded: with causal attention a real token never sees the
padding after it, so no attention mask is needed for the positions we read.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuits.relations.facts import FactCheck, answer_token, check_facts, pad_rows
from circuits.relations.roles import role_index
from circuits.relations.schema import Fact, Relation
from circuits.vocab import InputError, NotEnoughFactsError

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel

__all__ = [
    "FactCheck",
    "PairBatch",
    "PairSet",
    "PromptPair",
    "Roles",
    "answer_token",
    "batch_pairs",
    "check_facts",
    "make_pairs",
]  # FactCheck, answer_token and check_facts are re-exported from circuits.relations.facts

log = logging.getLogger(__name__)


# ------------------------------------------------------------ prompt pairs


@dataclass(frozen=True)
class Roles:
    """Positions of a prompt's parts (token indices, BOS included when present).

    ``subject`` is a half-open span ``(start, stop)``; ``relation`` lists the
    template's own tokens; ``last`` is where the answer is predicted.
    """

    subject: tuple[int, int]
    last_subject: int
    relation: tuple[int, ...]
    last: int

    def as_dict(self) -> dict[str, Any]:
        return {"subject": list(self.subject), "last_subject": self.last_subject,
                "relation": list(self.relation), "last": self.last}  # fmt: skip


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt, its counterfactual, their answers and position roles."""

    fact: Fact
    corrupt_fact: Fact
    clean_text: str
    corrupt_text: str
    clean_tokens: tuple[int, ...]
    corrupt_tokens: tuple[int, ...]
    answer: int
    corrupt_answer: int
    answer_text: str
    corrupt_answer_text: str
    roles: Roles
    clean_prob: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.fact.subject, "object": self.fact.object,
            "corrupt_subject": self.corrupt_fact.subject,
            "clean": self.clean_text, "corrupt": self.corrupt_text,
            "clean_tokens": list(self.clean_tokens), "corrupt_tokens": list(self.corrupt_tokens),
            "answer": self.answer, "answer_text": self.answer_text,
            "corrupt_answer": self.corrupt_answer,
            "corrupt_answer_text": self.corrupt_answer_text,
            "clean_prob": round(self.clean_prob, 6), "roles": self.roles.as_dict(),
        }  # fmt: skip


@dataclass
class PairSet:
    """All prompt pairs of one relation for one model, split under a seed.

    Made by :func:`make_pairs`. Scoring (:func:`circuits.score_pairs`) uses
    :attr:`scoring`; faithfulness is measured on :attr:`heldout`
    (:func:`circuits.heldout_evaluator`), so a circuit is never judged on the
    prompts it was found with. The split is reproducible: the same model,
    relation, template, seed and filter give the same pairs.

    Attributes
    ----------
    relation : Relation
        The relation the facts come from.
    model : str
        Name of the model the facts were checked with.
    template : str
        The template every prompt was made with (one ``{}`` for the subject).
    pairs : list of PromptPair
        Every pair, in seeded shuffled order (at most ``max_pairs``); each
        holds the clean and counterfactual texts and token ids, both answers
        (first token of ``" " + object``) and the clean prompt's position roles.
    scoring, heldout : list of PromptPair
        The split of :attr:`pairs`: the last ``round(len(pairs) *
        heldout_fraction)`` pairs (at least one when the fraction is positive)
        are held out.
    n_facts : int
        Facts in the relation.
    n_known : int
        Facts the model knows under the filter in :attr:`settings`.
    n_no_counterfactual : int
        Known facts skipped because no other subject gives a prompt of the same
        token length with a different answer.
    seed : int
        Seed of the counterfactual choice (the shuffle uses ``seed + 1``).
    settings : dict
        The known-fact filter and split: ``max_rank``, ``min_prob``,
        ``heldout_fraction``.
    max_pairs : int or None
        The cap on the number of pairs they were made with.
    n_checked : int or None
        Facts whose answer was checked: all ``n_facts`` unless a pair cap let
        a large relation be checked in part (see :func:`make_pairs`).

    Examples
    --------
    >>> from circuits import load_model, load_relation, make_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = make_pairs(model, load_relation("country_capital_city"), max_rank=10**9, max_pairs=6)
    >>> len(pairs.pairs), len(pairs.scoring), len(pairs.heldout)
    (6, 4, 2)
    >>> pairs.n_facts, pairs.n_known, pairs.settings["max_rank"]
    (95, 95, 1000000000)
    """

    relation: Relation
    model: str
    template: str
    pairs: list[PromptPair]
    scoring: list[PromptPair]
    heldout: list[PromptPair]
    n_facts: int
    n_known: int
    n_no_counterfactual: int
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    max_pairs: int | None = None
    n_checked: int | None = None


@dataclass(frozen=True)
class PairBatch:
    """Right-padded tensors for a list of pairs (clean and corrupt share lengths).

    ``role`` gives each position's role as an index into
    :data:`~circuits.relations.roles.ROLES` (-1 on padding); position-aware
    scores and circuits need it.
    """

    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    mask: Bool[Tensor, "batch pos"]
    last: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]
    role: Int[Tensor, "batch pos"] | None = None

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def to(self, device: torch.device | str) -> PairBatch:
        tensors = (
            self.clean,
            self.corrupt,
            self.mask,
            self.last,
            self.answer,
            self.corrupt_answer,
            self.role,
        )
        return PairBatch(*(t if t is None else t.to(device) for t in tensors))


def _roles(model: LoadedModel, template: str, subject: str) -> Roles:
    text = template.replace("{}", subject)
    encoded = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offset = 1 if model.prepend_bos and model.tokenizer.bos_token_id is not None else 0
    start_char = template.index("{}")
    stop_char = start_char + len(subject)
    subject_positions = [
        i + offset for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < stop_char and b > start_char
    ]
    n = len(encoded["input_ids"]) + offset
    first, last_subject = subject_positions[0], subject_positions[-1]
    relation_positions = tuple(p for p in range(offset, n) if not first <= p <= last_subject)
    return Roles((first, last_subject + 1), last_subject, relation_positions, n - 1)


def make_pairs(
    model: LoadedModel,
    relation: Relation,
    *,
    template: str | None = None,
    seed: int = 0,
    max_rank: int = 1,
    min_prob: float = 0.0,
    min_known: int = 4,
    heldout_fraction: float = 0.4,
    max_pairs: int | None = None,
    progress: bool = False,
) -> PairSet:
    """Clean/counterfactual prompt pairs of the facts ``model`` knows.

    Each known fact's prompt (the template filled with its subject) is paired
    with the same template filled with another subject of the relation whose
    prompt has the same number of tokens and whose answer token differs, known
    subjects preferred. The answer of a prompt is the first token of
    ``" " + object``; the logit-difference metric is the clean answer's logit
    minus the counterfactual answer's. The pairs are shuffled and split under
    ``seed`` into a scoring set and a held-out set.

    Parameters
    ----------
    model : LoadedModel
        The model whose knowledge filters the facts and whose tokenizer makes
        the prompts.
    relation : Relation
        The facts and templates (:func:`~circuits.relations.load_relation`).
    template : str, optional
        One ``{}`` where the subject goes. Defaults to the relation's first
        template.
    seed : int
        Seeds the choice of counterfactual subjects and the split.
    max_rank, min_prob
        A fact is known when its answer's rank among the next-token logits is
        at most ``max_rank`` (1: the model's top prediction) and its
        probability at least ``min_prob``. ``max_rank=10**9`` keeps every fact
        (useful for tiny random models, which know none).
    min_known : int
        Fewer known facts than this is an error.
    heldout_fraction : float
        Share of the pairs kept out of scoring, for evaluation, in ``[0, 1)``.
    max_pairs : int, optional
        Keep at most this many pairs (after the seeded shuffle, before the split).
        A relation with more than :func:`fact_budget` facts is then not checked
        whole: its facts are checked in a seeded random order, a budget at a
        time, until enough of them are known and have a counterfactual
        (``n_facts`` still counts them all; ``n_checked`` says how many were run).
    progress : bool
        A progress bar over the known-fact check on stderr.

    Returns
    -------
    PairSet
        The pairs, their split and the counts behind them (facts, known facts,
        facts without a counterfactual).

    Raises
    ------
    NotEnoughFactsError
        Fewer than ``min_known`` facts are known, or fewer than 2 known facts
        have a counterfactual.
    InputError
        ``heldout_fraction`` is outside ``[0, 1)`` or the template is not one
        with a single ``{}``.

    Examples
    --------
    >>> from circuits import load_model, load_relation, make_pairs
    >>> model = load_model("tiny-llama")
    >>> relation = load_relation("country_capital_city")
    >>> pairs = make_pairs(model, relation, max_rank=10**9, max_pairs=6, seed=0)
    >>> len(pairs.scoring), len(pairs.heldout)
    (4, 2)
    >>> pair = pairs.pairs[0]
    >>> pair.clean_text == relation.template.replace("{}", pair.fact.subject)
    True
    >>> len(pair.clean_tokens) == len(pair.corrupt_tokens), pair.answer != pair.corrupt_answer
    (True, True)
    >>> pair.roles.last == len(pair.clean_tokens) - 1
    True

    A random model does not know the facts at rank 1 (the default filter):

    >>> make_pairs(model, relation)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuits.vocab.NotEnoughFactsError: relation 'country_capital_city': tiny-llama knows ... of 95 facts ...
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise InputError(f"heldout_fraction must lie in [0, 1), not {heldout_fraction}")
    if max_pairs is not None and max_pairs < (2 if heldout_fraction > 0 else 1):
        raise InputError(f"max_pairs must be at least 2 (one pair to score, one held out), not {max_pairs}")
    template = template or relation.template
    checks = _checked_facts(model, relation, template, max_rank, min_prob, max_pairs, seed, progress)
    known = [c for c in checks if c.known]
    if len(known) < min_known:
        raise NotEnoughFactsError(
            f"relation {relation.name!r}: {model.name} knows {len(known)} of "
            f"{len(checks)} facts with template {template!r} (rank <= {max_rank}, "
            f"p >= {min_prob}); at least {min_known} are needed"
        )
    rng = random.Random(seed)
    pairs: list[PromptPair] = []
    missing = 0
    same_length: dict[int, list[FactCheck]] = {}
    for other in checks:
        same_length.setdefault(len(other.tokens), []).append(other)
    for check in known:
        partners = [
            other for other in same_length[len(check.tokens)]
            if other.fact != check.fact and other.answer != check.answer
        ]  # fmt: skip
        # Prefer counterfactuals the model knows: its own answer is then a
        # meaningful rival in the logit difference.
        preferred = [p for p in partners if p.known] or partners
        if not preferred:
            missing += 1
            continue
        other = rng.choice(preferred)
        tokenizer = model.tokenizer
        pairs.append(PromptPair(
            fact=check.fact, corrupt_fact=other.fact,
            clean_text=template.replace("{}", check.fact.subject),
            corrupt_text=template.replace("{}", other.fact.subject),
            clean_tokens=check.tokens, corrupt_tokens=other.tokens,
            answer=check.answer, corrupt_answer=other.answer,
            answer_text=tokenizer.decode([check.answer]),
            corrupt_answer_text=tokenizer.decode([other.answer]),
            roles=_roles(model, template, check.fact.subject), clean_prob=check.prob,
        ))  # fmt: skip
    if missing:
        log.warning("relation %s: %d known facts have no equal-length counterfactual; skipped",
                    relation.name, missing)  # fmt: skip
    if len(pairs) < 2:
        raise NotEnoughFactsError(
            f"relation {relation.name!r}: only {len(pairs)} known facts have an equal-length "
            f"counterfactual ({missing} skipped); at least 2 are needed"
        )
    order = list(range(len(pairs)))
    random.Random(seed + 1).shuffle(order)
    pairs = [pairs[i] for i in order][:max_pairs]
    n_heldout = max(1, round(len(pairs) * heldout_fraction)) if heldout_fraction > 0 else 0
    scoring, heldout = pairs[: len(pairs) - n_heldout], pairs[len(pairs) - n_heldout :]
    settings = {"max_rank": max_rank, "min_prob": min_prob, "heldout_fraction": heldout_fraction}
    return PairSet(relation, model.name, template, pairs, scoring, heldout, len(relation.facts),
                   len(known), missing, seed, settings, max_pairs, len(checks))  # fmt: skip


FACT_BUDGET = 512
"""Facts checked at a time when a pair cap makes checking a large relation whole unnecessary."""


def fact_budget(max_pairs: int | None) -> int | None:
    """How many facts are checked at a time for ``max_pairs`` pairs (``None``: all of them).

    >>> fact_budget(None), fact_budget(8), fact_budget(200)
    (None, 512, 1600)
    """
    return None if max_pairs is None else max(FACT_BUDGET, 8 * max_pairs)


def _checked_facts(model: LoadedModel, relation: Relation, template: str, max_rank: int, min_prob: float,
                   max_pairs: int | None, seed: int, progress: bool) -> list[FactCheck]:  # fmt: skip
    """The fact checks pairs are made from: every fact, or for a large relation and a pair cap, enough of them.

    A relation within the budget is checked whole and in its own order (so the
    pairs are the same as with no cap). A larger one is checked in a seeded
    random order, one budget at a time, until at least ``max_pairs`` known
    facts have an equal-length partner with another answer among the checked facts.
    """
    budget = fact_budget(max_pairs)
    facts = relation.facts
    if budget is None or len(facts) <= budget:
        return check_facts(model, relation, template=template, max_rank=max_rank, min_prob=min_prob,
                           progress=progress)  # fmt: skip
    order = list(range(len(facts)))
    random.Random(seed + 2).shuffle(order)
    checks: list[FactCheck] = []
    for start in range(0, len(order), budget):
        chunk = [facts[i] for i in order[start : start + budget]]
        checks += check_facts(model, relation, template=template, max_rank=max_rank, min_prob=min_prob,
                              facts=chunk, progress=progress)  # fmt: skip
        by_length: dict[int, set[int]] = {}
        for c in checks:
            by_length.setdefault(len(c.tokens), set()).add(c.answer)
        pairable = sum(1 for c in checks if c.known and len(by_length[len(c.tokens)] - {c.answer}) > 0)
        if pairable >= max_pairs:  # type: ignore[operator]
            break
    log.info("relation %s: checked %d of %d facts (a budget of %d at a time) for %d pairs",
             relation.name, len(checks), len(facts), budget, max_pairs)  # fmt: skip
    return checks


def batch_pairs(pairs: Sequence[PromptPair], *, pad: int = 0) -> PairBatch:
    """Right-padded tensors of clean and corrupt tokens, with each row's last position."""
    if not pairs:
        raise InputError("no prompt pairs to batch")
    clean, mask, last = pad_rows([p.clean_tokens for p in pairs], pad)
    corrupt, _, _ = pad_rows([p.corrupt_tokens for p in pairs], pad)
    answer = torch.tensor([p.answer for p in pairs], dtype=torch.long)
    corrupt_answer = torch.tensor([p.corrupt_answer for p in pairs], dtype=torch.long)
    n_pos = int(clean.shape[1])
    role = torch.tensor([role_index(p.roles, n_pos) for p in pairs], dtype=torch.long)
    return PairBatch(clean, corrupt, mask, last, answer, corrupt_answer, role)
