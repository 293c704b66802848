"""The suppression job: several relations' last-layer direct effects, their suppressors, the mitigation.

Each relation's known facts are paired and split (scoring prompts find the
suppressors, held-out prompts measure the mitigation). The control sentences
are full facts ("<prompt> <object>") of the bundled relations that were not
analysed, a seeded sample. With ``out`` the record and figure go to
``suppression.json``/``suppression.svg`` there; with ``store`` to the
gallery's ``<model>/suppression/``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from circuits.draw.attribution_figures import suppression_figure
from circuits.io import atomic_write_text, record_json
from circuits.jobs.mechanisms import PromptChoice, choice_pairs
from circuits.mechanisms.suppressors import SuppressionResult, suppression
from circuits.relations import load_relation
from circuits.relations.schema import Relation, bundled_relations
from circuits.store.gallery import Gallery
from circuits.uncertainty import DEFAULT_BOOT

__all__ = ["control_sentences", "run_suppression"]

NAME = "suppression"


def control_sentences(exclude: Sequence[str], n: int, *, seed: int = 0) -> list[str]:
    """Up to ``n`` full-fact sentences of bundled relations not named in ``exclude`` (seeded sample).

    >>> texts = control_sentences(["country_capital_city"], 3)
    >>> len(texts), all(isinstance(t, str) and len(t) > 5 for t in texts)
    (3, True)
    """
    sentences = []
    for name in bundled_relations():
        if name in exclude:
            continue
        rel = load_relation(name)
        template = rel.prompt_templates[0]
        sentences += [f"{template.format(f.subject)} {f.object}" for f in rel.facts]
    random.Random(seed).shuffle(sentences)
    return sentences[:n]


def run_suppression(
    model: Any,
    relations: Sequence[str | Path | Relation],
    choice: PromptChoice | None = None,
    *,
    last_layers: int = 2,
    alpha: float = 0.5,
    majority: float = 0.5,
    relations_share: float = 0.5,
    heldout_fraction: float = 0.4,
    n_control: int = 64,
    n_boot: int = DEFAULT_BOOT,
    out: Path | None = None,
    store: Path | None = None,
    progress: bool = True,
) -> tuple[SuppressionResult, dict[str, Any], list[Path]]:
    """Suppressors of the last layers across ``relations``, and what scaling them by ``alpha`` does.

    >>> from circuits import load_model
    >>> model = load_model("tiny-llama")
    >>> result, record, files = run_suppression(model, ["country_capital_city"],
    ...     PromptChoice(max_pairs=8, max_rank=10**9), last_layers=1, n_control=4, progress=False)
    >>> record["layers"], sorted(record["mitigation"]["country_capital_city"]["before"])
    ([2], ['accuracy', 'answer_prob'])
    """
    choice = choice or PromptChoice()
    pair_sets = [choice_pairs(model, r, choice, heldout_fraction=heldout_fraction) for r in relations]
    names = [p.relation.name for p in pair_sets]
    texts = control_sentences(names, n_control, seed=choice.seed)
    result = suppression(
        model,
        pair_sets,
        last_layers=last_layers,
        alpha=alpha,
        majority=majority,
        relations_share=relations_share,
        control_texts=texts,
        n_boot=n_boot,
        seed=choice.seed,
        progress=progress,
    )
    record = result.as_dict()
    record["prompts"] = {
        **choice.as_dict(),
        "heldout_fraction": heldout_fraction,
        "per_relation": {
            p.relation.name: {
                "template": p.template,
                "n_facts": p.n_facts,
                "n_known": p.n_known,
                "n_scoring": len(p.scoring),
                "n_heldout": len(p.heldout),
            }
            for p in pair_sets
        },
    }
    files: list[Path] = []
    if out is not None or store is not None:
        svg = suppression_figure(record)
        text = record_json(record)
        if out is not None:
            atomic_write_text(Path(out) / f"{NAME}.json", text)
            atomic_write_text(Path(out) / f"{NAME}.svg", svg)
            files += [Path(out) / f"{NAME}.json", Path(out) / f"{NAME}.svg"]
        if store is not None:
            folder = Gallery(store).save_files(
                model.name, NAME, {f"{NAME}.json": text, f"{NAME}.svg": svg}, {"relations": names}
            )
            files += [folder / f"{NAME}.json", folder / f"{NAME}.svg"]
    return result, record, files
