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
from typing import Any

from circuits.vocab import InputError

__all__ = [
    "READERS",
    "ROLES",
    "parse_source_sets",
    "role_index",
    "role_positions",
    "source_name",
    "source_positions",
]

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

    >>> from circuits.relations.pairs import Roles
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
    return {"first": first, "demo": demo, "subject": [p for p in subject if p != last], "relation": relation,
            "last": [last]}  # fmt: skip


def role_index(roles: Any, n_pos: int) -> list[int]:
    """Each of ``n_pos`` positions' role as an index into :data:`ROLES`; -1 after the last position (padding).

    >>> from circuits.relations.pairs import Roles
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
    >>> parse_source_sets("object")
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: unknown role 'object' in source set 'object'; valid roles: first, demo, subject, relation, last (join with '+', or 'all')
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
                raise InputError(f"unknown role {part!r} in source set {item!r}; valid roles: "
                                 f"{', '.join(ROLES)} (join with '+', or 'all')")  # fmt: skip
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
