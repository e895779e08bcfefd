"""Checkers for Chapter 6 (Generalized advantage estimation).

Both checkers compare with a tolerance of ``RTOL`` (1e-5) relative to the scale of the
expected answer, as the exercises state. A failure names the case, the entry and the
size of the error *as a coarse fraction of the answer's scale*, never the expected values: an
absolute error would give them away for an all-zero answer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import _call, _compare, _passed


def check_k_step_advantage(k_step: Callable[..., Any]) -> bool:
    """Check ``k_step(rewards, values, gamma, k)`` against :func:`companion.gae.k_step_advantage`."""
    from companion.gae import k_step_advantage

    rng = np.random.default_rng(21)
    cases = [(np.ones(3), np.zeros(4), 0.5, 2, "for rewards [1, 1, 1], zero values, gamma=0.5, k=2")]
    for T, k in [(8, 1), (8, 3), (8, 8), (8, 20), (1, 2)]:
        context = f"for a random segment of length {T} with k={k}"
        cases.append((rng.normal(size=T), rng.normal(size=T + 1), 0.9, k, context))
    for rewards, values, gamma, k, context in cases:
        got = _call(k_step, "k_step", rewards.copy(), values.copy(), gamma, k)
        _compare(got, k_step_advantage(rewards, values, gamma, k), "your A^(k)", ["t"], context)
    return _passed("k_step matches the k-step advantage, including the bootstrap at the end of the segment.")


def check_monte_carlo_advantage(monte_carlo_advantage: Callable[..., Any]) -> bool:
    """Check ``monte_carlo_advantage(rewards, values, gamma)`` against GAE with :math:`\\lambda = 1`."""
    from companion.gae import gae

    rng = np.random.default_rng(22)
    for T, gamma in [(1, 0.9), (5, 1.0), (30, 0.97)]:
        rewards, values = rng.normal(size=T), rng.normal(size=T)
        terminated = np.zeros(T)
        terminated[-1] = 1
        expected = gae(rewards, values, np.append(values[1:], 0.0), terminated, np.zeros(T), gamma, 1.0)
        got = _call(monte_carlo_advantage, "monte_carlo_advantage", rewards.copy(), values.copy(), gamma)
        context = f"on a terminated episode of length {T}, gamma={gamma}"
        _compare(got, expected, "your advantage", ["t"], context)
    return _passed("Monte Carlo return minus V equals GAE with lambda = 1 on every test episode.")
