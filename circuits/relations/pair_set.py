"""The records of prompt pairs (torch-free): a clean/counterfactual :class:`PromptPair`, a :class:`PairSet`.

:func:`~circuits.relations.pairs.make_pairs` makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from circuits.relations.prompts import PromptFormat
from circuits.relations.roles import Roles
from circuits.relations.schema import Fact, Relation

__all__ = ["PairSet", "PromptPair"]


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
