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

The records are in :mod:`circuits.relations.pair_set`, the tensors a batch of
pairs runs as in :mod:`circuits.relations.batches`; every name is importable
from here too.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from circuits.relations.batches import PairBatch, batch_pairs
from circuits.relations.facts import FactCheck, answer_token, check_facts, checked_facts, encoder
from circuits.relations.pair_set import PairSet, PromptPair
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
from circuits.relations.roles import Roles, prompt_roles
from circuits.relations.schema import Relation, check_template
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
]  # FactCheck, answer_token, check_facts from .facts; PairBatch, batch_pairs from .batches; and more


log = logging.getLogger(__name__)


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
    >>> for fmt in pairs.formats:  # a random model knows every fact: each template is as good
    ...     print(fmt.label())
    0-shot 'The capital of Kenya is Nairobi. The capital of {} is'
    1-shot 'The capital city of {} is'
    1-shot 'The capital of {} is'
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
    """``--templates best`` (:func:`~circuits.relations.prompts.pick_formats`): formats tried, and chosen."""

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
    """Each known fact of one format with a counterfactual: same demonstrations and length, another answer."""
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
    """Scoring and held-out pairs: about ``heldout_fraction`` held out, whole facts at a time from the end."""
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
    """The pairs a scored graph was made with, from its metadata (``override`` replaces a keyword).

    Reads the ``prompt`` record of :meth:`PairSet.prompt_record` (a graph
    scored before it existed used its ``template`` with no demonstrations),
    the split seed, the held-out fraction, the known-fact filter and the cap.

    >>> from circuits import load_model, load_relation
    >>> model, rel = load_model("tiny-llama"), load_relation("country_capital_city")
    >>> pairs = make_pairs(model, rel, templates="all", max_rank=10**9, max_pairs=9, seed=3)
    >>> meta = {"prompt": pairs.prompt_record(), "split_seed": 3, "heldout_fraction": 0.4,
    ...         "known_filter": pairs.settings, "max_pairs": 9}
    >>> again = remake_pairs(model, rel, meta)
    >>> [p.clean_text for p in again.heldout] == [p.clean_text for p in pairs.heldout]
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
