"""What a prompt set tells its user: which prompts were used, and when there are too few pairs to trust
(torch-free)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuits.relations.pairs import PairSet

__all__ = ["MIN_HELDOUT", "MIN_SCORING", "prompt_summary", "report_prompts", "sample_warning"]

log = logging.getLogger(__name__)


MIN_SCORING = 20
"""Fewer scoring pairs than this and the scores are noisy: a warning says so."""

MIN_HELDOUT = 12
"""Fewer held-out pairs than this and faithfulness is uncertain: a warning says so."""


def prompt_summary(pairs: PairSet) -> str:
    """One line on the prompts used: the format(s), and for a choice, what every format tried gave.

    >>> from circuits import load_model, load_relation, make_pairs
    >>> pairs = make_pairs(load_model("tiny-llama"), load_relation("country_capital_city"), max_rank=10**9,
    ...                    max_pairs=30)
    >>> print(prompt_summary(pairs))  # doctest: +NORMALIZE_WHITESPACE
    prompts: 0-shot 'The capital of Kenya is Nairobi. The capital of {} is'
    + 1-shot 'The capital city of {} is' + 1-shot 'The capital of {} is'
    (the best 3 of 3 formats tried; facts known: 95, 95, 95 of 95; 30 pairs)
    """
    rows = pairs.per_format
    known = ", ".join(str(r["n_known"]) for r in rows)
    shown = " + ".join(f.label() for f in pairs.formats)
    counts = f"facts known: {known} of {pairs.n_checked}; {len(pairs.pairs)} pairs"
    if pairs.request.get("templates") == "best":
        return f"prompts: {shown} (the best {len(pairs.formats)} of {len(rows)} formats tried; {counts})"
    return f"prompts: {shown} ({counts})"


def sample_warning(pairs: PairSet) -> str | None:
    """A warning when fewer than :data:`MIN_SCORING` pairs are scored or :data:`MIN_HELDOUT` held out;
    else ``None``.

    It gives the counts and what would give more pairs.
    """
    n_score, n_held = len(pairs.scoring), len(pairs.heldout)
    if n_score >= MIN_SCORING and (n_held >= MIN_HELDOUT or pairs.settings.get("heldout_fraction", 0) == 0):
        return None
    helps = []
    if pairs.max_pairs is not None and len(pairs.pairs) >= pairs.max_pairs:
        helps.append(f"a larger --max-pairs (now {pairs.max_pairs})")
    if len(pairs.formats) < len(pairs.relation.prompt_templates):
        helps.append(f"--templates all (the file has {len(pairs.relation.prompt_templates)} templates)")
    if max(f.shots for f in pairs.formats) < 3:
        helps.append("--shots 3")
    if pairs.settings.get("max_rank", 1) == 1:
        helps.append("--max-rank 3 (count a fact known when its answer is in the top 3)")
    helps.append("more facts in the relation file")
    return (
        f"relation {pairs.relation.name}: only {n_score} pairs to score and {n_held} held out "
        f"({pairs.n_known} of {pairs.n_facts} facts known to {pairs.model}); below {MIN_SCORING} scored or "
        f"{MIN_HELDOUT} held out, edge scores are noisy and faithfulness uncertain. More pairs: "
        + "; ".join(helps)
    )


def report_prompts(pairs: PairSet) -> None:
    """Log the prompt summary (info) and the small-sample warning, if any."""
    log.info("relation %s: %s", pairs.relation.name, prompt_summary(pairs))
    warning = sample_warning(pairs)
    if warning:
        log.warning("%s", warning)
