"""Noise references for a whole family of circuits: every pair's interval, ceilings and null.

:func:`family_noise` runs the three references of :mod:`circuits.compare.noise`
over a reuse sweep's circuits: each relation's bootstrap redraws and split
halves are drawn once and shared by every pair and every similarity, and each
pair of relations gets its own permutation null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from circuits.circuit import Circuit
from circuits.compare.families import ReuseMatrix
from circuits.compare.noise import (
    Metric,
    Similarity,
    bootstrap_interval,
    ceiling,
    null_interval,
    on_circuits,
    on_scores,
    permutation_null,
    redraw_bootstrap,
    redraw_halves,
)
from circuits.compare.similarity import METRICS, TOP_EDGES, rank_correlation
from circuits.graph import ScoredGraph
from circuits.uncertainty import DEFAULT_BOOT, Interval
from circuits.vocab import InputError

__all__ = ["FamilyNoise", "NoiseSettings", "family_noise", "metric_functions"]


@dataclass(frozen=True)
class NoiseSettings:
    """How many resamples, splits and shuffles; all seeded by ``seed``."""

    n_boot: int = DEFAULT_BOOT
    n_splits: int = 50
    n_perm: int = 100
    seed: int = 0
    top: int = TOP_EDGES

    def __post_init__(self) -> None:
        for name in ("n_boot", "n_splits", "n_perm"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, not {getattr(self, name)}")


def metric_functions(names: list[str], *, by: str, top: int = TOP_EDGES) -> dict[str, Metric]:
    """The named similarities as functions of two draws; ``"spearman"`` is the rank
    correlation over top edges."""
    out: dict[str, Metric] = {}
    for name in names:
        if name == "spearman":
            out[name] = on_scores(by, top)
        elif name in METRICS:
            out[name] = on_circuits(METRICS[name])
        else:
            raise InputError(f"unknown similarity {name!r}; valid: {', '.join([*METRICS, 'spearman'])}")
    return out


@dataclass
class FamilyNoise:
    """Per relation its ceilings; per pair of relations each similarity with its references."""

    names: list[str]
    metrics: list[str]
    ceilings: dict[str, dict[str, Interval]]
    pairs: dict[tuple[str, str], dict[str, Similarity]]
    settings: NoiseSettings
    extra: dict[str, Any] = field(default_factory=dict)

    def matrix(self, metric: str, what: str = "relative") -> ReuseMatrix:
        """A symmetric table of ``relative``, ``low``, ``high``, ``matched``, ``null`` or ``p``
        for one metric.

        The diagonal holds 1 for ``relative``, the relation's ceiling for
        ``matched`` (its half-sample self-similarity) and NaN otherwise.
        """
        n = len(self.names)
        values = np.full((n, n), np.nan)
        for i, name in enumerate(self.names):
            if what == "relative":
                values[i, i] = 1.0
            elif what == "matched":
                values[i, i] = self.ceilings[name][metric].value
        for (a, b), sims in self.pairs.items():
            s = sims[metric]
            value = {
                "relative": s.relative,
                "low": s.interval.low,
                "high": s.interval.high,
                "matched": s.matched,
                "null": s.null.value if s.null else None,
                "p": s.p,
            }[what]
            i, j = self.names.index(a), self.names.index(b)
            values[i, j] = values[j, i] = np.nan if value is None else value
        return ReuseMatrix(list(self.names), values, f"{metric}_{what}")

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "settings": {
                "n_boot": s.n_boot,
                "n_splits": s.n_splits,
                "n_perm": s.n_perm,
                "seed": s.seed,
                "top_edges": s.top,
            },
            "ceilings": {r: {m: iv.as_dict() for m, iv in c.items()} for r, c in self.ceilings.items()},
            "pairs": [{m: sim.as_dict() for m, sim in sims.items()} for sims in self.pairs.values()],
        }


def family_noise(
    graphs: Mapping[str, ScoredGraph],
    circuits: Mapping[str, Circuit],
    metrics: list[str],
    *,
    settings: NoiseSettings | None = None,
    progress: Any = None,
) -> FamilyNoise:
    """Bootstrap intervals, split-half ceilings, matched similarities and permutation nulls of a family.

    Parameters
    ----------
    graphs, circuits : mapping of relation name to ScoredGraph / Circuit
        Each relation's scored graph (with per-pair scores) and its pruned
        top-n circuit; the redrawn circuits have the circuits' size
        (``params["max_edges"]``) and ranking (``params["by"]``).
    metrics : list of str
        Names of :data:`~circuits.compare.similarity.METRICS`, or
        ``"spearman"`` (rank correlation over the union of the graphs' top
        ``settings.top`` edges).
    settings : NoiseSettings, optional
        Resamples, splits, shuffles and seed.
    progress : tqdm-like, optional
        Advanced once per redrawn circuit or shuffle.

    Returns
    -------
    FamilyNoise
        ``ceilings[relation][metric]`` and ``pairs[(a, b)][metric]``
        (:class:`~circuits.compare.noise.Similarity`), for every pair once.
    """
    settings = settings or NoiseSettings()
    names = list(circuits)
    sizes = {r: int(c.params.get("max_edges", c.n_units)) for r, c in circuits.items()}
    by = {r: str(c.params.get("by", "signed")) for r, c in circuits.items()}
    if len(set(by.values())) > 1:
        raise InputError(f"the circuits rank edges differently ({by}); compare circuits of one ranking")
    rank_by = next(iter(by.values()), "signed")
    fns = metric_functions(metrics, by=rank_by, top=settings.top)
    boots, halves, ceilings = {}, {}, {}
    for k, r in enumerate(names):
        boots[r] = redraw_bootstrap(
            graphs[r], sizes[r], rank_by, n_boot=settings.n_boot, seed=settings.seed + k
        )
        _tick(progress, settings.n_boot)
        halves[r] = redraw_halves(
            graphs[r], sizes[r], rank_by, n_splits=settings.n_splits, seed=settings.seed + k
        )
        _tick(progress, 2 * settings.n_splits)
        ceilings[r] = {m: ceiling(halves[r], fn)[0] for m, fn in fns.items()}
    pairs: dict[tuple[str, str], dict[str, Similarity]] = {}
    for k, (a, b) in enumerate(combinations(names, 2)):
        n = min(sizes[a], sizes[b])
        null = permutation_null(
            graphs[a], graphs[b], n, rank_by, fns, n_perm=settings.n_perm, seed=settings.seed + 1000 + k
        )
        _tick(progress, settings.n_perm)
        sims = {}
        for m, fn in fns.items():
            value = _observed(m, circuits[a], circuits[b], graphs[a], graphs[b], rank_by, settings.top)
            matched = float(np.nanmean([fn(x[0], y[0]) for x, y in zip(halves[a], halves[b], strict=True)]))
            null_iv, p = null_interval(value, null[m]) if math.isfinite(value) else (None, None)
            lower = -1.0 if m == "spearman" else 0.0
            interval = bootstrap_interval(value, boots[a], boots[b], fn, lower=lower)
            sims[m] = Similarity(a, b, m, interval, ceilings[a][m], ceilings[b][m], matched, null_iv, p)
        pairs[(a, b)] = sims
    return FamilyNoise(names, list(metrics), ceilings, pairs, settings)


def _observed(
    metric: str, a: Circuit, b: Circuit, ga: ScoredGraph, gb: ScoredGraph, by: str, top: int
) -> float:
    if metric == "spearman":
        return rank_correlation(ga, gb, by=by, top=top)
    return float(METRICS[metric](a, b))


def _tick(progress: Any, n: int) -> None:
    if progress is not None:
        progress.update(n)
