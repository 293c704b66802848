"""The channels job: SVD channels of a model, validated against patching graphs and causally checked."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from circuits.attribution.settings import ScoreSettings
from circuits.channels import (
    CausalResult,
    ChannelAnalysis,
    ValidationRow,
    analyze,
    causal_check,
    find_channels,
    validate_relations,
)
from circuits.channels.predict import Channel
from circuits.models import LoadedModel
from circuits.relations.pairs import batch_pairs
from circuits.vocab import InputError

__all__ = ["ChannelsReport", "run_channels"]


@dataclass
class ChannelsReport:
    """What :func:`run_channels` found: the analysis, its channels, validations and causal checks."""

    analysis: ChannelAnalysis
    channels: list[Channel]
    validation: list[ValidationRow] = field(default_factory=list)
    causal: dict[str, list[CausalResult]] = field(default_factory=dict)
    n_pairs: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self, *, share: float, by: str) -> dict[str, Any]:
        a = self.analysis
        return {
            "model": a.model,
            "analysis_seconds": round(a.seconds, 3),
            "writers": len(a.writers.names),
            "readers": len(a.readers.names),
            "settings": a.settings,
            "share": share,
            "by": by,
            "null": {
                "whole": {f"{w}-{r}": v for (w, r), v in a.null.whole.items()},
                "component": a.null.component,
            },
            "channels": [c.as_dict() for c in self.channels],
            "validation": [row.as_dict() for row in self.validation],
            "causal": [
                {"relation": rel, "checks": [c.as_dict() for c in checks]}
                for rel, checks in self.causal.items()
            ],
            "seconds": round(self.seconds, 3),
        }


def run_channels(
    model: LoadedModel,
    *,
    top: int = 20,
    share: float = 0.9,
    by: str = "component",
    mlp: bool = True,
    validate: list[str] | None = None,
    max_pairs: int | None = None,
    top_fraction: float = 0.01,
    causal: int = 0,
    n_random: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> ChannelsReport:
    """Find the ``top`` channels; validate them on relations; causally check the ``causal`` strongest.

    Validation scores each relation by patching and reports how well the
    channels rank its important writer -> q/k/v edges (the top
    ``top_fraction``). The causal check removes each channel's subspace from
    its writer's output (for every reader, then for the channel's reader
    only) and compares with ``n_random`` random subspaces of the same rank.
    """
    if top < 1:
        raise InputError(f"--top must be at least 1, not {top}")
    if not 0.0 < share <= 1.0:
        raise InputError(f"--share must lie in (0, 1], not {share}")
    if max_pairs is not None and max_pairs < 2:
        raise InputError(f"--max-pairs must be at least 2, not {max_pairs}")
    if not 0.0 < top_fraction < 1.0:
        raise InputError(f"--top-fraction must lie in (0, 1), not {top_fraction}")
    if causal < 0:
        raise InputError(f"--causal must be 0 or more, not {causal}")
    if n_random < 1:
        raise InputError(f"--random must be at least 1, not {n_random}")
    if causal and not validate:
        raise InputError("--causal needs at least one --validate RELATION (its prompts are used)")
    started = time.perf_counter()
    analysis = analyze(model, mlp=mlp, seed=seed)
    report = ChannelsReport(analysis, find_channels(analysis, top=top, share=share, by=by))
    if validate:
        settings = ScoreSettings(max_pairs=max_pairs, seed=seed)
        validated = validate_relations(
            model, analysis, validate, settings=settings, top_fraction=top_fraction, progress=progress
        )
        report.validation = [row for row, _, _ in validated]
        if causal:
            strongest = find_channels(analysis, top=causal, share=share, by=by)
            for row, _, pairs in validated:
                batch = batch_pairs(pairs.pairs, pad=model.pad_id)
                report.n_pairs[row.relation] = len(batch)
                report.causal[row.relation] = [
                    causal_check(model, analysis, c, batch, seed=seed, scope=scope, n_random=n_random)
                    for c in strongest
                    for scope in ("writer", "edge")
                ]
    report.seconds = time.perf_counter() - started
    return report
