"""Checkers for Chapter 7 (GRPO).

Tolerances are relative to the answer's scale (``_common.RTOL`` = 1e-5, see
:func:`companion.exercises._common.tolerance`); the exercises state it.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import (
    _call,
    _compare,
    _fail,
    _passed,
    tolerance,
)


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.all(np.abs(got - expected) <= tolerance(expected)))


def check_group_advantages(fn: Callable[..., Any]) -> bool:
    """Check ``fn(rewards, scale)`` against :func:`companion.grpo.group_advantages` (numpy).

    Tolerance: 1e-5 relative to the largest advantage. A population standard deviation
    (``ddof=0``) instead of the sample one (``ddof=1``) is recognised and named.
    """
    from companion.grpo import group_advantages

    rng = np.random.default_rng(61)
    cases = [
        (np.array([[1.0, 0.0, 0.0, 1.0]]), "for the group [1, 0, 0, 1]"),
        (np.ones((1, 5)), "for a group whose rewards are all equal"),
        (rng.integers(0, 2, size=(6, 8)).astype(float), "for 6 random binary groups of 8"),
        (rng.normal(size=(3, 4)), "for 3 groups of real-valued rewards"),
    ]
    for rewards, context in cases:
        for scale in (True, False):
            got = _call(fn, "my_group_advantages", rewards.copy(), scale)
            label = f"{context} with scale={scale}"
            expected = group_advantages(rewards, scale=scale)
            if scale and got is not None:
                try:
                    arr = np.asarray(got, dtype=np.float64)
                except (TypeError, ValueError):
                    arr = None
                centred = rewards - rewards.mean(axis=1, keepdims=True)
                population = centred / (rewards.std(axis=1, keepdims=True) + 1e-4)
                if (
                    arr is not None
                    and arr.shape == expected.shape
                    and not _close(arr, expected)
                    and _close(arr, population)
                ):
                    _fail(
                        f"your advantages {label} divide by the population standard "
                        "deviation (ddof=0); the exercise asks for the sample one (ddof=1)."
                    )
            _compare(got, expected, "your advantages", ["prompt", "output"], label)
    return _passed(
        "group advantages are right (1e-5 relative), with and without the scaling."
    )


def _test_pairs() -> list[tuple[np.ndarray, np.ndarray, str]]:
    """Pairs of categorical distributions, including two far apart (KL > 1 nat)."""
    rng = np.random.default_rng(62)
    pairs = []
    for n, conc in [(2, 1.0), (3, 0.5), (10, 1.0), (10, 5.0)]:
        p, q = rng.dirichlet(np.full(n, conc)), rng.dirichlet(np.full(n, conc))
        p, q = np.clip(p, 1e-9, None), np.clip(q, 1e-9, None)
        pairs.append((p / p.sum(), q / q.sum(), f"for a random pair on {n} outcomes"))
    far_p = np.array([0.85, 0.1, 0.05])
    far_q = np.array([0.05, 0.15, 0.8])
    pairs.append((far_p, far_q, "for a pair far apart (KL(p || q) above 2 nats)"))
    return pairs


def check_k3_values(fn: Callable[..., Any]) -> bool:
    """Check ``fn(p, q)``: the k3 value at every outcome, ``x - log x - 1`` with ``x = q/p``.

    The values are compared outcome by outcome (tolerance 1e-5 relative to the largest
    value), so a function that only has the right *expectation* (the naive estimator
    ``-log x``, or the exact KL repeated) is rejected, and the message says which.
    """
    for p, q, context in _test_pairs():
        got = _call(fn, "k3_values", p.copy(), q.copy())
        x = q / p
        expected = x - np.log(x) - 1
        try:
            arr = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.shape == expected.shape and not _close(arr, expected):
            kl = float(np.sum(p * np.log(p / q)))
            if _close(arr, -np.log(x)):
                _fail(
                    f"your values {context} are the naive estimator -log(q/p) (k1): "
                    "unbiased too, but it can be negative; add the control variate."
                )
            if _close(arr, np.full_like(expected, kl)):
                _fail(
                    f"your values {context} are the same at every outcome: an estimator "
                    "is a function of the sampled outcome, not the exact KL."
                )
            y = p / q
            if _close(arr, y - np.log(y) - 1):
                _fail(f"your values {context} use x = p / q; the ratio is q / p.")
        _compare(got, expected, "your k3 values", ["outcome"], context)
    return _passed(
        "your k3 values are right at every outcome (1e-5 relative), including a pair "
        "far apart; their mean under p is KL(p || q)."
    )

