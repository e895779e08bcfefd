"""Chapter 1 exercise checkers: right answers pass (float64, float32, iterative), the wrong
answers a reader is likely to write fail, and no message reveals the reference answer."""

import re

import numpy as np
import pytest

from companion import mdp as M
from companion.exercises import ExerciseFailure
from companion.exercises._common import _test_mdps
from companion.exercises.ch1_foundations import (
    check_expected_td_residual,
    check_policy_evaluation,
    check_v_from_q,
)


def _p_pi(P, pi):
    return np.einsum("sa,sat->st", pi, P)


def solve(P, R, gamma, pi):
    return np.linalg.solve(np.eye(len(P)) - gamma * _p_pi(P, pi), (pi * R).sum(axis=1))


def solve_float32(P, R, gamma, pi):
    P, R, pi = (np.asarray(x, dtype=np.float32) for x in (P, R, pi))
    g = np.float32(gamma)
    A = np.eye(len(P), dtype=np.float32) - g * np.einsum("sa,sat->st", pi, P)
    V = np.linalg.solve(A, (pi * R).sum(axis=1))
    assert V.dtype == np.float32
    return V


def iterate(P, R, gamma, pi, tol=1e-8):
    """Iterative policy evaluation, stopped when successive iterates differ by < tol."""
    P_pi, r_pi = _p_pi(P, pi), (pi * R).sum(axis=1)
    V = np.zeros(len(P))
    while True:
        V_new = r_pi + gamma * P_pi @ V
        if np.max(np.abs(V_new - V)) < tol:
            return V_new
        V = V_new


def value_iteration(P, R, gamma, pi):  # max instead of the policy's expectation
    V = np.zeros(len(P))
    for _ in range(2000):
        V = (R + gamma * P @ V).max(axis=1)
    return V


WRONG_POLICY_EVALUATION = {
    "missing gamma (singular system)": lambda P, R, g, pi: solve(P, R, 1.0, pi),
    "half gamma": lambda P, R, g, pi: solve(P, R, 0.5 * g, pi),
    "gamma squared": lambda P, R, g, pi: solve(P, R, g**2, pi),
    "transposed P_pi": lambda P, R, g, pi: np.linalg.solve(
        np.eye(len(P)) - g * _p_pi(P, pi).T, (pi * R).sum(axis=1)
    ),
    "max instead of expectation": value_iteration,
    "one Bellman step only": lambda P, R, g, pi: (pi * R).sum(axis=1) + g * _p_pi(P, pi) @ (pi * R).sum(axis=1),
    "uniform policy": lambda P, R, g, pi: solve(P, R, g, np.full_like(pi, 1 / pi.shape[1])),
    "stopped too early": lambda P, R, g, pi: iterate(P, R, g, pi, tol=1e-2),
}


def _message_hides_reference(message: str, references: list[np.ndarray]) -> None:
    numbers = [float(x) for x in re.findall(r"[-+]?\d*\.\d+(?:e[-+]?\d+)?", message)]
    for ref in references:
        for value in np.ravel(ref):
            for x in numbers:
                assert not (abs(value) > 1e-3 and np.isclose(x, value, rtol=1e-3)), (message, value)


# ---------------------------------------------------------------- policy evaluation
@pytest.mark.parametrize("answer", [solve, solve_float32, iterate], ids=["float64", "float32", "iterative 1e-8"])
def test_policy_evaluation_accepts_right_answers(answer):
    assert check_policy_evaluation(answer) is True


@pytest.mark.parametrize("name", list(WRONG_POLICY_EVALUATION))
def test_policy_evaluation_rejects_wrong_answers(name):
    with pytest.raises(ExerciseFailure) as info:
        check_policy_evaluation(WRONG_POLICY_EVALUATION[name])
    refs = [M.value_function(m, pi) for _, m, pi in _test_mdps()]
    _message_hides_reference(str(info.value), refs)


def test_policy_evaluation_rejects_wrong_shape_and_nan():
    with pytest.raises(ExerciseFailure, match="shape"):
        check_policy_evaluation(lambda P, R, g, pi: solve(P, R, g, pi)[:-1])
    with pytest.raises(ExerciseFailure, match="NaN"):
        check_policy_evaluation(lambda P, R, g, pi: solve(P, R, g, pi) * np.nan)


# ---------------------------------------------------------------- V from Q
def test_v_from_q_accepts_float32():
    assert check_v_from_q(lambda Q, pi: (np.float32(pi) * np.float32(Q)).sum(axis=1))


@pytest.mark.parametrize(
    "wrong",
    [
        lambda Q, pi: Q.max(axis=1),  # max instead of expectation
        lambda Q, pi: Q.mean(axis=1),  # uniform weights
        lambda Q, pi: (pi * Q).sum(axis=1) / Q.shape[1],  # averaged instead of summed
        lambda Q, pi: (pi[::-1] * Q).sum(axis=1),  # rows of pi misaligned
    ],
    ids=["max", "mean", "divided by A", "misaligned rows"],
)
def test_v_from_q_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailure) as info:
        check_v_from_q(wrong)
    _message_hides_reference(str(info.value), [M.value_function(m, pi) for _, m, pi in _test_mdps()])


# ---------------------------------------------------------------- expected TD residual
def test_expected_td_residual_accepts_float32_and_loops():
    def float32(P, R, g, V):
        P, R, V = (np.asarray(x, dtype=np.float32) for x in (P, R, V))
        return R + np.float32(g) * P @ V - V[:, None]

    def loops(P, R, g, V):
        S, A = R.shape
        out = np.zeros((S, A))
        for s in range(S):
            for a in range(A):
                out[s, a] = sum(P[s, a, s2] * (R[s, a] + g * V[s2] - V[s]) for s2 in range(S))
        return out

    assert check_expected_td_residual(float32)
    assert check_expected_td_residual(loops)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda P, R, g, V: R + P @ V - V[:, None],  # missing gamma
        lambda P, R, g, V: R + g * V[:, None] - V[:, None],  # V(s) instead of V(s')
        lambda P, R, g, V: -(R + g * P @ V - V[:, None]),  # sign flip
        lambda P, R, g, V: R + g * np.max(V) - V[:, None],  # max instead of expectation over s'
        lambda P, R, g, V: R + g * np.einsum("sat,s->sa", P, V) - V[:, None],  # wrong index summed
        lambda P, R, g, V: R + g * P @ V,  # Q, not the residual
    ],
    ids=["no gamma", "V(s) for V(s')", "sign", "max over s'", "wrong index", "Q"],
)
def test_expected_td_residual_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailure, match=r"off at state=\d+, action=\d+ by"):
        check_expected_td_residual(wrong)


def test_tolerance_is_stated_in_the_exercises():
    from pathlib import Path

    text = Path(__file__).resolve().parents[1].joinpath("book", "01_foundations.md").read_text()
    for label in ("ex-policy-evaluation", "ex-v-from-q", "ex-expected-td-residual"):
        block = text.split(f":label: {label}", 1)[1].split("```", 1)[0]
        assert "1e-5" in block.replace("10^{-5}", "1e-5"), label
