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

from circuits.relations.facts import FactCheck, answer_token, check_facts, checked_facts, encoder, pad_rows
from circuits.relations.prompts import (
    RESCUE_SHOTS,
    DemoPicker,
    PromptFormat,
    default_shots,
    formats_of,
    needs_rescue,
    parse_templates,
    pick_formats,
)
from circuits.relations.roles import Roles, prompt_roles, role_index
from circuits.relations.schema import Fact, Relation, check_template
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
    "remake_pairs",
]  # FactCheck, answer_token and check_facts are re-exported from circuits.relations.facts

log = logging.getLogger(__name__)


# ------------------------------------------------------------ prompt pairs


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
    template: str = ""
    demos: tuple[Fact, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.fact.subject,
            "object": self.fact.object,
            "corrupt_subject": self.corrupt_fact.subject,
            "clean": self.clean_text,
            "corrupt": self.corrupt_text,
            "clean_tokens": list(self.clean_tokens),
            "corrupt_tokens": list(self.corrupt_tokens),
            "answer": self.answer,
            "answer_text": self.answer_text,
            "corrupt_answer": self.corrupt_answer,
            "corrupt_answer_text": self.corrupt_answer_text,
            "clean_prob": round(self.clean_prob, 6),
            "roles": self.roles.as_dict(),
            "template": self.template,
            "demos": [[d.subject, d.object] for d in self.demos],
        }


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
    formats : tuple of PromptFormat
        The prompt formats (template and shot count) the pairs were made
        with: one, or every template with ``templates="all"``.
    request : dict
        What was asked for: ``templates`` (``"best"``, ``"first"``, ``"all"``,
        an index, or ``"given"`` for an explicit template) and ``shots``
        (``None``: each template's default).
    per_format : list of dict
        For every format tried: its template, shots, facts checked and
        known, and pairs made (``chosen`` marks the ones used).

    Examples
    --------
    >>> from circuits import load_model, load_relation, make_pairs
    >>> model = load_model("tiny-llama")
    >>> pairs = make_pairs(model, load_relation("country_capital_city"), max_rank=10**9, max_pairs=6)
    >>> len(pairs.pairs), len(pairs.scoring), len(pairs.heldout)
    (6, 3, 3)
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
    formats: tuple[PromptFormat, ...] = ()
    request: dict[str, Any] = field(default_factory=dict)
    per_format: list[dict[str, Any]] = field(default_factory=list)

    def prompt_record(self) -> dict[str, Any]:
        """How the prompts were made, for a scored graph's metadata; :func:`remake_pairs` reads it back.

        ``formats`` are the formats used (template and shots), so the same
        pairs are remade without choosing again; ``templates`` and ``shots``
        are what was asked for, ``per_format`` what every format tried gave.
        """
        return {
            "templates": self.request.get("templates"),
            "shots": self.request.get("shots"),
            "formats": [f.as_dict() for f in self.formats],
            "per_format": self.per_format,
        }


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

    def rows(self, start: int, stop: int) -> PairBatch:
        """Pairs ``start:stop``, their padding trimmed to the longest of them (a mini-batch of a stream).

        >>> import torch
        >>> ones = torch.ones(2, 4, dtype=torch.long)
        >>> mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]).bool()
        >>> b = PairBatch(ones, ones, mask, torch.tensor([1, 3]), torch.tensor([5, 6]), torch.tensor([7, 8]))
        >>> part = b.rows(0, 1)
        >>> tuple(part.clean.shape), part.answer.tolist(), len(b.rows(0, 2))
        ((1, 2), [5], 2)
        """
        width = int(self.mask[start:stop].any(0).nonzero().max()) + 1
        tensors = (self.clean, self.corrupt, self.mask)
        cut = [t[start:stop, :width] for t in tensors]
        tail = [self.last[start:stop], self.answer[start:stop], self.corrupt_answer[start:stop]]
        role = None if self.role is None else self.role[start:stop, :width]
        return PairBatch(*cut, *tail, role)


def make_pairs(
    model: LoadedModel,
    relation: Relation,
    *,
    template: str | None = None,
    templates: str | int = "best",
    shots: int | None = None,
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
        One ``{}`` where the subject goes; replaces the relation's templates.
    templates : {"best", "first", "all"}, int or list of PromptFormat
        Which of the relation's templates (without ``template``): the best
        ones (the default: the template under which the model knows the most
        facts and every other that knows at least half as many; see
        :mod:`circuits.relations.prompts`), the first, every one (each fact
        once per template, so a relation with few known facts yields more
        pairs), the one at an index, or the exact formats a scored graph
        recorded.
    shots : int, optional
        Demonstrations from the relation's other facts before every prompt,
        the same in a pair's clean and counterfactual prompt, never that
        pair's facts and never holding either answer token. Default: 1 for a
        template without a demonstration of its own, 0 for one with.
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
        A relation with more than :func:`~circuits.relations.facts.fact_budget` facts is then not checked
        whole: its facts are checked in a seeded random order, a budget at a
        time, until enough of them are known and have a counterfactual
        (``n_facts`` still counts them all; ``n_checked`` says how many were run).
    progress : bool
        A progress bar over the known-fact check on stderr.

    Returns
    -------
    PairSet
        The pairs, their split (whole facts: a fact's pairs under several
        templates are all scored or all held out) and the counts behind them
        (facts, known facts, facts without a counterfactual, per format).

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
    (3, 3)
    >>> pair = pairs.pairs[0]
    >>> pair.clean_text.endswith(pair.template.replace("{}", pair.fact.subject)), pair.fact not in pair.demos
    (True, True)
    >>> [f.label() for f in pairs.formats]  # a random model knows every fact: each template is as good
    ["0-shot 'The capital of Kenya is Nairobi. The capital of {} is'", "1-shot 'The capital city of {} is'", "1-shot 'The capital of {} is'"]
    >>> first = make_pairs(model, relation, templates="first", max_rank=10**9, max_pairs=6)
    >>> first.pairs[0].clean_text == relation.template.replace("{}", first.pairs[0].fact.subject)
    True
    >>> len(pair.clean_tokens) == len(pair.corrupt_tokens), pair.answer != pair.corrupt_answer
    (True, True)
    >>> pair.roles.last == len(pair.clean_tokens) - 1
    True

    Every template, each with one demonstration (its own or one drawn from the facts):

    >>> every = make_pairs(model, relation, templates="all", max_rank=10**9, seed=0)
    >>> len(every.formats), len(every.pairs) > len(relation.facts), len({p.template for p in every.pairs})
    (3, True, 3)
    >>> both = {p.fact.subject for p in every.scoring} & {p.fact.subject for p in every.heldout}
    >>> both
    set()

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
    if template is not None:
        check_template(template, "template")
        if shots is not None and shots < 0:
            raise InputError(f"shots must be 0 or more, not {shots}")
        formats = [PromptFormat(template, default_shots(template) if shots is None else shots)]
        request: dict[str, Any] = {"templates": "given", "shots": shots}
    elif isinstance(templates, list | tuple):  # formats recorded by a scored graph, remade as they were
        formats = [PromptFormat(f.template, f.shots) for f in templates]
        request = {"templates": "formats", "shots": shots}
    else:
        formats = formats_of(relation, templates, shots)
        request = {"templates": parse_templates(templates), "shots": shots}

    def check(fmt: PromptFormat) -> tuple[DemoPicker, list[FactCheck]]:
        picker = DemoPicker(relation, fmt, seed=seed, encode=encoder(model))
        return picker, checked_facts(model, relation, picker, max_rank, min_prob, max_pairs, seed, progress)

    tried = [check(fmt) for fmt in formats]
    chosen = tried
    if request["templates"] == "best":
        tried, chosen = _best(tried, check, rescue=shots is None)
    known = {c.fact for _, checks in chosen for c in checks if c.known}
    n_checked = max(len(checks) for _, checks in chosen)
    if len(known) < min_known:
        what = chosen[0][0].fmt.label() if len(chosen) == 1 else f"{len(chosen)} templates"
        raise NotEnoughFactsError(
            f"relation {relation.name!r}: {model.name} knows {len(known)} of "
            f"{n_checked} facts with {what} (rank <= {max_rank}, "
            f"p >= {min_prob}); at least {min_known} are needed"
        )
    rng = random.Random(seed)
    pairs: list[PromptPair] = []
    missing = 0
    rows = []
    for picker, checks in tried:
        used = any(p is picker for p, _ in chosen)
        made, lacking = _pair_up(model, picker, checks, rng) if used else ([], 0)
        pairs += made
        missing += lacking
        rows.append(
            {
                **picker.fmt.as_dict(),
                "n_checked": len(checks),
                "n_known": sum(c.known for c in checks),
                "n_pairs": len(made),
                "chosen": used,
            }
        )
    if missing:
        log.warning(
            "relation %s: %d known facts have no equal-length counterfactual; skipped", relation.name, missing
        )
    if len(pairs) < 2:
        raise NotEnoughFactsError(
            f"relation {relation.name!r}: only {len(pairs)} known facts have an equal-length "
            f"counterfactual ({missing} skipped); at least 2 are needed"
        )
    order = list(range(len(pairs)))
    random.Random(seed + 1).shuffle(order)
    pairs = [pairs[i] for i in order][:max_pairs]
    scoring, heldout = _split(pairs, heldout_fraction)
    settings = {"max_rank": max_rank, "min_prob": min_prob, "heldout_fraction": heldout_fraction}
    fmts = tuple(picker.fmt for picker, _ in chosen)
    return PairSet(
        relation,
        model.name,
        fmts[0].template,
        pairs,
        scoring,
        heldout,
        len(relation.facts),
        len(known),
        missing,
        seed,
        settings,
        max_pairs,
        n_checked,
        fmts,
        request,
        rows,
    )


def _best(tried: list[Any], check: Any, *, rescue: bool) -> tuple[list[Any], list[Any]]:
    """``--templates best`` (:func:`~circuits.relations.prompts.pick_formats`): every format tried and the chosen ones."""

    def known(entry: Any) -> int:
        return sum(c.known for c in entry[1])

    if rescue and needs_rescue([known(e) for e in tried]):
        tried = tried + [
            check(PromptFormat(e[0].fmt.template, RESCUE_SHOTS))
            for e in tried
            if e[0].fmt.shots < RESCUE_SHOTS
        ]
    kept = pick_formats([(e[0].fmt, known(e)) for e in tried])
    return tried, [e for e in tried if e[0].fmt in kept]


def _pair_up(
    model: LoadedModel, picker: DemoPicker, checks: Sequence[FactCheck], rng: random.Random
) -> tuple[list[PromptPair], int]:
    """Each known fact of one format with a counterfactual: same demonstrations, same token length, another answer."""
    fmt = picker.fmt
    pairs: list[PromptPair] = []
    missing = 0
    same_length: dict[int, list[FactCheck]] = {}
    for other in checks:
        if other.demos is not None:
            same_length.setdefault(len(other.tokens), []).append(other)
    tokenizer = model.tokenizer
    for check in checks:
        if not check.known or check.demos is None:
            continue
        demos = check.demos
        partners: list[tuple[FactCheck, tuple[int, ...]]] = []
        for other in same_length[len(check.tokens)]:
            if other.fact == check.fact or other.answer == check.answer:
                continue
            if other.demos == demos:
                partners.append((other, other.tokens))
            elif picker.allows(demos, other.fact, other.answer):
                tokens = tuple(model.encode(fmt.text(other.fact, demos)))
                if len(tokens) == len(check.tokens):
                    partners.append((other, tokens))
        # Prefer counterfactuals the model knows: its own answer is then a
        # meaningful rival in the logit difference.
        preferred = [p for p in partners if p[0].known] or partners
        if not preferred:
            missing += 1
            continue
        other, corrupt_tokens = rng.choice(preferred)
        pairs.append(
            PromptPair(
                fact=check.fact,
                corrupt_fact=other.fact,
                clean_text=fmt.text(check.fact, demos),
                corrupt_text=fmt.text(other.fact, demos),
                clean_tokens=check.tokens,
                corrupt_tokens=corrupt_tokens,
                answer=check.answer,
                corrupt_answer=other.answer,
                answer_text=tokenizer.decode([check.answer]),
                corrupt_answer_text=tokenizer.decode([other.answer]),
                roles=prompt_roles(model, fmt, check.fact, demos),
                clean_prob=check.prob,
                template=fmt.template,
                demos=demos,
            )
        )
    return pairs, missing


def _split(pairs: list[PromptPair], heldout_fraction: float) -> tuple[list[PromptPair], list[PromptPair]]:
    """Scoring and held-out pairs: about ``heldout_fraction`` of them held out, whole facts at a time, from the end."""
    if heldout_fraction <= 0:
        return list(pairs), []
    target = max(1, round(len(pairs) * heldout_fraction))
    count: dict[str, int] = {}
    for p in pairs:
        count[p.fact.subject] = count.get(p.fact.subject, 0) + 1
    held: set[str] = set()
    n_held = 0
    for p in reversed(pairs):
        if n_held >= target:
            break
        if p.fact.subject not in held:
            held.add(p.fact.subject)
            n_held += count[p.fact.subject]
    return [p for p in pairs if p.fact.subject not in held], [p for p in pairs if p.fact.subject in held]


def remake_pairs(model: LoadedModel, relation: Relation, meta: dict[str, Any], **override: Any) -> PairSet:
    """The pairs a scored graph was made with, from its metadata (``override`` replaces a keyword, e.g. ``max_pairs``).

    Reads the ``prompt`` record of :meth:`PairSet.prompt_record` (a graph
    scored before it existed used its ``template`` with no demonstrations),
    the split seed, the held-out fraction, the known-fact filter and the cap.

    >>> from circuits import load_model, load_relation
    >>> model, rel = load_model("tiny-llama"), load_relation("country_capital_city")
    >>> pairs = make_pairs(model, rel, templates="all", max_rank=10**9, max_pairs=9, seed=3)
    >>> meta = {"prompt": pairs.prompt_record(), "split_seed": 3, "heldout_fraction": 0.4,
    ...         "known_filter": pairs.settings, "max_pairs": 9}
    >>> [p.clean_text for p in remake_pairs(model, rel, meta).heldout] == [p.clean_text for p in pairs.heldout]
    True
    """
    known = meta.get("known_filter", {})
    prompt = meta.get("prompt")
    if prompt is None:
        chosen: dict[str, Any] = {"template": meta.get("template"), "shots": 0}
    else:
        chosen = {"templates": [PromptFormat(f["template"], int(f["shots"])) for f in prompt["formats"]]}
    kwargs = {
        **chosen,
        "seed": meta["split_seed"],
        "heldout_fraction": meta.get("heldout_fraction", 0.4),
        "max_rank": known.get("max_rank", 1),
        "min_prob": known.get("min_prob", 0.0),
        "max_pairs": meta.get("max_pairs"),
    }
    return make_pairs(model, relation, **{**kwargs, **override})


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
