"""Relations, facts and the prompt pairs every analysis runs on.

A :class:`Relation` is a set of facts (subject, object) with prompt templates,
read from the LRE JSON schema (bundled files or any user file) or from a CSV of
``subject,object`` rows plus a template. :func:`make_pairs` turns a relation
into clean/counterfactual :class:`PromptPair` objects for one model:

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

import csv
import importlib.resources
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from circuits.vocab import InputError, NotEnoughFactsError

__all__ = [
    "Fact",
    "FactCheck",
    "PairBatch",
    "PairSet",
    "PromptPair",
    "Relation",
    "Roles",
    "answer_token",
    "batch_pairs",
    "bundled_relations",
    "check_facts",
    "load_relation",
    "make_pairs",
    "relation_from_csv",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fact:
    """One (subject, object) fact of a relation."""

    subject: str
    object: str


@dataclass(frozen=True)
class Relation:
    """A relation type: its facts and templates, as in the LRE JSON schema."""

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

    A ``.csv`` path holds ``subject,object`` rows and needs ``template`` (one
    ``{}`` where the subject goes).
    """
    text_name = str(name_or_path)
    if text_name.lower().endswith(".csv"):
        if template is None:
            raise InputError(f"{text_name}: a CSV relation needs a template with one '{{}}', "
                             "e.g. --template 'The capital of {} is'")  # fmt: skip
        return relation_from_csv(text_name, template)
    if text_name in bundled_relations():
        entry = importlib.resources.files("circuits.relations") / f"{text_name}.json"
        return _parse_lre(entry.read_text(encoding="utf-8"), source=f"bundled:{text_name}",
                          name=text_name)  # fmt: skip
    path = Path(name_or_path)
    if not path.is_file():
        raise InputError(
            f"relation {text_name!r} is neither a bundled relation nor a file; bundled: "
            f"{', '.join(bundled_relations())}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason})") from None
    return _parse_lre(text, source=str(path), name=path.stem)


def _parse_lre(text: str, *, source: str, name: str) -> Relation:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"{source}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: the top level must be an object with 'samples' and "
                         f"'prompt_templates', not {type(data).__name__}")  # fmt: skip
    templates = _string_list(data, "prompt_templates", source, required=True)
    zero_shot = _string_list(data, "prompt_templates_zs", source, required=False)
    properties = data.get("properties", {})
    if not isinstance(properties, dict):
        raise InputError(f"{source}: field 'properties' must be an object")
    samples = data.get("samples")
    if not isinstance(samples, list):
        raise InputError(f"{source}: field 'samples' must be a list of "
                         '{"subject": ..., "object": ...} objects')  # fmt: skip
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
        raise InputError(f"{source}: field {key!r} must be a non-empty list of strings "
                         f"each holding one '{{}}', not {value!r}")  # fmt: skip
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
            _check_template(template, f"{source}: {field_name}")
    if not facts:
        raise InputError(f"{source}: the relation has no facts; add samples "
                         '[{"subject": ..., "object": ...}]')  # fmt: skip
    seen: set[str] = set()
    unique = []
    for fact in facts:
        if fact.subject not in seen:
            seen.add(fact.subject)
            unique.append(fact)
    return Relation(name, title, tuple(templates), tuple(zero_shot), dict(properties),
                    tuple(unique), source)  # fmt: skip


def _check_template(template: str, where: str) -> None:
    if template.count("{}") != 1:
        raise InputError(
            f"{where}: template {template!r} must hold exactly one '{{}}' where the subject "
            "goes, e.g. 'The capital of {} is'"
        )


def relation_from_csv(path: str | Path, template: str, *, name: str | None = None) -> Relation:
    """A relation from a CSV file of ``subject,object`` rows (a header row is optional)."""
    path = Path(path)
    _check_template(template, "--template")
    if not path.is_file():
        raise InputError(f"{path}: no such CSV file")
    facts = []
    with path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise InputError(f"{path}: line {line_no} has {len(row)} columns; "
                                 "expected 2 (subject, object)")  # fmt: skip
            subject, obj = (cell.strip() for cell in row)
            if line_no == 1 and (subject.lower(), obj.lower()) == ("subject", "object"):
                continue
            if not subject or not obj:
                raise InputError(f"{path}: line {line_no} has an empty subject or object")
            facts.append(Fact(subject, obj))
    props = {"relation_type": "custom", "domain_name": "subject", "range_name": "object",
             "symmetric": False}  # fmt: skip
    return _relation(name or path.stem, name or path.stem, [template], [], props, facts, str(path))


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


@dataclass(frozen=True)
class FactCheck:
    """How a model does on one fact: rank and probability of its answer token."""

    fact: Fact
    tokens: tuple[int, ...]
    answer: int
    rank: int
    prob: float
    known: bool


@dataclass
class PairSet:
    """All prompt pairs of one relation for one model, split under a seed."""

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


