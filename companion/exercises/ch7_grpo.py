"""Checkers for Chapter 7 (GRPO)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import (
    _call,
    _compare,
    _fail,
    _passed,
    _scalar,
)


def check_group_advantages(fn: Callable[..., Any]) -> bool:
    """Check ``fn(rewards, scale)`` against :func:`companion.grpo.group_advantages` (numpy)."""
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
            _compare(got, group_advantages(rewards, scale=scale), "your advantages", ["prompt", "output"], label)
    return _passed("group advantages are right, with and without the standard-deviation scaling.")


def check_k3_expectation(fn: Callable[..., Any]) -> bool:
    """Check ``fn(p, q)`` = :math:`\\mathbb E_{x \\sim p}[\\mathrm{k3}]` against :math:`D_{KL}(p \\| q)`."""
    rng = np.random.default_rng(62)
    for n, conc in [(2, 1.0), (3, 0.5), (10, 1.0), (10, 5.0)]:
        p, q = rng.dirichlet(np.full(n, conc)), rng.dirichlet(np.full(n, conc))
        p, q = np.clip(p, 1e-9, None), np.clip(q, 1e-9, None)
        p, q = p / p.sum(), q / q.sum()
        got = _scalar(_call(fn, "k3_expectation", p.copy(), q.copy()), "k3_expectation")
        kl = float(np.sum(p * np.log(p / q)))
        if abs(got - kl) > 1e-8 * max(1.0, kl):
            reverse = float(np.sum(q * np.log(q / p)))
            if abs(got - reverse) < 1e-8 * max(1.0, reverse):
                _fail("you computed KL(q || p): the tokens are sampled from p, so weight by p and use x = q / p.")
            _fail(f"your expectation is off from KL(p || q) = {kl:.5f} by {got - kl:+.3g} for {n} outcomes.")
    return _passed("the exact expectation of k3 equals KL(p || q) on every test pair.")
