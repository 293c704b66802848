"""How many facts a model knows under each template and shot count of a relation: the table behind the template choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from circuits.relations.facts import check_facts, encoder
from circuits.relations.prompts import SHOT_COUNTS, DemoPicker, PromptFormat, default_shots
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
    ``picked_shots`` (the row has the shot count ``--templates best`` tries:
    ``pick_shots``, or by default each template's own default) and ``default``
    (``True`` on the row ``--templates best`` picks among those: the most
    known facts, ties to the earlier template).

    >>> from circuits import load_model, load_relation
    >>> rows = survey_prompts(load_model("tiny-llama"), load_relation("country_capital_city"), shots=(0, 1),
    ...                       max_rank=10**9)
    >>> [(r["index"], r["shots"], r["n_known"], r["default"]) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
    [(0, 0, 95, True), (0, 1, 95, False), (1, 0, 95, False), (1, 1, 95, False), (2, 0, 95, False),
     (2, 1, 95, False)]
    """
    rows = []
    encode = encoder(model)
    for index, template in enumerate(relation.prompt_templates):
        picked = default_shots(template) if pick_shots is None else pick_shots
        counts = sorted({*shots, picked})
        for n in counts:
            picker = DemoPicker(relation, PromptFormat(template, n), seed=seed, encode=encode)
            checks = check_facts(model, relation, max_rank=max_rank, min_prob=min_prob, picker=picker,
                                 progress=progress)  # fmt: skip
            run = [c for c in checks if c.demos is not None]
            rows.append({"index": index, "template": template, "shots": n, "n_known": sum(c.known for c in checks),
                         "n_facts": len(checks), "mean_prob": sum(c.prob for c in run) / max(1, len(run)),
                         "picked_shots": n == picked, "default": False})  # fmt: skip
    candidates = [r for r in rows if r["picked_shots"]]
    best = max(candidates, key=lambda r: (r["n_known"], -r["index"]))
    best["default"] = True
    return rows
