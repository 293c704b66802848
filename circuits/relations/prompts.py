"""How a fact becomes a prompt: a template, and demonstrations drawn from the relation's own facts
(torch-free).

A *prompt format* is one template and a number of shots. With ``shots = N``
the prompt of a fact starts with N demonstrations, each the template's query
filled with another fact's subject and followed by that fact's object::

    The capital of Peru is Lima. The capital of Japan is Tokyo. The capital of France is

The demonstrations are drawn under a seed from one fixed order of the
relation's facts, so most prompts of a relation share them (and their
tokens). A demonstration is never the prompt's own fact nor its
counterfactual's, and never holds either answer's token: the answer is not
leaked into the context.

A template may already carry a demonstration of its own (``"The capital of
Kenya is Nairobi. The capital of {} is"``): the text before the last sentence
break ahead of the ``{}``. Its tokens belong to the ``demo`` role too; the
default shot count is 0 for such a template and 1 for a plain one.

Which templates a prompt set uses (``templates``):

- ``"first"``: the relation's first template;
- an index ``i``: its ``i``-th template (from 0);
- ``"all"``: every template, each fact once per template;
- ``"best"`` (what ``circuits score`` does by default): the template under
  which the model knows the most facts, and every other template under which
  it knows at least half as many (more pairs, and a circuit of the relation
  rather than of one phrasing). With the default shot counts and fewer than
  :data:`RESCUE_KNOWN` facts known under the best template, each template is
  also tried with :data:`RESCUE_SHOTS` demonstrations and keeps the count
  under which the model knows more.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from circuits.relations.schema import Fact, Relation
from circuits.vocab import InputError

__all__ = [
    "CHOICES",
    "SHOT_COUNTS",
    "DemoPicker",
    "PromptFormat",
    "default_shots",
    "demo_sentence",
    "formats_of",
    "needs_rescue",
    "parse_templates",
    "pick_formats",
    "split_template",
]

CHOICES = ("best", "first", "all")
"""The named template choices; an index (0, 1, ...) picks one template."""

SHOT_COUNTS = (0, 1, 3)
"""The shot counts ``circuits relations FILE --model M`` shows."""

_BREAK = re.compile(r"[.!?;:]\s+|\n+")


def split_template(template: str) -> tuple[str, str]:
    """``(demonstration, query)``: the text before the last sentence break ahead of ``{}``, and the rest.

    >>> split_template("The capital of Kenya is Nairobi. The capital of {} is")
    ('The capital of Kenya is Nairobi. ', 'The capital of {} is')
    >>> split_template("{} is located in the country of")
    ('', '{} is located in the country of')
    >>> split_template("Today I {}. Yesterday I also")
    ('', 'Today I {}. Yesterday I also')
    """
    head = template[: template.index("{}")]
    breaks = list(_BREAK.finditer(head))
    if not breaks:
        return "", template
    stop = breaks[-1].end()
    return template[:stop], template[stop:]


def default_shots(template: str) -> int:
    """1 for a template with no demonstration of its own, 0 for one that carries one.

    >>> default_shots("The capital of {} is"), default_shots("Kenya is in Africa. {} is in the continent of")
    (1, 0)
    """
    return 0 if split_template(template)[0] else 1


def demo_sentence(template: str, fact: Fact) -> str:
    """The template's query filled with ``fact``'s subject, then its object and a full stop.

    >>> demo_sentence("Kenya is in Africa. {} is in the continent of", Fact("Peru", "South America"))
    'Peru is in the continent of South America.'
    """
    return split_template(template)[1].replace("{}", fact.subject) + " " + fact.object + "."


@dataclass(frozen=True)
class PromptFormat:
    """One template and how many demonstrations from the relation's own facts precede it.

    >>> fmt = PromptFormat("The capital of {} is", 2)
    >>> fmt.text(Fact("France", "Paris"), (Fact("Peru", "Lima"), Fact("Japan", "Tokyo")))
    'The capital of Peru is Lima. The capital of Japan is Tokyo. The capital of France is'
    >>> fmt.query_start((Fact("Peru", "Lima"), Fact("Japan", "Tokyo")))
    60
    >>> fmt.label()
    "2-shot 'The capital of {} is'"
    """

    template: str
    shots: int

    def prefix(self, demos: Sequence[Fact]) -> str:
        """The demonstrations' text, each sentence followed by a space."""
        return "".join(demo_sentence(self.template, d) + " " for d in demos)

    def text(self, fact: Fact, demos: Sequence[Fact]) -> str:
        """The whole prompt of ``fact`` with ``demos`` before it."""
        return self.prefix(demos) + self.template.replace("{}", fact.subject)

    def query_start(self, demos: Sequence[Fact]) -> int:
        """Character offset where the demonstrations (generated and the template's own) end."""
        return len(self.prefix(demos)) + len(split_template(self.template)[0])

    def subject_start(self, demos: Sequence[Fact]) -> int:
        """Character offset of the subject in the prompt."""
        return len(self.prefix(demos)) + self.template.index("{}")

    def label(self) -> str:
        return f"{self.shots}-shot {self.template!r}"

    def as_dict(self) -> dict[str, Any]:
        return {"template": self.template, "shots": self.shots}


