"""The direct-effect jobs: per-source DLA and head classes, and the additive motif, of one relation.

Both run on the relation's known-fact prompts (:func:`~circuits.jobs.mechanisms.known_prompts`)
and write ``dla.json``/``dla.svg`` or ``motif.json``/``motif.svg`` through
:func:`~circuits.jobs.mechanisms.run_analysis`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuits.draw.attribution_figures import dla_figure, motif_figure
from circuits.jobs.mechanisms import PromptChoice, run_analysis
from circuits.mechanisms.lens import Prompts
from circuits.mechanisms.motif import MotifResult, additive_motif
from circuits.mechanisms.per_source_dla import SourceAttribution, Thresholds, source_attribution
from circuits.relations.facts import answer_token
from circuits.relations.pairs import PairSet
from circuits.relations.schema import Relation
from circuits.uncertainty import DEFAULT_BOOT

__all__ = ["candidate_answers", "run_dla", "run_motif"]


def candidate_answers(model: Any, relation: Relation) -> list[int]:
    """The relation's candidate answers: the first token of every object, once each."""
    return sorted({answer_token(model, f.object, where=f"{relation.source}: ") for f in relation.facts})


def run_dla(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    direction: str = "answer",
    thresholds: Thresholds | None = None,
    top: int = 20,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[SourceAttribution, dict[str, Any], list[Path]]:
    """Every head's direct effect split by source role, and its class; returns (result, record, files).

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> result, record, files = run_dla(model, "country_capital_city", PromptChoice(max_pairs=6, max_rank=10**9))
    >>> record["roles"], record["max_sum_error"] < 1e-5
    (['first', 'demo', 'subject', 'relation', 'last'], True)
    """

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> SourceAttribution:
        result = source_attribution(
            model, prompts, direction=direction, thresholds=thresholds, n_boot=n_boot, **common
        )
        result.n_top = top
        return result

    return run_analysis(model, relation, choice, "dla", dla_figure, out, store, analyse)


def run_motif(
    model: Any,
    relation: str | Path | Relation,
    choice: PromptChoice | None = None,
    *,
    thresholds: Thresholds | None = None,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[MotifResult, dict[str, Any], list[Path]]:
    """The additive motif of a relation: heads classed by per-source DLA, groups ranked among candidates."""

    def analyse(prompts: Prompts, pairs: PairSet, common: dict[str, Any]) -> MotifResult:
        dla = source_attribution(model, prompts, thresholds=thresholds, n_boot=n_boot, **common)
        assert dla.last is not None
        return additive_motif(
            dla.last,
            dla.classes(),
            prompts.answer,
            candidate_answers(model, pairs.relation),
            n_boot=n_boot,
            model=model.name,
            **common,
        )

    return run_analysis(model, relation, choice, "motif", motif_figure, out, store, analyse)
