"""The reuse sweep's noise references as files: a long table, relative matrices and heatmap tooltips."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import Any

from circuits.compare.ceilings import FamilyNoise, NoiseSettings
from circuits.compare.families import ReuseMatrix

__all__ = ["NOISE_COLUMNS", "noise_files", "noise_steps", "noise_tooltip"]

NOISE_COLUMNS = (
    "a",
    "b",
    "metric",
    "value",
    "low",
    "high",
    "ceiling_a",
    "ceiling_b",
    "matched",
    "relative",
    "null",
    "null_low",
    "null_high",
    "p",
)
"""Columns of ``noise.csv``: one row per pair of relations and similarity."""


def noise_steps(n_relations: int, settings: NoiseSettings) -> int:
    """Progress-bar total of :func:`~circuits.compare.ceilings.family_noise`."""
    pairs = n_relations * (n_relations - 1) // 2
    return n_relations * (settings.n_boot + 2 * settings.n_splits) + pairs * settings.n_perm


def _f(x: Any) -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.6g}"


def noise_tooltip(sim: Any) -> str:
    """One line for a heatmap cell: the value with its interval, both ceilings, relative value and null.

    >>> from circuits.compare.noise import Similarity
    >>> from circuits.uncertainty import Interval
    >>> s = Similarity("a", "b", "edge_jaccard", Interval(0.4, 0.34, 0.47), Interval(0.52, 0.47, 0.55),
    ...                Interval(0.43, 0.38, 0.48), 0.37, Interval(0.53, 0.47, 0.59), 0.0099)
    >>> noise_tooltip(s)
    '0.40 [0.34, 0.47]; ceilings 0.52 / 0.43; relative 0.78; null 0.53 [0.47, 0.59], p 0.010'
    """
    bits = [sim.interval.format()]
    if sim.ceiling_a is not None and sim.ceiling_b is not None:
        bits.append(f"ceilings {sim.ceiling_a.value:.2f} / {sim.ceiling_b.value:.2f}")
    if sim.relative is not None and math.isfinite(sim.relative):
        bits.append(f"relative {sim.relative:.2f}")
    if sim.null is not None and sim.p is not None:
        bits.append(f"null {sim.null.format()}, p {sim.p:.3f}")
    return "; ".join(bits)


def noise_files(refs: FamilyNoise, matrices: Mapping[str, ReuseMatrix], tree: Any = None) -> dict[str, str]:
    """``noise.csv`` and ``<metric>_relative.csv``; also puts tooltips on ``matrices`` for their heatmaps."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(NOISE_COLUMNS)
    for (a, b), sims in refs.pairs.items():
        for m, s in sims.items():
            ca, cb, null = s.ceiling_a, s.ceiling_b, s.null
            writer.writerow(
                [
                    a,
                    b,
                    m,
                    _f(s.interval.value),
                    _f(s.interval.low),
                    _f(s.interval.high),
                    _f(ca.value if ca else None),
                    _f(cb.value if cb else None),
                    _f(s.matched),
                    _f(s.relative),
                    _f(null.value if null else None),
                    _f(null.low if null else None),
                    _f(null.high if null else None),
                    _f(s.p),
                ]
            )
    files = {"noise.csv": out.getvalue()}
    for m in refs.metrics:
        files[f"{m}_relative.csv"] = refs.matrix(m, "relative").to_csv()
        matrix = matrices.get(m)
        if matrix is None:
            continue
        tips = [[f"{v:.2f}" if math.isfinite(v) else "n/a" for v in row] for row in matrix.values]
        for (a, b), sims in refs.pairs.items():
            i, j = matrix.names.index(a), matrix.names.index(b)
            tips[i][j] = tips[j][i] = noise_tooltip(sims[m])
        for i, name in enumerate(matrix.names):
            tips[i][i] = f"split-half ceiling {refs.ceilings[name][m].format()}"
        matrix.extra["tooltips"] = tips
    return files
