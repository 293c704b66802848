"""How many facts a model knows under each template and shot count of a relation:
the table behind the template choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from circuits.relations.facts import check_facts, encoder
from circuits.relations.prompts import (
    RESCUE_SHOTS,
    SHOT_COUNTS,
    DemoPicker,
    PromptFormat,
    default_shots,
    needs_rescue,
    pick_formats,
)
from circuits.relations.schema import Relation

if TYPE_CHECKING:
    from circuits.models.load import LoadedModel

__all__ = ["survey_prompts"]


def survey_prompts(
    model: LoadedModel,
    relation: Relation,
    *,
    shots: Sequence[int] = SHOT_COUNTS,
    pick_shots: int | None = None,
    seed: int = 0,
    max_rank: int = 1,
    min_prob: float = 0.0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One row per template and shot count: facts known, and whether ``score`` would pick it by default.

    Each row holds ``index`` (of the template), ``template``, ``shots``,
    ``n_known``, ``n_facts``, ``mean_prob`` (the answers' mean probability)
    ``tried`` (``--templates best`` would try this format: the template's
    default shot count or ``pick_shots``, and :data:`RESCUE_SHOTS` when the
    defaults leave too few facts known) and ``default`` (``True`` on the
    formats ``--templates best`` keeps:
    :func:`~circuits.relations.prompts.pick_formats`).

    >>> from circuits import load_model, load_relation
    >>> rows = survey_prompts(load_model("tiny-llama"), load_relation("country_capital_city"), shots=(0, 1),
    ...                       max_rank=10**9)
    >>> [(r["index"], r["shots"], r["n_known"], r["default"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [(0, 0, 95, True), (0, 1, 95, False), (1, 0, 95, False), (1, 1, 95, True), (2, 0, 95, False),
     (2, 1, 95, True)]
    """
    encode = encoder(model)

    def row(index: int, template: str, n: int, tried: bool) -> dict[str, Any]:
        picker = DemoPicker(relation, PromptFormat(template, n), seed=seed, encode=encode)
        checks = check_facts(
            model, relation, max_rank=max_rank, min_prob=min_prob, picker=picker, progress=progress
        )
        run = [c for c in checks if c.demos is not None]
        return {
            "index": index,
            "template": template,
            "shots": n,
            "n_known": sum(c.known for c in checks),
            "n_facts": len(checks),
            "mean_prob": sum(c.prob for c in run) / max(1, len(run)),
            "tried": tried,
            "default": False,
        }

    rows = []
    for index, template in enumerate(relation.prompt_templates):
        first = default_shots(template) if pick_shots is None else pick_shots
        rows += [row(index, template, n, n == first) for n in sorted({*shots, first})]
    if pick_shots is None and needs_rescue([r["n_known"] for r in rows if r["tried"]]):
        have = {(r["index"], r["shots"]) for r in rows}
        rows += [
            row(i, t, RESCUE_SHOTS, True)
            for i, t in enumerate(relation.prompt_templates)
            if (i, RESCUE_SHOTS) not in have
        ]
        for r in rows:
            r["tried"] = r["tried"] or r["shots"] == RESCUE_SHOTS
        rows.sort(key=lambda r: (r["index"], r["shots"]))
    tried = sorted((r for r in rows if r["tried"]), key=lambda r: (r["index"], r["shots"] == RESCUE_SHOTS))
    kept = pick_formats([(PromptFormat(r["template"], r["shots"]), r["n_known"]) for r in tried])
    for r in rows:
        r["default"] = PromptFormat(r["template"], r["shots"]) in kept
    return rows
