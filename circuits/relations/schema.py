"""Relations and their facts, read from the LRE JSON schema or a CSV file (torch-free).

A :class:`Relation` is a set of facts (subject, object) with prompt templates.
It comes from a bundled file (by name), any JSON file in the LRE schema
(``{"name", "prompt_templates", "prompt_templates_zs", "properties",
"samples": [{"subject", "object"}]}``), or a CSV file of ``subject,object``
rows plus a template. Every error names the file, the field and what would be
valid.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.vocab import InputError

log = logging.getLogger(__name__)

__all__ = [
    "Fact",
    "Relation",
    "bundled_relations",
    "check_template",
    "load_relation",
    "load_relations",
    "relation_from_csv",
    "relation_to_json",
]


@dataclass(frozen=True)
class Fact:
    """One (subject, object) fact of a relation."""

    subject: str
    object: str


@dataclass(frozen=True)
class Relation:
    """A relation type: its facts and prompt templates, as in the LRE JSON schema.

    Made by :func:`load_relation`; :func:`~circuits.relations.make_pairs`
    turns it into prompt pairs for one model. Facts are unique by subject (the
    first fact of a repeated subject is kept).

    Attributes
    ----------
    name : str
        Short name: the bundled name or the file's stem (it names folders in
        the store and rows of comparison tables).
    title : str
        The ``"name"`` field of the LRE file (a readable title).
    prompt_templates : tuple of str
        Templates, each with exactly one ``{}`` where the subject goes; the
        first is the default (:attr:`template`).
    prompt_templates_zs : tuple of str
        Zero-shot templates (may be empty).
    properties : dict
        The LRE ``properties`` (``relation_type``, ``domain_name``, ...).
    facts : tuple of Fact
        The ``(subject, object)`` facts; the answer a prompt is scored on is
        the first token of ``" " + object``.
    source : str
        Where it came from: ``"bundled:<name>"`` or a file path.

    Examples
    --------
    >>> from circuits import load_relation
    >>> rel = load_relation("country_capital_city")
    >>> rel.source, len(rel.facts)
    ('bundled:country_capital_city', 95)
    >>> rel.facts[0]
    Fact(subject='France', object='Paris')
    >>> rel.template.replace("{}", rel.facts[0].subject)
    'The capital of Kenya is Nairobi. The capital of France is'
    """

    name: str
    title: str
    prompt_templates: tuple[str, ...]
    prompt_templates_zs: tuple[str, ...]
    properties: dict[str, Any]
    facts: tuple[Fact, ...]
    source: str = "<memory>"

    @property
    def template(self) -> str:
        """The default template: the first of ``prompt_templates``."""
        return self.prompt_templates[0]


# ----------------------------------------------------------------- loading


def bundled_relations() -> list[str]:
    """Names of the relations shipped with the package, sorted."""
    folder = importlib.resources.files("circuits.relations")
    return sorted(e.name[:-5] for e in folder.iterdir() if e.name.endswith(".json"))


def load_relation(name_or_path: str | Path, *, template: str | None = None) -> Relation:
    """A bundled relation by name, an LRE-schema JSON file, or a CSV file plus a template.

    Parameters
    ----------
    name_or_path : str or Path
        The name of a bundled relation (:func:`bundled_relations` lists them,
        e.g. ``"country_capital_city"``), the path of a JSON file in the LRE
        schema (``{"name", "prompt_templates", "prompt_templates_zs",
        "properties", "samples": [{"subject", "object"}]}``), or the path of a
        ``.csv`` file of ``subject,object`` rows (a header row is optional).
    template : str, optional
        Required for a CSV file, ignored otherwise: the prompt with one ``{}``
        where the subject goes, e.g. ``"The capital of {} is"``.

    Returns
    -------
    Relation
        Its facts (unique by subject) and templates; ``name`` is the bundled
        name or the file's stem.

    Raises
    ------
    InputError
        The name is neither bundled nor a file, or the file is malformed; the
        message names the file, the field and what would be valid.

    Examples
    --------
    >>> from circuits import load_relation
    >>> rel = load_relation("country_capital_city")
    >>> rel.name, rel.template
    ('country_capital_city', 'The capital of Kenya is Nairobi. The capital of {} is')

    A relation of your own, from a CSV file:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "capitals.csv")
    >>> with open(path, "w", encoding="utf-8") as f:
    ...     _ = f.write("subject,object\\nFrance,Paris\\nJapan,Tokyo\\nPeru,Lima\\n")
    >>> mine = load_relation(path, template="The capital of {} is")
    >>> mine.name, len(mine.facts), mine.facts[1].object, mine.template
    ('capitals', 3, 'Tokyo', 'The capital of {} is')
    """
    text_name = str(name_or_path)
    if text_name.lower().endswith(".csv"):
        if template is None:
            raise InputError(
                f"{text_name}: a CSV relation needs a template with one '{{}}', "
                "e.g. --template 'The capital of {} is'"
            )
        return relation_from_csv(text_name, template)
    if text_name in bundled_relations():
        entry = importlib.resources.files("circuits.relations") / f"{text_name}.json"
        return _parse_lre(
            entry.read_text(encoding="utf-8-sig"), source=f"bundled:{text_name}", name=text_name
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(
            f"relation {text_name!r} is neither a bundled relation nor a file; bundled: "
            f"{', '.join(bundled_relations())}"
        )
    return _parse_lre(_read_text(path), source=str(path), name=path.stem)


def _read_text(path: Path) -> str:
    """The text of a UTF-8 file (a byte-order mark is dropped);
    else an :class:`InputError` saying where it is not.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "latin.csv"
    >>> _ = path.write_bytes(b"subject,object\\nFr\\xe9nce,Paris\\n")
    >>> _read_text(path)  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: .../latin.csv: line 2 is not UTF-8 (byte 17 of the file is 0xe9);
    re-save it as UTF-8 ...
    >>> _ = path.write_bytes("\\ufeffsubject,object\\n".encode())
    >>> _read_text(path)
    'subject,object\\n'
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            f"{path}: line {line} is not UTF-8 (byte {error.start} of the file is "
            f"0x{raw[error.start]:02x}); re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`, "
            "or 'CSV UTF-8' in a spreadsheet)"
        ) from None


