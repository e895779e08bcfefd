"""Checkers for Chapter 3 (Approximate policy iteration and mixture policies).

Every comparison uses a tolerance relative to the answer's scale
(:data:`companion.exercises._common.RTOL`, 1e-5), as the exercises state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from companion import mdp as _mdp
from companion.exercises._common import (
    RTOL,
    _call,
    _compare,
    _fail,
    _passed,
    _policy_pairs,
    _scalar,
    _size_bucket,
    tolerance,
)


def _off_by(got: float, want: float) -> str:
    """How far ``got`` is from ``want``, as a coarse bucket relative to the answer's scale.

    The scale is that of :func:`tolerance` (``max(|want|, 1e-3)``). Only a bucket and a
    direction are reported: the signed error of a stub returning 0 would be the answer.
    """
    scale = tolerance(want) / RTOL
    return _size_bucket(abs(got - want) / scale) + " of the answer's scale"


def check_performance_difference(performance_difference: Callable[..., Any]) -> bool:
    """Check ``performance_difference(P, R, gamma, mu, pi, pi_new)``, state by state.

    The answer is the vector of per-state terms of the performance difference lemma,
    :math:`c(s) = \\rho_{\\tilde\\pi}(s) \\sum_a \\tilde\\pi(a|s) A_\\pi(s, a)`, shape
    ``(S,)``; its sum is :math:`J(\\tilde\\pi) - J(\\pi)`. The reference is computed
    with the companion's exact visitation and advantage; a scalar (the lemma's left-hand
    side), the old policy's visitation or the normalised visitation are rejected.
    """
    for context, m, pi, other in _policy_pairs():
        pairs = [
            (pi, other, "pi -> pi_new"),
            (other, pi, "pi_new -> pi"),
            (pi, pi, "pi -> pi"),
        ]
        for a, b, label in pairs:
            got = _call(
                performance_difference,
                "performance_difference",
                m.P.copy(),
                m.R.copy(),
                m.gamma,
                m.mu.copy(),
                a.copy(),
                b.copy(),
            )
            want = _mdp.visitation(m, b) * (b * _mdp.advantage_function(m, a)).sum(
                axis=1
            )
            _compare(
                got,
                want,
                "your vector of per-state terms",
                ("state",),
                f"{context} ({label}); check which policy's visitation (unnormalised) "
                "and which policy's advantage you use",
            )
    return _passed(
        "performance_difference gives every state's term rho_new(s) * sum_a "
        "pi_new(a|s) A_pi(s, a) on every test pair (relative tolerance 1e-5)."
    )


def check_surrogate(surrogate_L: Callable[..., Any]) -> bool:
    """Check ``surrogate_L(P, R, gamma, mu, pi, pi_new)``: value and slope match :math:`J`."""
    from companion.cpi import surrogate

    for context, m, pi, other in _policy_pairs():

        def L(new: np.ndarray, m=m, pi=pi) -> float:
            out = _call(
                surrogate_L,
                "surrogate_L",
                m.P.copy(),
                m.R.copy(),
                m.gamma,
                m.mu.copy(),
                pi.copy(),
                new.copy(),
            )
            return _scalar(out, "surrogate_L")

        got, want = L(other), surrogate(m, pi, other)
        if abs(got - want) > tolerance(want):
            _fail(
                f"L_pi(pi_new) is off by {_off_by(got, want)} (relative tolerance "
                f"1e-5) {context}."
            )
        J_pi = _mdp.expected_return(m, pi)
        if abs(L(pi) - J_pi) > tolerance(J_pi):
            _fail(
                f"L_pi(pi) should equal J(pi) but is off by {_off_by(L(pi), J_pi)} "
                f"{context}."
            )
        # directional derivatives along the mixture towards `other`: L is linear in its
        # second argument, so a long step (0.1) measures its slope even from a float32
        # answer; J is not, so its slope takes a short step on exact float64 values
        h_L, h_J = 0.1, 1e-6
        slope_L = (L((1 - h_L) * pi + h_L * other) - L(pi)) / h_L
        mix = (1 - h_J) * pi + h_J * other
        slope_J = (_mdp.expected_return(m, mix) - J_pi) / h_J
        if abs(slope_L - slope_J) > 1e-4 * (1 + abs(slope_J)):
            _fail(
                f"the slope of your L at pi towards pi_new is off from the slope of J "
                f"by {_off_by(slope_L, slope_J)} {context}."
            )
    return _passed(
        "surrogate_L has the right value (relative tolerance 1e-5) and the same "
        "first-order behaviour as J at pi."
    )


#: (policy_adv, eps, gamma, what the case tests): the cap binds strictly in the second
#: and fourth cases (uncapped values 2.25 and 1.05), gamma = 0 in the fifth.
_STEP_CASES = [
    (0.1, 0.5, 0.9, "a small step"),
    (0.4, 0.4, 0.1, "a case where the cap at 1 binds"),
    (0.05, 0.08, 0.99, "gamma close to 1"),
    (0.3, 0.5, 0.125, "another case where the cap at 1 binds"),
    (0.3, 0.5, 0.0, "gamma = 0"),
    (-0.1, 0.3, 0.9, "a negative policy advantage"),
    (0.0, 0.3, 0.9, "a zero policy advantage"),
]


def _check_scalar_cases(
    fn: Callable[..., Any], name: str, reference: Callable[[float, float, float], float]
) -> None:
    for adv, eps, gamma, what in _STEP_CASES:
        got = _scalar(_call(fn, name, adv, eps, gamma), name)
        want = reference(adv, eps, gamma)
        if abs(got - want) > tolerance(want, RTOL):
            _fail(
                f"{name}({adv}, {eps}, {gamma}) is off by {_off_by(got, want)} "
                f"({what}; relative tolerance 1e-5)."
            )


def check_cpi_step_size(step_size: Callable[..., Any]) -> bool:
    """Check ``step_size(policy_adv, eps, gamma)`` against :func:`cpi.cpi_step_size`.

    The cases include two where the cap at 1 binds strictly, ``gamma = 0`` (where the
    step is 1) and non-positive advantages (where it is 0).
    """
    from companion.cpi import cpi_step_size

    _check_scalar_cases(step_size, "step_size", cpi_step_size)
    return _passed(
        "step_size gives alpha* in every case, including the cap at 1, gamma = 0 and "
        "non-positive advantages."
    )


def check_guaranteed_gain(guaranteed_gain: Callable[..., Any]) -> bool:
    """Check ``guaranteed_gain(policy_adv, eps, gamma)`` (:func:`cpi.cpi_guaranteed_gain`).

    Both cases of eq. ``cpi-alpha`` are tested: :math:`\\alpha^* < 1` and a binding cap
    :math:`\\alpha^* = 1` (including ``gamma = 0``), plus non-positive advantages.
    """
    from companion.cpi import cpi_guaranteed_gain

    _check_scalar_cases(guaranteed_gain, "guaranteed_gain", cpi_guaranteed_gain)
    return _passed(
        "guaranteed_gain is right when alpha* < 1, when the cap alpha* = 1 binds "
        "(gamma = 0 included) and for non-positive advantages."
    )