def parse_templates(text: str | int) -> str | int:
    """A ``--templates`` value: one of :data:`CHOICES` or a template index (0, 1, ...).

    >>> parse_templates("all"), parse_templates("2"), parse_templates(1)
    ('all', 2, 1)
    >>> parse_templates("second")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: templates 'second' is not valid;
    give best, first, all, or a template index (0, 1, ...)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InputError(f"template index {text} is negative; the first template is 0")
        return text
    value = str(text).strip()
    if value in CHOICES:
        return value
    if value.isdigit():
        return int(value)
    raise InputError(
        f"templates {text!r} is not valid; give {', '.join(CHOICES)}, or a template index (0, 1, ...)"
    )


def formats_of(relation: Relation, templates: str | int, shots: int | None) -> list[PromptFormat]:
    """The prompt formats ``templates`` names (every template for ``"best"`` and ``"all"``).

    ``shots=None`` gives each template its :func:`default_shots`.

    >>> from circuits.relations import load_relation
    >>> rel = load_relation("country_capital_city")
    >>> [f.shots for f in formats_of(rel, "all", None)], formats_of(rel, 2, 3)[0].label()
    ([0, 1, 1], "3-shot 'The capital of {} is'")
    >>> formats_of(rel, 5, None)
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: relation country_capital_city has 3 templates (0 to 2); there is no template 5
    """
    templates = parse_templates(templates)
    if shots is not None and shots < 0:
        raise InputError(f"shots must be 0 or more, not {shots}")
    every = relation.prompt_templates
    if isinstance(templates, int):
        if templates >= len(every):
            raise InputError(
                f"relation {relation.name} has {len(every)} templates (0 to {len(every) - 1}); "
                f"there is no template {templates}"
            )
        chosen: Sequence[str] = [every[templates]]
    elif templates == "first":
        chosen = every[:1]
    else:
        chosen = every
    return [PromptFormat(t, default_shots(t) if shots is None else shots) for t in chosen]


RESCUE_KNOWN = 32
"""With the default shot counts, templates that leave fewer known facts than this are tried with
:data:`RESCUE_SHOTS`."""

RESCUE_SHOTS = 3


def needs_rescue(known: Sequence[int]) -> bool:
    """Whether ``best`` also tries :data:`RESCUE_SHOTS` demonstrations:
    the best template knows too few facts."""
    return max(known, default=0) < RESCUE_KNOWN


def pick_formats(tried: Sequence[tuple[PromptFormat, int]]) -> list[PromptFormat]:
    """What ``--templates best`` keeps of the formats tried, each with its count of known facts.

    Each template keeps its format under which the model knows the most
    facts (ties go to the one tried first: its default shot count); then every
    template whose count is at least half the best one's is kept, in the order
    tried.

    >>> a0, a3, b1, c1 = (PromptFormat("a {}", 0), PromptFormat("a {}", 3), PromptFormat("b {}", 1),
    ...                   PromptFormat("c {}", 1))
    >>> [f.label() for f in pick_formats([(a0, 10), (b1, 30), (c1, 14), (a3, 25)])]
    ["3-shot 'a {}'", "1-shot 'b {}'"]
    """
    best: dict[str, tuple[PromptFormat, int]] = {}
    for fmt, known in tried:
        if fmt.template not in best or known > best[fmt.template][1]:
            best[fmt.template] = (fmt, known)
    top = max(known for _, known in best.values())
    kept = [fmt for fmt, known in best.values() if known > 0 and 2 * known >= top]
    return kept or [next(iter(best.values()))[0]]


class DemoPicker:
    """Seeded demonstrations for the prompts of one relation under one format.

    Candidates come in one fixed seeded order of the relation's facts; a
    prompt takes the first ``shots`` of them that are neither an excluded
    fact nor hold an excluded answer token (``encode`` gives a sentence's
    token ids). Most prompts therefore share the same demonstrations.

    >>> rel = Relation("r", "r", ("The capital of {} is",), (), {}, (Fact("France", "Paris"),
    ...     Fact("Peru", "Lima"), Fact("Japan", "Tokyo"), Fact("Chad", "N'Djamena")))
    >>> encode = lambda text: [hash(w) % 1000 for w in text.split()]
    >>> picker = DemoPicker(rel, PromptFormat("The capital of {} is", 2), seed=0, encode=encode)
    >>> demos = picker.pick([Fact("France", "Paris")], [hash("Paris.") % 1000])
    >>> len(demos), Fact("France", "Paris") in demos
    (2, False)
    >>> picker.pick([Fact("France", "Paris")], [hash("Paris.") % 1000]) == demos
    True
    """

    def __init__(
        self, relation: Relation, fmt: PromptFormat, *, seed: int, encode: Callable[[str], Sequence[int]]
    ) -> None:
        self.fmt = fmt
        self.order = list(relation.facts)
        random.Random(seed + 3).shuffle(self.order)
        self._encode = encode
        self._tokens: dict[Fact, frozenset[int]] = {}

    def tokens(self, fact: Fact) -> frozenset[int]:
        """Token ids of ``fact``'s demonstration sentence (cached)."""
        if fact not in self._tokens:
            sentence = " " + demo_sentence(self.fmt.template, fact)
            self._tokens[fact] = frozenset(int(t) for t in self._encode(sentence))
        return self._tokens[fact]

    def pick(self, exclude: Sequence[Fact], answers: Sequence[int]) -> tuple[Fact, ...] | None:
        """The demonstrations of a prompt (``None`` when too few facts qualify)."""
        if self.fmt.shots == 0:
            return ()
        subjects = {f.subject for f in exclude}
        banned = set(answers)
        out: list[Fact] = []
        for fact in self.order:
            if fact.subject in subjects or banned & self.tokens(fact):
                continue
            out.append(fact)
            if len(out) == self.fmt.shots:
                return tuple(out)
        return None

    def allows(self, demos: Sequence[Fact], fact: Fact, answer: int) -> bool:
        """Whether ``demos`` may precede ``fact`` (not among them, its answer in none of them)."""
        return all(d.subject != fact.subject and answer not in self.tokens(d) for d in demos)