def _parse_lre(text: str, *, source: str, name: str) -> Relation:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{source}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise InputError(f"{source}: malformed JSON: nested too deeply to be a relation") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise InputError(f"{source}: malformed JSON: {error}") from None
    if not isinstance(data, dict):
        raise InputError(
            f"{source}: the top level must be an object with 'samples' and "
            f"'prompt_templates', not {type(data).__name__}"
        )
    if "samples" not in data and "prompt_templates" not in data:
        raise InputError(
            f"{source}: not an LRE relation file: it has fields {sorted(data)[:6]}, and a relation "
            "needs 'samples' (a list of {\"subject\", \"object\"}) and 'prompt_templates' "
            "(strings with one '{}')"
        )
    templates = _string_list(data, "prompt_templates", source, required=True)
    zero_shot = _string_list(data, "prompt_templates_zs", source, required=False)
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise InputError(f"{source}: field 'properties' must be an object")
    samples = data.get("samples")
    if not isinstance(samples, list):
        raise InputError(
            f'{source}: field \'samples\' must be a list of {{"subject": ..., "object": ...}} objects'
        )
    facts = []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict):
            raise InputError(f"{source}: samples[{index}] must be an object, not {sample!r}")
        for key in ("subject", "object"):
            value = sample.get(key)
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"{source}: samples[{index}].{key} must be a non-empty string, not {value!r}"
                )
        facts.append(Fact(sample["subject"].strip(), sample["object"].strip()))
    title = data.get("name", name)
    return _relation(name, str(title), templates, zero_shot, properties, facts, source)


def _string_list(data: dict[str, Any], key: str, source: str, *, required: bool) -> list[str]:
    value = data.get(key)
    if not required and (value is None or value == []):
        return []
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(
            f"{source}: field {key!r} must be a non-empty list of strings "
            f"each holding one '{{}}', not {value!r}"
        )
    return value


