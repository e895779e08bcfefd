"""Uncertainty for claims that rest on seeds or samples.

Every stochastic claim in the book is reported as a mean (or median) with a 95% bootstrap
interval over seeds, and a comparison is asserted only when the intervals support it
(CONTRIBUTING.md, point 4). These helpers wrap :func:`scipy.stats.bootstrap`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as _stats

__all__ = ["Interval", "bootstrap_ci", "paired_difference_ci", "ratio_of_medians_ci"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]`` over ``n`` samples."""

    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, value: float) -> bool:
        """True when ``value`` lies outside the interval."""
        return value < self.low or value > self.high

    def above(self, other: "Interval") -> bool:
        """True when this interval lies entirely above ``other``."""
        return self.low > other.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}] (n={self.n})"


def _as_samples(samples: object, name: str) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per seed), got shape {x.shape}")
    if x.size < 2:
        raise ValueError(f"{name} needs at least 2 values for an interval, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def bootstrap_ci(
    samples: object,
    statistic: Callable[[np.ndarray], float] | str = "mean",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """Bootstrap confidence interval (BCa where defined, else percentile) of ``statistic``.

    Args:
        samples: one value per seed, shape ``(n,)`` with ``n >= 2``.
        statistic: ``"mean"``, ``"median"`` or a function of a 1-D array.
        confidence: level of the interval, in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling, so that reported intervals are reproducible.
    """
    x = _as_samples(samples, "samples")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be at least 100, got {n_resamples}")
    if statistic == "mean":
        fn: Callable[..., float] = np.mean
    elif statistic == "median":
        fn = np.median
    elif callable(statistic):
        fn = statistic
    else:
        raise ValueError(f"statistic must be 'mean', 'median' or a function, got {statistic!r}")
    estimate = float(fn(x))
    if np.all(x == x[0]):  # degenerate: every seed agrees
        return Interval(estimate, estimate, estimate, x.size)
    with warnings.catch_warnings():  # BCa is undefined for some data; fall back below
        warnings.simplefilter("ignore")
        res = _stats.bootstrap(
            (x,), lambda s, axis=-1: np.apply_along_axis(fn, axis, s), vectorized=True,
            confidence_level=confidence, n_resamples=n_resamples, method="BCa",
            random_state=np.random.default_rng(seed),
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa undefined (e.g. few distinct values)
        res = _stats.bootstrap(
            (x,), lambda s, axis=-1: np.apply_along_axis(fn, axis, s), vectorized=True,
            confidence_level=confidence, n_resamples=n_resamples, method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Interval(estimate, low, high, x.size)


def paired_difference_ci(
    a: object, b: object, statistic: str = "mean", confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of ``a - b`` seed by seed (the same seeds for both): the paired comparison."""
    xa, xb = _as_samples(a, "a"), _as_samples(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must have the same number of seeds, got {xa.size} and {xb.size}")
    return bootstrap_ci(xa - xb, statistic=statistic, confidence=confidence, seed=seed)


def ratio_of_medians_ci(
    a: object, b: object, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> Interval:
    """Interval of ``median(a) / median(b)`` for two *independent* samples.

    For comparing two learners whose runs share no randomness (seed ``k`` of one library
    has nothing to do with seed ``k`` of the other), so that pairing runs by seed would be
    arbitrary: each sample is resampled on its own (two-sample bootstrap, BCa where
    defined, else percentile; an interval that misses the estimate, which a percentile
    interval can on tiny samples, is widened to contain it). ``b`` must have a positive
    median.
    """
    xa, xb = _as_samples(a, "a"), _as_samples(b, "b")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be at least 100, got {n_resamples}")
    if np.median(xb) <= 0 or np.any(xb < 0) or np.any(xa < 0):
        raise ValueError("a and b must be non-negative and b's median positive")
    estimate = float(np.median(xa) / np.median(xb))

    def stat(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(u, axis=axis) / np.median(v, axis=axis)

    low = high = float("nan")
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = _stats.bootstrap(
                (xa, xb), stat, vectorized=True, paired=False, confidence_level=confidence,
                n_resamples=n_resamples, method=method, random_state=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            break
    return Interval(estimate, min(low, estimate), max(high, estimate), min(xa.size, xb.size))
