"""Which prompts an analysis runs on, and where its files go: what every analysis job shares.

A :class:`PromptChoice` picks a relation's known-fact prompts (the same
filter and seeded order as scoring); :func:`choice_pairs` and
:func:`known_prompts` make them. :func:`write_files` writes an analysis's
``<analysis>.json`` (the record, intervals as value/low/high) and
``<analysis>.svg`` (its figure) atomically to ``out`` and/or, given ``store``
(a gallery root such as ``graphs``), to ``<store>/<model>/<relation>/mechanisms/``
and the gallery's manifest. The generic job of every registered analysis is
:func:`circuits.jobs.analyses.run_analysis`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuits.io import atomic_write_text, record_json
from circuits.mechanisms.lens import Prompts
from circuits.relations import load_relation
from circuits.relations.pairs import PairSet, make_pairs
from circuits.relations.prompts import PromptFormat
from circuits.relations.schema import Relation
from circuits.store.gallery import Gallery

if TYPE_CHECKING:
    from circuits.models import LoadedModel

__all__ = ["PromptChoice", "choice_pairs", "known_prompts", "write_files", "write_record"]


@dataclasses.dataclass(frozen=True)
class PromptChoice:
    """Which prompts an analysis runs on: the known-fact filter, the cap, the seed, the templates and shots.

    ``template`` (one string) replaces the relation's templates; otherwise
    ``templates`` and ``shots`` choose among them as
    :func:`~circuits.relations.make_pairs` does.
    """

    template: str | None = None
    seed: int = 0
    max_pairs: int | None = None
    max_rank: int = 1
    min_prob: float = 0.0
    templates: str | int | tuple[PromptFormat, ...] = "best"
    shots: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def choice_pairs(
    model: LoadedModel,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    heldout_fraction: float = 0.0,
) -> PairSet:
    """The relation's known-fact pairs under ``choice`` (filter, cap, seed, templates).

    ``heldout_fraction`` of them are held out (0: every pair is in ``pairs`` and ``scoring``).
    """
    choice = choice or PromptChoice()
    rel = relation if isinstance(relation, Relation) else load_relation(relation, template=choice.template)
    if choice.template is not None:
        rel = dataclasses.replace(rel, prompt_templates=(choice.template, *rel.prompt_templates[1:]))
    templates = "first" if choice.template is not None else choice.templates
    return make_pairs(
        model,
        rel,
        templates=templates,
        shots=choice.shots,
        seed=choice.seed,
        heldout_fraction=heldout_fraction,
        max_pairs=choice.max_pairs,
        max_rank=choice.max_rank,
        min_prob=choice.min_prob,
    )


def known_prompts(
    model: LoadedModel,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
) -> tuple[Prompts, PairSet]:
    """The relation's known-fact prompts (in the seeded order scoring uses) as one :class:`Prompts`."""
    pairs = choice_pairs(model, relation, choice)
    return Prompts.of(pairs.pairs, model.pad_id), pairs


def write_files(
    out: Path | None,
    store: Path | None,
    name: str,
    text: str,
    svg: str,
    *,
    model: str,
    relation: str,
) -> list[Path]:
    """``<name>.json`` (``text``) and ``<name>.svg`` in ``out``, and/or in the gallery ``store``."""
    written: list[Path] = []
    files = {f"{name}.json": text, f"{name}.svg": svg}
    if out is not None:
        for file, content in files.items():
            atomic_write_text(Path(out) / file, content)
            written.append(Path(out) / file)
    if store is not None:
        folder = Gallery(store).save_analysis(model, relation, name, files)
        written += [folder / file for file in files]
    return written


def write_record(
    out: Path | None,
    store: Path | None,
    name: str,
    record: dict[str, Any],
    figure: Callable[[dict[str, Any]], str],
) -> list[Path]:
    """:func:`write_files` of a record kept as a plain dictionary (``figure`` draws it)."""
    if out is None and store is None:
        return []
    return write_files(
        out,
        store,
        name,
        record_json(record),
        figure(record),
        model=record["model"],
        relation=record["relation"],
    )