def _relation(
    name: str,
    title: str,
    templates: Sequence[str],
    zero_shot: Sequence[str],
    properties: dict[str, Any],
    facts: Sequence[Fact],
    source: str,
) -> Relation:
    for field_name, group in (("prompt_templates", templates), ("prompt_templates_zs", zero_shot)):
        for template in group:
            check_template(template, f"{source}: {field_name}")
    if not facts:
        raise InputError(
            f'{source}: the relation has no facts; add samples [{{"subject": ..., "object": ...}}]'
        )
    first: dict[str, Fact] = {}
    objects: dict[str, list[str]] = {}
    for fact in facts:
        first.setdefault(fact.subject, fact)
        known = objects.setdefault(fact.subject, [])
        if fact.object not in known:
            known.append(fact.object)
    unique = list(first.values())
    _warn_ambiguous(name, source, {s: o for s, o in objects.items() if len(o) > 1})
    return Relation(name, title, tuple(templates), tuple(zero_shot), dict(properties), tuple(unique), source)


def _warn_ambiguous(name: str, source: str, ambiguous: dict[str, list[str]]) -> None:
    """Log a warning naming the subjects given more than one object (only the first is kept)."""
    if not ambiguous:
        return
    shown = "; ".join(f"{s}: {', '.join(o)}" for s, o in list(ambiguous.items())[:3])
    more = "; ..." if len(ambiguous) > 3 else ""
    count = "1 subject has" if len(ambiguous) == 1 else f"{len(ambiguous)} subjects have"
    log.warning(
        "relation %s (file %s): %s more than one object (%s%s); the first is kept",
        name,
        source,
        count,
        shown,
        more,
    )


def check_template(template: str, where: str) -> None:
    """An :class:`InputError` unless ``template`` holds exactly one ``{}``."""
    if template.count("{}") != 1:
        raise InputError(
            f"{where}: template {template!r} must hold exactly one '{{}}' where the subject "
            "goes, e.g. 'The capital of {} is'"
        )


def relation_from_csv(path: str | Path, template: str, *, name: str | None = None) -> Relation:
    """A relation from a CSV file of ``subject,object`` rows (a header row is optional)."""
    path = Path(path)
    check_template(template, "--template")
    if not path.is_file():
        raise InputError(f"{path}: no such CSV file")
    facts = []
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        for line_no, row in enumerate(reader, start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise InputError(
                    f"{path}: line {line_no} has {len(row)} columns; expected 2 (subject, object)"
                )
            subject, obj = (cell.strip() for cell in row)
            if line_no == 1 and (subject.lower(), obj.lower()) == ("subject", "object"):
                continue
            if not subject or not obj:
                raise InputError(f"{path}: line {line_no} has an empty subject or object")
            facts.append(Fact(subject, obj))
    except csv.Error as error:
        raise InputError(
            f"{path}: line {reader.line_num} is not CSV ({error}); expected subject,object rows"
        ) from None
    props = {"relation_type": "custom", "domain_name": "subject", "range_name": "object", "symmetric": False}
    return _relation(name or path.stem, name or path.stem, [template], [], props, facts, str(path))


def relation_to_json(relation: Relation) -> dict[str, Any]:
    """The relation in the LRE JSON schema (what :func:`load_relation` reads back).

    >>> rel = load_relation("country_capital_city")
    >>> back = _parse_lre(json.dumps(relation_to_json(rel)), source="x", name=rel.name)
    >>> back.facts == rel.facts and back.prompt_templates == rel.prompt_templates
    True
    """
    return {
        "name": relation.title,
        "prompt_templates": list(relation.prompt_templates),
        "prompt_templates_zs": list(relation.prompt_templates_zs),
        "properties": relation.properties,
        "samples": [{"subject": f.subject, "object": f.object} for f in relation.facts],
    }


def load_relations(names_or_paths: Sequence[str | Path]) -> list[tuple[str | Path, Relation]]:
    """Each argument with its loaded relation; the same relation named twice is an :class:`InputError`.

    Commands that compare relations key everything by the relation's name, so
    a relation given twice (by name, or by two files of the same name) would
    silently count once.

    >>> [rel.name for _, rel in load_relations(["country_capital_city", "country_language"])]
    ['country_capital_city', 'country_language']
    >>> load_relations(["country_capital_city", "country_capital_city"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    circuits.vocab.InputError: relation country_capital_city is given twice
    (country_capital_city, country_capital_city); name each relation once
    """
    loaded = [(arg, load_relation(arg)) for arg in names_or_paths]
    seen: dict[str, list[str]] = {}
    for arg, rel in loaded:
        seen.setdefault(rel.name, []).append(str(arg))
    for name, args in seen.items():
        if len(args) > 1:
            raise InputError(f"relation {name} is given twice ({', '.join(args)}); name each relation once")
    return loaded
