"""Attribute sets of subjects, built offline from the bundled relations (torch-free).

Subject enrichment asks whether the residual stream at the subject's last token
decodes to things *about* the subject. With no knowledge base at hand, a
subject's attribute words are what the bundled relations themselves say about
it: every object any relation gives the subject (France -> Paris, French,
Europe, euro) and every subject related to it (Lyon, the Eiffel Tower, Renault
-> France). A decoded token is an attribute when it equals the first token of
one of those words (compared stripped and lower-cased), is not a stop word,
and is not one of the subject's own tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from circuits.relations.schema import Relation, bundled_relations, load_relation

__all__ = ["STOP_WORDS", "attribute_tokens", "attribute_words", "normalise_token"]

# Function words and fragments that say nothing about a subject.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "but",
        "not",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "his",
        "her",
        "their",
        "our",
        "your",
        "as",
        "if",
        "so",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "only",
        "own",
        "same",
        "too",
        "very",
        "can",
        "will",
        "just",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "s",
        "t",
        "d",
        "ll",
        "m",
        "o",
        "re",
        "ve",
        "y",
    ]
)


def normalise_token(text: str) -> str:
    """A decoded token as attribute sets compare it: stripped, lower-cased.

    >>> normalise_token(" Paris"), normalise_token("EURO ")
    ('paris', 'euro')
    """
    return text.strip().lower()


def attribute_words(relations: Iterable[Relation] | None = None) -> dict[str, set[str]]:
    """Each subject's attribute words: objects it is given, subjects that point to it.

    ``relations`` defaults to every bundled relation. The map is keyed by the
    subject as written in the relations (and by every object, since objects
    are subjects of other relations: Paris is a capital and a city).

    >>> words = attribute_words()
    >>> {"Paris", "French", "Europe"} <= words["France"]
    True
    >>> "France" in words["Paris"]
    True
    """
    rels = list(relations) if relations is not None else [load_relation(n) for n in bundled_relations()]
    out: dict[str, set[str]] = defaultdict(set)
    for relation in rels:
        for fact in relation.facts:
            if fact.object != fact.subject:
                out[fact.subject].add(fact.object)
                out[fact.object].add(fact.subject)
    return dict(out)


def attribute_tokens(words: Iterable[str], subject: str, first_token: Callable[[str], str]) -> frozenset[str]:
    """The normalised first tokens of ``words``, minus stop words and the subject's own tokens.

    ``first_token(word)`` decodes the first token of ``" " + word`` with the
    model's tokenizer.

    >>> sorted(attribute_tokens(["Paris", "the Alps", "France"], "France", lambda w: w.split()[0]))
    ['paris']
    """
    own = {normalise_token(first_token(part)) for part in subject.split()} | {normalise_token(subject)}
    out = set()
    for word in words:
        token = normalise_token(first_token(word))
        if len(token) > 1 and token not in STOP_WORDS and token not in own:
            out.add(token)
    return frozenset(out)
