"""Checkers for Chapter 3 (Approximate policy iteration and mixture policies)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion import mdp as _mdp
from companion.exercises._common import (
    _call,
    _fail,
    _passed,
    _policy_pairs,
    _scalar,
)


def check_performance_difference(performance_difference: Callable[..., Any]) -> bool:
    """Check ``performance_difference(P, R, gamma, mu, pi, pi_new)`` against :math:`J(\\pi') - J(\\pi)`."""
    for context, m, pi, other in _policy_pairs():
        for a, b, label in [(pi, other, "pi -> pi_new"), (other, pi, "pi_new -> pi"), (pi, pi, "pi -> pi")]:
            got = _scalar(_call(performance_difference, "performance_difference",
                                m.P.copy(), m.R.copy(), m.gamma, m.mu.copy(), a.copy(), b.copy()),
                          "performance_difference")
            want = _mdp.expected_return(m, b) - _mdp.expected_return(m, a)
            if abs(got - want) > 1e-8:
                _fail(f"your value is off by {got - want:+.4g} {context} ({label}); "
                      "check which policy's visitation and which policy's advantage you use.")
    return _passed("performance_difference equals J(pi_new) - J(pi) on every test pair: the lemma holds.")


def check_surrogate(surrogate_L: Callable[..., Any]) -> bool:
    """Check ``surrogate_L(P, R, gamma, mu, pi, pi_new)``: its value, and first-order agreement with :math:`J`."""
    from companion.cpi import surrogate

    for context, m, pi, other in _policy_pairs():
        def L(new: np.ndarray) -> float:
            return _scalar(_call(surrogate_L, "surrogate_L", m.P.copy(), m.R.copy(), m.gamma,
                                 m.mu.copy(), pi.copy(), new.copy()), "surrogate_L")

        got, want = L(other), surrogate(m, pi, other)
        if abs(got - want) > 1e-8:
            _fail(f"L_pi(pi_new) is off by {got - want:+.4g} {context}.")
        if abs(L(pi) - _mdp.expected_return(m, pi)) > 1e-8:
            _fail(f"L_pi(pi) should equal J(pi) {context}.")
        h = 1e-6  # directional derivative along the mixture towards `other`
        slope_L = (L((1 - h) * pi + h * other) - L(pi)) / h
        slope_J = (_mdp.expected_return(m, (1 - h) * pi + h * other) - _mdp.expected_return(m, pi)) / h
        if abs(slope_L - slope_J) > 1e-4 * (1 + abs(slope_J)):
            _fail(f"the slope of L at pi ({slope_L:.5g}) differs from that of J ({slope_J:.5g}) {context}.")
    return _passed("surrogate_L has the right value and the same first-order behaviour as J at pi.")


def check_cpi_step_size(step_size: Callable[..., Any]) -> bool:
    """Check ``step_size(policy_adv, eps, gamma)`` against :func:`companion.cpi.cpi_step_size`."""
    from companion.cpi import cpi_step_size

    cases = [(0.1, 0.5, 0.9), (0.4, 0.4, 0.2), (-0.1, 0.3, 0.9), (0.0, 0.3, 0.9), (0.05, 0.08, 0.99)]
    for adv, eps, gamma in cases:
        got = _scalar(_call(step_size, "step_size", adv, eps, gamma), "step_size")
        want = cpi_step_size(adv, eps, gamma)
        if abs(got - want) > 1e-12:
            _fail(f"step_size({adv}, {eps}, {gamma}) is off by {got - want:+.4g}.")
    return _passed("step_size gives alpha* in every case, including the cap at 1 and non-positive advantages.")
