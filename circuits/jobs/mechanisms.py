"""The mechanism jobs: a relation's known-fact prompts through knockout, enrichment or extraction.

Each job loads the relation (bundled name, LRE file or CSV), keeps the facts
the model knows (the same filter and seeded order as scoring), runs one
analysis of :mod:`circuits.mechanisms`, and, given ``out``, writes
``<analysis>.json`` (the record, with intervals as value/low/high) and
``<analysis>.svg`` (its figure) there atomically; given ``store`` (a gallery
root such as ``graphs``), the same files go to
``<store>/<model>/<relation>/mechanisms/`` and the gallery's manifest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from circuits.draw.figures import enrichment_figure, extraction_figure, knockout_figure
from circuits.io import atomic_write_text, record_json
from circuits.mechanisms.attention_knockout import KnockoutResult, knockout
from circuits.mechanisms.attribute_extraction import ExtractionResult, extraction
from circuits.mechanisms.attributes import attribute_words
from circuits.mechanisms.lens import Prompts
from circuits.mechanisms.subject_enrichment import EnrichmentResult, enrichment
from circuits.relations import load_relation
from circuits.relations.pairs import PairSet, make_pairs
from circuits.relations.prompts import PromptFormat
from circuits.relations.roles import parse_source_sets
from circuits.relations.schema import Relation, bundled_relations
from circuits.store.gallery import Gallery
from circuits.uncertainty import DEFAULT_BOOT

__all__ = [
    "PromptChoice",
    "known_prompts",
    "run_analysis",
    "run_enrichment",
    "run_extraction",
    "run_knockout",
    "write_record",
]


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
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    heldout_fraction: float = 0.0,
) -> PairSet:
    """The relation's known-fact pairs under ``choice`` (filter, cap, seed, template), split with ``heldout_fraction``."""
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
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
) -> tuple[Prompts, PairSet]:
    """The relation's known-fact prompts (in the seeded order scoring uses) as one :class:`Prompts`."""
    pairs = choice_pairs(model, relation, choice)
    return Prompts.of(pairs.pairs, model.pad_id), pairs


def _record(result: Any, pairs: PairSet, choice: PromptChoice) -> dict[str, Any]:
    record = result.as_dict()
    record["prompts"] = {
        **choice.as_dict(),
        "template": pairs.template,
        "prompt": pairs.prompt_record(),
        "n_facts": pairs.n_facts,
        "n_known": pairs.n_known,
        "subjects": [p.fact.subject for p in pairs.pairs],
    }
    return record


def write_record(
    out: Path | None, store: Path | None, name: str, record: dict[str, Any], figure: Any
) -> list[Path]:
    """``<name>.json`` and ``<name>.svg`` in ``out``, and/or in the gallery rooted at ``store``."""
    written: list[Path] = []
    svg = figure(record) if out is not None or store is not None else ""
    if out is not None:
        out = Path(out)
        atomic_write_text(out / f"{name}.json", record_json(record))
        atomic_write_text(out / f"{name}.svg", svg)
        written += [out / f"{name}.json", out / f"{name}.svg"]
    if store is not None:
        text = record_json(record)
        folder = Gallery(store).save_analysis(
            record["model"], record["relation"], name, {f"{name}.json": text, f"{name}.svg": svg}
        )
        written += [folder / f"{name}.json", folder / f"{name}.svg"]
    return written


def run_analysis(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None,
    name: str,
    figure: Any,
    out: Path | None,
    store: Path | None,
    analyse: Any,
) -> tuple[Any, dict[str, Any], list[Path]]:
    """Known-fact prompts -> ``analyse(prompts, pairs, common)`` -> record -> files.

    ``common`` holds the keywords every analysis takes from the prompts: the
    bootstrap seed, the relation's name and the template.
    """
    choice = choice or PromptChoice()
    prompts, pairs = known_prompts(model, relation, choice)
    common = {"seed": choice.seed, "relation": pairs.relation.name, "template": pairs.template}
    result = analyse(prompts, pairs, common)
    record = _record(result, pairs, choice)
    return result, record, write_record(out, store, name, record, figure)


def run_knockout(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    window: int | None = None,
    sources: str = "subject,relation,last",
    block_first: bool = False,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[KnockoutResult, dict[str, Any], list[Path]]:
    """Knockout curves of a relation; returns the result, its JSON record and the files written.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> result, record, files = run_knockout(model, "country_capital_city",
    ...     PromptChoice(max_pairs=6, max_rank=10**9), progress=False)
    >>> [c.source for c in result.curves], result.window, len(result.curves[0].starts)
    (['subject', 'relation', 'last'], 1, 3)
    """
    sets = parse_source_sets(sources)

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> KnockoutResult:
        return knockout(
            model,
            prompts,
            window=window,
            sources=sets,
            block_first=block_first,
            n_boot=n_boot,
            progress=progress,
            **common,
        )

    return run_analysis(model, relation, choice, "knockout", knockout_figure, out, store, analyse)


def run_enrichment(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    top_k: int = 50,
    split: int | None = None,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[EnrichmentResult, dict[str, Any], list[Path]]:
    """Attribute rates of a relation's subjects; attribute sets from the bundled relations and this one."""

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> EnrichmentResult:
        # the relation itself counts too: an unseen LRE file's facts are attributes of its subjects
        words = attribute_words([*(load_relation(n) for n in bundled_relations()), pairs.relation])
        return enrichment(
            model, prompts, words, top_k=top_k, split=split, n_boot=n_boot, progress=progress, **common
        )

    return run_analysis(model, relation, choice, "enrichment", enrichment_figure, out, store, analyse)


def run_extraction(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[ExtractionResult, dict[str, Any], list[Path]]:
    """Extraction rates per layer (attention vs MLP) and the heads that rank the answer highest."""

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> ExtractionResult:
        return extraction(model, prompts, n_boot=n_boot, progress=progress, **common)

    return run_analysis(model, relation, choice, "extraction", extraction_figure, out, store, analyse)
