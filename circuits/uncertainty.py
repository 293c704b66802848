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

__all__ = [
    "DEFAULT_BOOT",
    "Interval",
    "bootstrap_intervals",
    "bootstrap_means",
    "centred_interval",
    "format_stored",
    "mean_interval",
    "percentile_interval",
    "resample_counts",
    "resample_indices",
]

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
        """``value [low, high]`` with ``digits`` decimals (a rounded ``-0.00`` prints as ``0.00``).

        >>> Interval(-0.0001, -0.002, 0.001).format()
        '0.00 [0.00, 0.00]'
        """
        v, lo, hi = (round(x, digits) + 0.0 for x in (self.value, self.low, self.high))
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    def as_dict(self, digits: int = 6) -> dict[str, float | None]:
        """``{"value", "low", "high"}``, rounded; a NaN (no prompts) is ``None``."""
        return {k: _finite(getattr(self, k), digits) for k in ("value", "low", "high")}

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly above or wholly below zero."""
        return self.low > 0 or self.high < 0


def _finite(x: float, digits: int) -> float | None:
    return None if not math.isfinite(x) else round(float(x), digits)


def format_stored(data: Any, digits: int = 2, *, missing: str = "n/a") -> str:
    """A stored interval ``{"value", "low", "high"}`` (or a bare number) as ``value [low, high]``.

    A missing bound prints the value alone; a missing value (None, NaN, no data) prints ``missing``.

    >>> format_stored({"value": 0.912, "low": 0.861, "high": 0.954})
    '0.91 [0.86, 0.95]'
    >>> format_stored({"value": 0.5, "low": None, "high": None}), format_stored(None), format_stored(0.25)
    ('0.50', 'n/a', '0.25')
    """

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    if isinstance(data, dict):
        value, low, high = data.get("value"), data.get("low"), data.get("high")
        if number(value) and number(low) and number(high):
            return Interval(float(value), float(low), float(high)).format(digits)
        data = value
    return f"{round(float(data), digits) + 0.0:.{digits}f}" if number(data) else missing


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
    counts = resample_counts(n, n_boot=n_boot, seed=seed)
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


def resample_counts(n: int, *, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` float counts: how often each of ``n`` prompts is drawn in each resample.

    The one source of resamples in the engine: a weighted mean over prompts
    under resample ``b`` is ``counts[b] @ values / n``, so a statistic built
    from means (a ratio of means, an area under a curve of them) is
    bootstrapped with a few matrix products instead of ``n_boot`` re-runs.
    The same ``(n, n_boot, seed)`` always gives the same counts.

    >>> counts = resample_counts(4, n_boot=3, seed=1)
    >>> counts.shape, counts.sum(1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    >>> bool((counts == resample_counts(4, n_boot=3, seed=1)).all())
    True
    """
    if n < 1:
        raise InputError("a bootstrap needs at least one prompt")
    if n_boot < 1:
        raise InputError(f"the number of bootstrap resamples must be positive, not {n_boot}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def resample_indices(n: int, *, n_boot: int = DEFAULT_BOOT, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` prompt indices drawn with replacement, for statistics that need the prompts themselves.

    Drawn from :func:`resample_counts`, so a statistic computed from these
    indices and one computed from the counts see the same resamples.

    >>> idx = resample_indices(5, n_boot=2, seed=3)
    >>> idx.shape, bool((np.bincount(idx[0], minlength=5) == resample_counts(5, n_boot=2, seed=3)[0]).all())
    ((2, 5), True)
    """
    counts = resample_counts(n, n_boot=n_boot, seed=seed).astype(np.int64)
    return np.stack([np.repeat(np.arange(n), row) for row in counts])


def percentile_interval(value: float, boot: Any) -> Interval:
    """``value`` with the 2.5th and 97.5th percentiles of its bootstrap replicates ``boot``.

    NaN replicates (a resample where the statistic is undefined) are left out;
    with none left the bounds are NaN.

    >>> str(percentile_interval(0.5, np.linspace(0.3, 0.7, 101)))
    '0.50 [0.31, 0.69]'
    """
    b = np.asarray(boot, dtype=np.float64).ravel()
    b = b[~np.isnan(b)]
    if not b.size:
        return Interval(float(value), float("nan"), float("nan"))
    return Interval(float(value), float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5)))


def centred_interval(
    value: float, boot: Any, *, lower: float = -math.inf, upper: float = math.inf
) -> Interval:
    """The spread of the bootstrap replicates around their median, placed around ``value``.

    For statistics of a circuit that is re-extracted from every resample (a
    similarity between two circuits, a circuit's own split-half agreement),
    the replicates are biased: a resampled circuit is noisier than the
    full-sample one, so its similarity to anything is lower, and a plain
    percentile interval can lie wholly below the full-sample value. This
    interval keeps the bootstrap's spread, ``[median − (median − q2.5),
    median + (q97.5 − median)]`` shifted so that the median sits on
    ``value``, and clips it to ``[lower, upper]``; it always covers ``value``.

    >>> str(centred_interval(0.8, [0.5, 0.6, 0.6, 0.7], upper=1.0))
    '0.80 [0.71, 0.89]'
    """
    b = np.asarray(boot, dtype=np.float64).ravel()
    b = b[~np.isnan(b)]
    if not b.size or not math.isfinite(value):
        return Interval(float(value), float("nan"), float("nan"))
    median = float(np.median(b))
    low = value - (median - float(np.percentile(b, 2.5)))
    high = value + (float(np.percentile(b, 97.5)) - median)
    return Interval(float(value), float(max(lower, low)), float(min(upper, high)))
