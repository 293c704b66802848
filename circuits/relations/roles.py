"""Position roles: a partition of a prompt's positions, used by the mechanism analyses and by
position-aware edge scores and circuits.

Every position up to the last belongs to exactly one role:

- ``first``: position 0, the attention sink, unless it is a subject token;
- ``demo``: the demonstrations before the query (few-shot sentences drawn
  from the relation's facts, and a template's own demonstration);
- ``subject``: the subject's tokens;
- ``relation``: every other token before the last (the query's own words);
- ``last``: where the answer is predicted.

A *source set* names one role or several joined by ``+`` (``subject+relation``);
``all`` is every role. Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circuits.vocab import InputError

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel
    from circuits.relations.prompts import PromptFormat
    from circuits.relations.schema import Fact

__all__ = [
    "READERS",
    "ROLES",
    "Roles",
    "parse_source_sets",
    "prompt_roles",
    "role_index",
    "role_positions",
    "source_name",
    "source_positions",
]


@dataclass(frozen=True)
class Roles:
    """Positions of a prompt's parts (token indices, BOS included when present).

    ``subject`` is a half-open span ``(start, stop)``; ``relation`` lists the
    query's own tokens (the template's words, no demonstration); ``last`` is
    where the answer is predicted; ``demo`` is the half-open span of the
    demonstrations before the query (the generated shots and the template's
    own demonstration; ``(0, 0)`` when there is none).
    """

    subject: tuple[int, int]
    last_subject: int
    relation: tuple[int, ...]
    last: int
    demo: tuple[int, int] = (0, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": list(self.subject),
            "last_subject": self.last_subject,
            "relation": list(self.relation),
            "last": self.last,
            "demo": list(self.demo),
        }


def prompt_roles(model: LoadedModel, fmt: PromptFormat, fact: Fact, demos: Sequence[Fact]) -> Roles:
    """The roles of ``fact``'s prompt under ``fmt`` after ``demos``,
    from the tokenizer's character offsets."""
    text = fmt.text(fact, demos)
    encoded = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offset = 1 if model.prepend_bos and model.tokenizer.bos_token_id is not None else 0
    start_char = fmt.subject_start(demos)
    stop_char = start_char + len(fact.subject)
    query_char = fmt.query_start(demos)
    spans = encoded["offset_mapping"]
    subject_positions = [i + offset for i, (a, b) in enumerate(spans) if a < stop_char and b > start_char]
    # a token is the demonstrations' when its first visible character lies before the query
    n_demo = sum(1 for a, b in spans if a + len(text[a:b]) - len(text[a:b].lstrip()) < query_char)
    n = len(encoded["input_ids"]) + offset
    first, last_subject = subject_positions[0], subject_positions[-1]
    demo = (offset, offset + n_demo) if n_demo else (0, 0)
    relation_positions = tuple(p for p in range(offset + n_demo, n) if not first <= p <= last_subject)
    return Roles((first, last_subject + 1), last_subject, relation_positions, n - 1, demo)


ROLES = ("first", "demo", "subject", "relation", "last")


READERS: dict[str, tuple[str, ...]] = {
    "first": ROLES,
    "demo": ("demo", "subject", "relation", "last"),
    "subject": ("subject", "relation", "last"),
    "relation": ("subject", "relation", "last"),
    "last": ("last",),
}
"""For a key/value role, the query roles whose positions may attend to it (causal attention).

``first`` is position 0, read by every later position; the demonstrations
come before the query, read by it and by themselves; subject and relation
tokens interleave (``"The capital of {}"`` puts relation words before the
subject, ``"{} is located in"`` after it), so each may read the other; only
the last position reads the last position.
"""


def role_positions(roles: Any) -> dict[str, list[int]]:
    """The positions of each role of a prompt, from its :class:`~circuits.relations.pairs.Roles`.

    >>> from circuits.relations.roles import Roles
    >>> role_positions(Roles((3, 5), 4, (0, 1, 2, 5, 6), 6))
    {'first': [0], 'demo': [], 'subject': [3, 4], 'relation': [1, 2, 5], 'last': [6]}
    >>> role_positions(Roles((6, 7), 6, (4, 5, 7), 8, demo=(0, 4)))
    {'first': [0], 'demo': [1, 2, 3], 'subject': [6], 'relation': [4, 5, 7], 'last': [8]}
    """
    start, stop = roles.subject
    subject = list(range(start, stop))
    last = int(roles.last)
    first = [0] if start > 0 and last > 0 else []
    taken = set(subject) | set(first) | {last}
    demo_start, demo_stop = roles.demo
    demo = [p for p in range(demo_start, demo_stop) if p not in taken]
    taken |= set(demo)
    relation = [p for p in range(last) if p not in taken]
    return {
        "first": first,
        "demo": demo,
        "subject": [p for p in subject if p != last],
        "relation": relation,
        "last": [last],
    }


def role_index(roles: Any, n_pos: int) -> list[int]:
    """Each of ``n_pos`` positions' role as an index into :data:`ROLES`; -1 after the last position (padding).

    >>> from circuits.relations.roles import Roles
    >>> role_index(Roles((3, 5), 4, (0, 1, 2, 5, 6), 6), 8)
    [0, 3, 3, 2, 2, 3, 4, -1]
    """
    out = [-1] * n_pos
    for r, positions in enumerate(role_positions(roles).values()):
        for p in positions:
            if p < n_pos:
                out[p] = r
    return out


def parse_source_sets(text: str | Iterable[str]) -> list[tuple[str, ...]]:
    """Source sets from ``"subject,relation,last"`` (comma-separated, ``+`` joins roles).

    >>> parse_source_sets("subject,relation+last,all")
    [('subject',), ('relation', 'last'), ('first', 'demo', 'subject', 'relation', 'last')]
    >>> parse_source_sets("object")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown role 'object' in source set 'object';
    valid roles: first, demo, subject, relation, last (join with '+', or 'all')
    """
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [s.strip() for s in text]
    sets: list[tuple[str, ...]] = []
    for item in items:
        if not item:
            raise InputError(f"empty source set in {text!r}; name roles such as 'subject,relation,last'")
        names: list[str] = []
        for part in item.split("+"):
            part = part.strip()
            if part == "all":
                names.extend(ROLES)
            elif part in ROLES:
                names.append(part)
            else:
                raise InputError(
                    f"unknown role {part!r} in source set {item!r}; valid roles: "
                    f"{', '.join(ROLES)} (join with '+', or 'all')"
                )
        ordered = tuple(r for r in ROLES if r in names)
        if ordered not in sets:
            sets.append(ordered)
    return sets


def source_positions(roles: Any, source: Sequence[str]) -> list[int] | None:
    """Positions of a source set in one prompt; ``None`` when one of its roles is empty there."""
    positions = role_positions(roles)
    out: list[int] = []
    for role in source:
        if not positions[role]:
            return None
        out.extend(positions[role])
    return sorted(out)


def source_name(source: Sequence[str]) -> str:
    """``"subject+relation"``: the name a source set is reported under (``"none"`` for the empty set).

    >>> source_name(("subject", "relation")), source_name(ROLES), source_name(())
    ('subject+relation', 'all', 'none')
    """
    if not source:
        return "none"
    return "all" if tuple(source) == ROLES else "+".join(source)