@dataclass(frozen=True)
class PairBatch:
    """Right-padded tensors for a list of pairs (clean and corrupt share lengths)."""

    clean: Int[Tensor, "batch pos"]
    corrupt: Int[Tensor, "batch pos"]
    mask: Bool[Tensor, "batch pos"]
    last: Int[Tensor, " batch"]
    answer: Int[Tensor, " batch"]
    corrupt_answer: Int[Tensor, " batch"]

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(*(t.to(device) for t in (self.clean, self.corrupt, self.mask,
                                                    self.last, self.answer, self.corrupt_answer)))  # fmt: skip


def answer_token(model: Any, obj: str, *, where: str = "") -> int:
    """First token of ``" " + obj``; an error if it tokenizes to nothing."""
    ids = model.tokenizer(" " + obj, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InputError(f"{where}object {obj!r} tokenizes to nothing with {model.name}'s tokenizer")
    return int(ids[0])


def _pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[Tensor, Tensor, Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    last = torch.tensor([len(r) - 1 for r in rows], dtype=torch.long)
    return ids, mask, last


def _pad_id(model: Any) -> int:
    tok = model.tokenizer
    for candidate in (tok.pad_token_id, tok.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


@torch.no_grad()
def last_logits(model: Any, rows: Sequence[Sequence[int]], *, batch_size: int = 64) -> Tensor:
    """Next-token logits at each row's last token, rows right-padded in batches."""
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids, _, last = _pad(chunk, _pad_id(model))
        logits = model.bridge(ids.to(model.device))
        out.append(logits[torch.arange(len(chunk)), last.to(logits.device)].float().cpu())
    return torch.cat(out)


def check_facts(
    model: Any,
    relation: Relation,
    *,
    template: str | None = None,
    max_rank: int = 1,
    min_prob: float = 0.0,
) -> list[FactCheck]:
    """Rank and probability of every fact's answer; ``known`` by the thresholds."""
    template = template or relation.template
    _check_template(template, f"{relation.source}: template")
    tokens = [tuple(model.encode(template.replace("{}", f.subject))) for f in relation.facts]
    answers = [answer_token(model, f.object, where=f"{relation.source}: ") for f in relation.facts]
    logits = last_logits(model, tokens)
    probs = logits.softmax(-1)
    answer_ids = torch.tensor(answers)
    answer_logit = logits[torch.arange(len(answers)), answer_ids]
    ranks = (logits > answer_logit[:, None]).sum(-1) + 1
    answer_prob = probs[torch.arange(len(answers)), answer_ids]
    return [
        FactCheck(f, t, a, int(r), float(p), int(r) <= max_rank and float(p) >= min_prob)
        for f, t, a, r, p in zip(relation.facts, tokens, answers, ranks, answer_prob, strict=True)
    ]


def _roles(model: Any, template: str, subject: str) -> Roles:
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
    model: Any,
    relation: Relation,
    *,
    template: str | None = None,
    seed: int = 0,
    max_rank: int = 1,
    min_prob: float = 0.0,
    min_known: int = 4,
    heldout_fraction: float = 0.4,
    max_pairs: int | None = None,
) -> PairSet:
    """Clean/counterfactual prompt pairs of the facts ``model`` knows.

    Parameters
    ----------
    template : str, optional
        Defaults to the relation's first template.
    seed : int
        Seeds the choice of counterfactual subjects and the split.
    max_rank, min_prob
        A fact is known when its answer's rank is at most ``max_rank`` and its
        probability at least ``min_prob``.
    min_known : int
        Fewer known facts than this is an error.
    heldout_fraction : float
        Share of the pairs kept out of scoring, for evaluation.
    max_pairs : int, optional
        Keep at most this many pairs (after the seeded shuffle).
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise InputError(f"heldout_fraction must lie in [0, 1), not {heldout_fraction}")
    template = template or relation.template
    checks = check_facts(model, relation, template=template, max_rank=max_rank, min_prob=min_prob)
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
    for check in known:
        partners = [
            other for other in checks
            if other.fact != check.fact and len(other.tokens) == len(check.tokens)
            and other.answer != check.answer
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
    return PairSet(relation, model.name, template, pairs, scoring, heldout, len(checks),
                   len(known), missing, seed, settings)  # fmt: skip


def batch_pairs(pairs: Sequence[PromptPair], *, pad: int = 0) -> PairBatch:
    """Right-padded tensors of clean and corrupt tokens, with each row's last position."""
    if not pairs:
        raise InputError("no prompt pairs to batch")
    clean, mask, last = _pad([p.clean_tokens for p in pairs], pad)
    corrupt, _, _ = _pad([p.corrupt_tokens for p in pairs], pad)
    answer = torch.tensor([p.answer for p in pairs], dtype=torch.long)
    corrupt_answer = torch.tensor([p.corrupt_answer for p in pairs], dtype=torch.long)
    return PairBatch(clean, corrupt, mask, last, answer, corrupt_answer)
