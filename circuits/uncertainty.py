"""Bootstrap intervals over prompts, torch-free.

Every figure the mechanism analyses report is a mean over prompts. Its 95%
interval comes from the percentile bootstrap: resample the prompts with
replacement ``n_boot`` times (seeded), recompute the mean, take the 2.5th and
97.5th percentiles. The resampling is one matrix of counts, so a bootstrap of
many statistics at once (a curve over layers) costs one matrix product, not
``n_boot`` re-runs of the analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits.vocab import InputError

__all__ = ["DEFAULT_BOOT", "Interval", "bootstrap_intervals", "bootstrap_means", "mean_interval"]

DEFAULT_BOOT = 200


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval.

    >>> str(Interval(0.912, 0.861, 0.954))
    '0.91 [0.86, 0.95]'
    >>> Interval(0.5, 0.4, 0.6).as_dict()
    {'value': 0.5, 'low': 0.4, 'high': 0.6}
    """

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return self.format(2)

    def format(self, digits: int = 2) -> str:
        """``value [low, high]`` with ``digits`` decimals."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def as_dict(self, digits: int = 6) -> dict[str, float | None]:
        """``{"value", "low", "high"}``, rounded; a NaN (no prompts) is ``None``."""
        return {k: _finite(getattr(self, k), digits) for k in ("value", "low", "high")}

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below zero."""
        return self.low > 0 or self.high < 0


def _finite(x: float, digits: int) -> float | None:
    return None if not math.isfinite(x) else round(float(x), digits)


def bootstrap_means(
    values: Any, *, n_boot: int = DEFAULT_BOOT, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the first axis of ``values`` and its 95% percentile-bootstrap interval.

    ``values`` is ``[n_prompts, ...]``; the same resamples of the prompts serve
    every trailing entry, so the intervals of a curve are coherent. NaN entries
    (a prompt that does not apply) are left out of their column's mean.
    Returns ``(mean, low, high)``, each shaped like ``values[0]``.

    >>> mean, low, high = bootstrap_means(np.ones((10, 3)))
    >>> mean.tolist(), low.tolist(), high.tolist()
    ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError("a bootstrap needs at least one prompt")
    if n_boot < 1:
        raise InputError(f"the number of bootstrap resamples must be positive, not {n_boot}")
    n = x.shape[0]
    flat = x.reshape(n, -1)
    present = ~np.isnan(flat)
    filled = np.where(present, flat, 0.0)
    rng = np.random.default_rng(seed)
    # counts[b, i]: how often prompt i is drawn in resample b
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(0) / present.sum(0)
        boot = (counts @ filled) / (counts @ present)
    low = np.nanpercentile(boot, 2.5, axis=0) if boot.size else boot
    high = np.nanpercentile(boot, 97.5, axis=0) if boot.size else boot
    shape = x.shape[1:]
    return mean.reshape(shape), np.asarray(low).reshape(shape), np.asarray(high).reshape(shape)


def bootstrap_intervals(values: Any, *, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> list[Interval]:
    """One :class:`Interval` per column of a ``[n_prompts, k]`` sample (a curve), from the same resamples.

    >>> [str(iv) for iv in bootstrap_intervals(np.ones((5, 2)))]
    ['1.00 [1.00, 1.00]', '1.00 [1.00, 1.00]']
    """
    mean, low, high = bootstrap_means(values, n_boot=n_boot, seed=seed)
    return [Interval(float(m), float(lo), float(hi)) for m, lo, hi in zip(mean, low, high, strict=True)]


def mean_interval(values: Any, *, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> Interval:
    """The :class:`Interval` of the mean of a 1-d sample.

    >>> iv = mean_interval([0.0, 1.0] * 20, seed=0)
    >>> iv.value, 0.3 < iv.low < 0.5 < iv.high < 0.7
    (0.5, True)
    """
    mean, low, high = bootstrap_means(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=seed)
    return Interval(float(mean), float(low), float(high))
