"""Chapter 3 exercise checkers: the reference passes, likely wrong answers are rejected."""

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M
from companion.exercises import ExerciseFailure
from companion.exercises.ch3_cpi import (
    check_cpi_step_size,
    check_guaranteed_gain,
    check_performance_difference,
    check_surrogate,
)


def _transition(P, p):
    return np.einsum("sa,sat->st", p, P)


def _value(P, R, gamma, p):
    return np.linalg.solve(np.eye(len(P)) - gamma * _transition(P, p), (p * R).sum(1))


def _adv(P, R, gamma, p):
    V = _value(P, R, gamma, p)
    return R + gamma * P @ V - V[:, None]


def _rho(P, gamma, mu, p):
    return np.linalg.solve((np.eye(len(mu)) - gamma * _transition(P, p)).T, mu)


def pd_right(P, R, gamma, mu, pi, new):
    return _rho(P, gamma, mu, new) * (new * _adv(P, R, gamma, pi)).sum(1)


# ------------------------------------------------------------ performance difference
def test_performance_difference_right_and_float32_pass():
    assert check_performance_difference(pd_right)
    assert check_performance_difference(
        lambda *args: pd_right(*args).astype(np.float32)
    )


def test_performance_difference_lhs_of_lemma_rejected():
    def lhs(P, R, gamma, mu, pi, new):  # the scalar mu.V_new - mu.V_old
        return float(mu @ _value(P, R, gamma, new) - mu @ _value(P, R, gamma, pi))

    with pytest.raises(ExerciseFailure, match="has shape"):
        check_performance_difference(lhs)

    def lhs_spread(P, R, gamma, mu, pi, new):  # right total, wrong per-state split
        return mu * (_value(P, R, gamma, new) - _value(P, R, gamma, pi))

    with pytest.raises(ExerciseFailure, match="off at state="):
        check_performance_difference(lhs_spread)


@pytest.mark.parametrize(
    "wrong",
    [
        # the old policy's visitation: the surrogate's terms, not the lemma's
        lambda P, R, g, mu, pi, new: (
            _rho(P, g, mu, pi) * (new * _adv(P, R, g, pi)).sum(1)
        ),
        # the normalised visitation d = (1 - gamma) rho
        lambda P, R, g, mu, pi, new: (1 - g) * pd_right(P, R, g, mu, pi, new),
        # the new policy's advantage
        lambda P, R, g, mu, pi, new: (
            _rho(P, g, mu, new) * (new * _adv(P, R, g, new)).sum(1)
        ),
    ],
    ids=["old-visitation", "normalised-visitation", "new-advantage"],
)
def test_performance_difference_wrong_visitation_rejected(wrong):
    with pytest.raises(ExerciseFailure, match="off at state="):
        check_performance_difference(wrong)


def test_performance_difference_message_hides_answer():
    def old_visitation(P, R, g, mu, pi, new):
        return _rho(P, g, mu, pi) * (new * _adv(P, R, g, pi)).sum(1)

    with pytest.raises(ExerciseFailure) as info:
        check_performance_difference(old_visitation)
    assert "expected" not in str(info.value).split("shape")[0]


# ----------------------------------------------------------------------- surrogate
def L_right(P, R, gamma, mu, pi, new):
    rho = _rho(P, gamma, mu, pi)
    return float(
        mu @ _value(P, R, gamma, pi) + rho @ (new * _adv(P, R, gamma, pi)).sum(1)
    )


def test_surrogate_right_and_float32_pass():
    assert check_surrogate(L_right)
    assert check_surrogate(lambda *args: np.float32(L_right(*args)))


def test_surrogate_missing_factor_rejected():
    def no_factor(P, R, gamma, mu, pi, new):  # L = J + A with d instead of rho
        J = float(mu @ _value(P, R, gamma, pi))
        return J + (1 - gamma) * (L_right(P, R, gamma, mu, pi, new) - J)

    with pytest.raises(ExerciseFailure, match="off by"):
        check_surrogate(no_factor)


# ----------------------------------------------------------------------- step size
def step_right(a, e, g):
    if a <= 0:
        return 0.0
    if g == 0:
        return 1.0
    return min(1.0, (1 - g) * a / (4 * g * e))


def test_step_size_right_and_float32_pass():
    assert check_cpi_step_size(step_right)
    assert check_cpi_step_size(lambda a, e, g: np.float32(step_right(a, e, g)))


def test_step_size_uncapped_rejected():
    def uncapped(a, e, g):
        if a <= 0:
            return 0.0
        return 1.0 if g == 0 else (1 - g) * a / (4 * g * e)

    with pytest.raises(ExerciseFailure, match="cap at 1 binds"):
        check_cpi_step_size(uncapped)


