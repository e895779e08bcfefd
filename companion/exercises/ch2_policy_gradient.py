"""Checkers for Chapter 2 (Policy gradient)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import (
    _call,
    _compare,
    _fail,
    _passed,
)


def check_reward_to_go(reward_to_go: Callable[..., Any]) -> bool:
    """Check ``reward_to_go(rewards, gamma) -> R`` with :math:`R_t = \\sum_{j \\ge t} \\gamma^{j-t} r_j`."""
    from companion.pg import reward_to_go as reference

    rng = np.random.default_rng(11)
    cases = [
        (np.array([1.0, 1.0, 1.0]), 1.0, "for rewards [1, 1, 1] with gamma=1"),
        (np.array([0.0, 0.0, 1.0]), 0.5, "for rewards [0, 0, 1] with gamma=0.5"),
        (rng.normal(size=50), 0.97, "for 50 random rewards with gamma=0.97"),
        (np.array([2.0]), 0.9, "for a single reward"),
    ]
    for rewards, gamma, context in cases:
        got = _call(reward_to_go, "reward_to_go", rewards.copy(), gamma)
        _compare(got, reference(rewards, gamma), "your reward-to-go", ["t"], context)
    return _passed("reward_to_go is right, including discounting and length-1 trajectories.")


def check_gaussian_score(gaussian_score: Callable[..., Any]) -> bool:
    """Check ``gaussian_score(a, mu, sigma) -> (d/dmu, d/dsigma)`` of :math:`\\log \\mathcal N(a; \\mu, \\sigma^2)` (SymPy)."""
    import sympy as sp

    a, mu = sp.symbols("a mu", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    got = _call(gaussian_score, "gaussian_score", a, mu, sigma)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail("gaussian_score must return a pair (d log p / d mu, d log p / d sigma).")
    log_p = -((a - mu) ** 2) / (2 * sigma**2) - sp.log(sigma) - sp.log(2 * sp.pi) / 2
    for name, expr, var in [("d/dmu", got[0], mu), ("d/dsigma", got[1], sigma)]:
        try:
            diff = sp.simplify(sp.sympify(expr) - sp.diff(log_p, var))
        except (sp.SympifyError, TypeError) as exc:
            _fail(f"the {name} component is not a SymPy expression ({exc}).")
        if diff != 0:
            value = diff.subs({a: 1, mu: 0, sigma: 2})
            _fail(f"the {name} component is off by {value} at a=1, mu=0, sigma=2.")
    density = sp.exp(log_p)
    for name, expr in [("d/dmu", got[0]), ("d/dsigma", got[1])]:
        mean = sp.simplify(sp.integrate(sp.sympify(expr) * density, (a, -sp.oo, sp.oo)))
        if mean != 0:  # cannot happen for a correct score; kept as the lemma's check
            _fail(f"the {name} score does not average to zero (got {mean}).")
    return _passed("both components of the Gaussian score are right, and each has zero mean under the policy.")


def check_action_baseline_estimator(estimator: Callable[..., Any]) -> bool:
    """Check ``estimator(theta, states, actions, rewards, b) -> (S, A)``: reward-to-go minus ``b[s_t, a_t]``."""
    from companion.pg import reinforce_gradient

    rng = np.random.default_rng(5)
    for T, S, A in [(1, 2, 2), (6, 3, 2), (20, 4, 3)]:
        theta = rng.normal(size=(S, A))
        states, actions = rng.integers(S, size=T), rng.integers(A, size=T)
        rewards, b = rng.normal(size=T), rng.normal(size=(S, A))
        got = _call(estimator, "estimator", theta.copy(), states.copy(), actions.copy(), rewards.copy(), b.copy())
        expected = reinforce_gradient(theta, states, actions, rewards, gamma=1.0, baseline=b[states, actions])
        _compare(got, expected, "your estimate", ["state", "action"], f"on a random trajectory of length {T}")
    return _passed("the action-dependent-baseline estimator is implemented as specified.")
