"""Input validation shared by every companion module.

Each helper converts its input to a float ``numpy`` array (or checks a scalar) and
raises :class:`ValueError` with a sentence that names the argument and says what is
wrong with it. Nothing here silently repairs bad input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Smallest absolute tolerance used when checking that probabilities sum to one
#: (:func:`check_distribution` widens it for low-precision inputs).
PROB_ATOL = 1e-8


def as_array(x: Any, name: str, ndim: int | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 array, checking its rank and shape.

    ``shape`` may contain ``-1`` for "any size" along that axis.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}: {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, arr.shape)):
            dims = ["any" if s == -1 else str(s) for s in shape]
            want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return arr


def check_distribution(x: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Check that ``x`` holds probability distributions along its last axis.

    The tolerance is dtype-aware. Entries must be finite and non-negative; each slice
    along the last axis (which must be non-empty) must sum to one within
    ``max(PROB_ATOL, 4 n eps)``, where ``n`` is the length of the last axis and
    ``eps`` the machine epsilon of the input's floating dtype (so a float32 policy whose
    rows sum to one up to float32 rounding is accepted). Returns a float64 array.
    """
    try:
        in_dtype = np.asarray(x).dtype
    except Exception:  # as_array below reports the problem with the argument's name
        in_dtype = np.dtype(np.float64)
    eps = np.finfo(in_dtype).eps if np.issubdtype(in_dtype, np.floating) else np.finfo(np.float64).eps
    arr = as_array(x, name, shape=shape)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if arr.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty last axis, got shape {arr.shape}")
    if np.any(arr < 0):
        bad = np.argwhere(arr < 0)[0]
        raise ValueError(
            f"{name} has a negative probability {arr[tuple(bad)]:.3g} at index {tuple(int(i) for i in bad)}"
        )
    atol = max(PROB_ATOL, 4 * arr.shape[-1] * float(eps))
    sums = np.atleast_1d(arr.sum(axis=-1))
    off = np.abs(sums - 1.0) > atol
    if np.any(off):
        bad = tuple(int(i) for i in np.argwhere(off)[0])
        where = f" at index {bad}" if arr.ndim > 1 else ""
        raise ValueError(
            f"{name} must sum to 1 along its last axis (tolerance {atol:.1g}), but sums to "
            f"{sums[bad]:.12g} (off by {sums[bad] - 1.0:+.3g}){where}"
        )
    return arr


def check_unit_interval(x: Any, name: str, allow_one: bool = True) -> float:
    """Check a number in ``[0, 1]`` (or ``[0, 1)`` with ``allow_one=False``) and return it as a float."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    upper_ok = v <= 1.0 if allow_one else v < 1.0
    if not (np.isfinite(v) and v >= 0.0 and upper_ok):
        interval = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {x!r}")
    return v


def check_gamma(gamma: Any, allow_one: bool = False) -> float:
    """Check a discount factor: ``0 <= gamma < 1`` (or ``<= 1`` with ``allow_one``)."""
    return check_unit_interval(gamma, "gamma", allow_one=allow_one)


def check_positive_int(n: Any, name: str) -> int:
    """Check that ``n`` is an integer >= 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)