def test_step_size_gamma_zero_handled():
    def crashes(a, e, g):  # right except at gamma = 0, where it divides by zero
        return 0.0 if a <= 0 else min(1.0, (1 - g) * a / (4 * g * e))

    with pytest.raises(ExerciseFailure, match="ZeroDivisionError"):
        check_cpi_step_size(crashes)

    def zero_at_gamma_zero(a, e, g):
        return 0.0 if g == 0 else step_right(a, e, g)

    with pytest.raises(ExerciseFailure, match="gamma = 0"):
        check_cpi_step_size(zero_at_gamma_zero)


def test_step_size_negative_advantage_rejected():
    def no_zero(a, e, g):
        return 1.0 if g == 0 else min(1.0, (1 - g) * a / (4 * g * e))

    with pytest.raises(ExerciseFailure, match="negative policy advantage"):
        check_cpi_step_size(no_zero)


# ------------------------------------------------------------------ guaranteed gain
def gain_right(a, e, g):
    alpha = step_right(a, e, g)
    if alpha == 0:
        return 0.0
    if alpha < 1:
        return a**2 / (8 * g * e)
    return (a - 2 * g * e / (1 - g)) / (1 - g)


def test_guaranteed_gain_right_and_float32_pass():
    assert check_guaranteed_gain(gain_right)
    assert check_guaranteed_gain(lambda a, e, g: np.float32(gain_right(a, e, g)))
    assert check_guaranteed_gain(cpi.cpi_guaranteed_gain)


def test_guaranteed_gain_old_claim_rejected():
    def old_claim(a, e, g):  # A^2 / (8 gamma eps) whatever alpha* is
        if a <= 0:
            return 0.0
        return a if g == 0 else a**2 / (8 * g * e)

    with pytest.raises(ExerciseFailure, match="cap at 1 binds"):
        check_guaranteed_gain(old_claim)


def test_guaranteed_gain_wrong_cap_branch_rejected():
    def full_bound_at_one(a, e, g):  # the other bound at alpha = 1: not what is asked
        alpha = step_right(a, e, g)
        if alpha == 0:
            return 0.0
        return a**2 / (8 * g * e) if alpha < 1 else (a - 2 * g * e) / (1 - g)

    with pytest.raises(ExerciseFailure, match="cap at 1 binds"):
        check_guaranteed_gain(full_bound_at_one)


def test_reference_answers_agree_with_the_companion():
    for a, e, g in [
        (0.1, 0.5, 0.9),
        (0.4, 0.4, 0.1),
        (0.3, 0.5, 0.0),
        (-0.1, 0.3, 0.9),
    ]:
        assert step_right(a, e, g) == pytest.approx(cpi.cpi_step_size(a, e, g))
        assert gain_right(a, e, g) == pytest.approx(cpi.cpi_guaranteed_gain(a, e, g))
    m = M.random_mdp(3, 2, seed=0)
    p, q = M.random_policy(3, 2, seed=1), M.random_policy(3, 2, seed=2)
    diff = M.expected_return(m, q) - M.expected_return(m, p)
    assert pd_right(m.P, m.R, m.gamma, m.mu, p, q).sum() == pytest.approx(diff)


# --------------------------------------------- a zero stub must not reveal the answer
def _renderings(x):
    """Ways a number may be printed: the answer must appear in none of them."""
    out = set()
    for v in (x, -x):
        for fmt in ("{:.4g}", "{:+.4g}", "{:.3g}", "{:.3f}", "{:.2f}", "{:.6f}"):
            out.add(fmt.format(v))
    return {r for r in out if r.strip("+-0.") != ""}  # zero prints as itself


@pytest.mark.parametrize(
    "check, stub, reference",
    [
        (check_cpi_step_size, lambda a, e, g: 0.0, cpi.cpi_step_size),
        (check_guaranteed_gain, lambda a, e, g: 0.0, cpi.cpi_guaranteed_gain),
    ],
    ids=["step_size", "guaranteed_gain"],
)
def test_scalar_checkers_zero_stub_hides_answer(check, stub, reference):
    from companion.exercises.ch3_cpi import _STEP_CASES

    with pytest.raises(ExerciseFailure) as info:
        check(stub)
    message = str(info.value)
    assert "more than 10%" in message
    adv, eps, gamma, _ = next(
        c for c in _STEP_CASES if reference(c[0], c[1], c[2]) != 0
    )
    want = reference(adv, eps, gamma)
    # the inputs are printed, the answer is not
    message = message.replace(f"({adv}, {eps}, {gamma})", "")
    for shown in _renderings(want):
        assert shown not in message, shown


def test_surrogate_zero_stub_hides_answer():
    from companion.exercises._common import _policy_pairs

    with pytest.raises(ExerciseFailure) as info:
        check_surrogate(lambda *args: 0.0)
    message = str(info.value)
    assert "more than 10%" in message
    _, m, pi, other = _policy_pairs()[0]
    for want in (cpi.surrogate(m, pi, other), M.expected_return(m, pi)):
        for shown in _renderings(want):
            assert shown not in message, shown

