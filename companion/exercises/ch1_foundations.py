"""Checkers for Chapter 1 (Foundations).

Every checker compares with a tolerance relative to the answer's scale: an entry
passes when it is within ``1e-5`` times the largest entry of the exact answer (see
:func:`companion.exercises._common.tolerance`), so float32 answers and iterative ones
accurate to 1e-8 pass. Failure messages name the entry and the size of the error, never
the expected value. Tested in ``tests/test_exercises_ch1.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion import mdp as _mdp
from companion.exercises._common import (
    _call,
    _compare,
    _passed,
    _test_mdps,
)


def check_policy_evaluation(policy_evaluation: Callable[..., Any]) -> bool:
    """Check ``policy_evaluation(P, R, gamma, pi) -> V`` against the exact :math:`V_\\pi`."""
    for context, m, pi in _test_mdps():
        got = _call(policy_evaluation, "policy_evaluation", m.P.copy(), m.R.copy(), m.gamma, pi.copy())
        _compare(got, _mdp.value_function(m, pi), "your V", ["state"], context)
    return _passed("policy_evaluation matches the exact value function on every test MDP.")


def check_v_from_q(v_from_q: Callable[..., Any]) -> bool:
    """Check ``v_from_q(Q, pi) -> V`` with :math:`V_\\pi(s) = \\sum_a \\pi(a|s) Q_\\pi(s,a)`."""
    for context, m, pi in _test_mdps():
        Q = _mdp.q_function(m, pi)
        got = _call(v_from_q, "v_from_q", Q.copy(), pi.copy())
        _compare(got, _mdp.value_function(m, pi), "your V", ["state"], context)
    return _passed("v_from_q recovers V_pi from Q_pi on every test MDP.")


def check_expected_td_residual(expected_td_residual: Callable[..., Any]) -> bool:
    """Check ``expected_td_residual(P, R, gamma, V) -> (S, A)`` array of :math:`\\mathbb E_{s'}[\\delta]`.

    Tested both with :math:`V = V_\\pi` (where the answer is the advantage) and with an
    arbitrary :math:`V`, so that returning the advantage by another route does not pass.
    """
    rng = np.random.default_rng(7)
    for context, m, pi in _test_mdps():
        for V, label in [(_mdp.value_function(m, pi), "with V = V_pi"), (rng.normal(size=m.n_states), "with a random V")]:
            got = _call(expected_td_residual, "expected_td_residual", m.P.copy(), m.R.copy(), m.gamma, V.copy())
            expected = m.R + m.gamma * m.P @ V - V[:, None]
            _compare(got, expected, "your expected TD residual", ["state", "action"], f"{context}, {label}")
    return _passed("expected_td_residual is right, and at V = V_pi it equals the advantage A_pi.")
