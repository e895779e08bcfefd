"""Tests of ``companion.cpi`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M


@pytest.fixture(scope="module")
def case():
    m = M.random_mdp(3, 2, gamma=0.8, seed=31)
    return m, M.random_policy(3, 2, seed=32), M.random_policy(3, 2, seed=33)


# ---------------------------------------------------------------- coupling
def test_coupling_distances_message(case):
    m, p, q = case
    with pytest.raises(ValueError, match=r"^horizon must"):
        cpi.coupling_distances(m, p, q, 0.5, 0)


def test_coupling_distances_by_matrix_powers(case):
    m, p, q = case
    mix = 0.7 * p + 0.3 * q
    P_p = (p[:, :, None] * m.P).sum(axis=1)
    P_m = (mix[:, :, None] * m.P).sum(axis=1)
    want = [
        np.abs(
            m.mu @ np.linalg.matrix_power(P_m, t)
            - m.mu @ np.linalg.matrix_power(P_p, t)
        ).sum()
        for t in range(6)
    ]
    assert np.allclose(
        cpi.coupling_distances(m, p, q, 0.3, 5), want, rtol=0, atol=1e-14
    )


def test_coupling_violations_counts_every_time_step(case):
    m, p, q = case
    # a bound below every distance is violated at each t = 0 .. horizon (default 30)
    assert (
        cpi.coupling_violations(
            lambda a, t: -np.ones_like(t, dtype=float), [(m, p, q, 0.5)]
        )
        == 31
    )
    assert (
        cpi.coupling_violations(lambda a, t: -1.0, [(m, p, q, 0.5)] * 2, horizon=4)
        == 10
    )
    with pytest.raises(ValueError, match=r"^horizon must"):
        cpi.coupling_violations(lambda a, t: 1.0, [(m, p, q, 0.5)], horizon=0)


def test_coupling_violations_is_strict(case):
    m, p, q = case
    # the exact distances as their own bound, with tol = 0: equal is not a violation
    exact = cpi.coupling_distances(m, p, q, 0.5, 6)
    assert (
        cpi.coupling_violations(
            lambda a, t: exact, [(m, p, q, 0.5)], horizon=6, tol=0.0
        )
        == 0
    )
    assert (
        cpi.coupling_violations(
            lambda a, t: exact - 1e-9, [(m, p, q, 0.5)], horizon=6, tol=0.0
        )
        > 0
    )


# ---------------------------------------------------------------- coverage bound
def test_suboptimality_bound_values_and_messages():
    assert cpi.suboptimality_bound(0.1, 0.5, 0.9) == pytest.approx(0.5 * 0.1 / 0.01)
    assert cpi.suboptimality_bound(0.1, 0.0, 0.9) == 0.0  # C = 0 is allowed
    assert cpi.suboptimality_bound(0.0, np.inf, 0.9) == np.inf
    with pytest.raises(ValueError, match=r"^policy_adv must be finite"):
        cpi.suboptimality_bound(np.nan, 1.0, 0.9)
    with pytest.raises(
        ValueError, match=r"^concentrability_factor must be a number, got 'x'$"
    ):
        cpi.suboptimality_bound(0.1, "x", 0.9)
    with pytest.raises(
        ValueError, match=r"^concentrability_factor must be non-negative, got -0\.5$"
    ):
        cpi.suboptimality_bound(0.1, -0.5, 0.9)


def _gap(m: M.TabularMDP, pi) -> float:
    """J(pi*) - J(pi), computed exactly as coverage_violations does."""
    _, V_star = M.policy_iteration(m)
    return float(m.mu @ V_star) - M.expected_return(m, pi)


def test_coverage_violations_tolerance():
    m = M.random_mdp(3, 2, gamma=0.9, seed=41)
    _, V_star = M.policy_iteration(m)
    J_star = abs(float(m.mu @ V_star))
    assert 1.0 < J_star < 8.0  # the tolerance tol (1 + |J*|) is tested at this scale
    pi = M.uniform_policy(m)
    d, restart, tol = _gap(m, pi), np.full(3, 1 / 3), 1e-6
    assert d > 0

    def count(b, tol=tol, policies=(pi,)):
        return cpi.coverage_violations(
            lambda *args: b, m, list(policies), restart, tol=tol
        )

    assert count(d, tol=0.0) == 0  # a gap equal to the bound is no violation
    assert count(d - 0.5 * tol * (1 + J_star)) == 0  # within the tolerance
    assert count(d - 1.1 * tol * (1 + J_star)) == 1  # beyond it
    assert count(d - 1.0, policies=(pi, pi)) == 2  # each violating policy counts


def test_coverage_violations_messages():
    m = M.random_mdp(3, 2, seed=42)
    with pytest.raises(ValueError, match=r"^restart must have shape"):
        cpi.coverage_violations(
            cpi.suboptimality_bound, m, [M.uniform_policy(m)], np.full(2, 0.5)
        )
    with pytest.raises(ValueError, match=r"^restart must sum to 1"):
        cpi.coverage_violations(
            cpi.suboptimality_bound, m, [M.uniform_policy(m)], np.full(3, 0.5)
        )


def test_bound_equality_error_value():
    c = cpi.BoundCase(gain=2.0, policy_adv=0.1, eps=0.2, alpha=0.5, gamma=0.9)
    assert cpi.bound_equality_error(lambda *a: 2.3, [c]) == pytest.approx(0.3 / 3)
    assert cpi.bound_equality_error(lambda *a: 1.4, [c, c]) == pytest.approx(0.6 / 3)
    neg = cpi.BoundCase(gain=-2.0, policy_adv=0.1, eps=0.2, alpha=0.5, gamma=0.9)
    assert cpi.bound_equality_error(lambda *a: -2.6, [neg]) == pytest.approx(0.6 / 3)
    assert cpi.bound_equality_error(lambda *a: 0.0, []) == 0.0


def unreachable_state_mdp() -> M.TabularMDP:
    """Three states; state 2 is never entered and the start law misses it."""
    P = np.zeros((3, 2, 3))
    P[:, 0, 0] = 1.0
    P[:, 1, 1] = 1.0
    R = np.array([[0.0, 1.0], [0.5, 0.0], [0.0, 0.0]])
    return M.TabularMDP(P, R, 0.5, np.array([0.5, 0.5, 0.0]))


def test_concentrability_skips_states_neither_side_visits():
    m = unreachable_state_mdp()
    pi_star, _ = M.policy_iteration(m)
    d_star = (1 - m.gamma) * M.visitation(m, pi_star)
    assert d_star[2] == 0.0
    restart = np.array([0.25, 0.75, 0.0])  # misses state 2, which pi* never visits
    C = cpi.concentrability(m, pi_star, restart)
    assert np.isfinite(C) and C == pytest.approx(
        max(d_star[0] / 0.25, d_star[1] / 0.75)
    )
    # missing a state that pi* visits makes C infinite
    assert cpi.concentrability(m, pi_star, np.array([0.0, 1.0, 0.0])) == np.inf
    with pytest.raises(ValueError, match=r"^restart must have shape"):
        cpi.concentrability(m, pi_star, np.full(2, 0.5))


def test_mixture_and_first_order_gap_messages():
    m = M.random_mdp(2, 2, seed=50)
    with pytest.raises(ValueError, match=r"^pi must sum to 1"):
        cpi.mixture(np.array([[0.5, 0.6], [0.5, 0.5]]), np.full((2, 2), 0.5), 0.5)
    with pytest.raises(ValueError, match=r"^theta must have shape"):
        cpi.first_order_gap(m, np.zeros(3), cpi.surrogate)


def _diffs(m, pi, pi_new):
    """J(pi_new) - J(pi) from mu and from every state, as lemma_violations computes them."""
    out = []
    for start in [m.mu, *np.eye(m.n_states)]:
        mm = M.TabularMDP(m.P, m.R, m.gamma, start)
        out.append(M.expected_return(mm, pi_new) - M.expected_return(mm, pi))
    return out


def test_lemma_violations_tolerance_and_count():
    m = M.random_mdp(3, 2, gamma=0.9, seed=51)
    pi, pi_new = np.tile([1.0, 0.0], (3, 1)), np.tile([0.0, 1.0], (3, 1))
    d = _diffs(m, pi, pi_new)
    assert all(
        0.5 < abs(x) < 4 for x in d
    )  # the scale at which the tolerance is tested

    def shifted(k):  # the exact difference plus k * rtol * (1 + |diff|)
        def terms(mm, p, q):
            diff = M.expected_return(mm, q) - M.expected_return(mm, p)
            return [diff + k * 1e-6 * (1 + abs(diff))]

        return terms

    case = [(m, pi, pi_new)]
    assert (
        cpi.lemma_violations(shifted(0.0), case, rtol=0.0) == 0
    )  # equal is no violation
    assert cpi.lemma_violations(shifted(0.5), case, rtol=1e-6) == 0
    assert (
        cpi.lemma_violations(shifted(1.2), case, rtol=1e-6) == 4
    )  # mu and 3 point masses
    assert cpi.lemma_violations(shifted(1.2), case * 2, rtol=1e-6) == 8


def test_first_order_gap_messages():
    m = M.random_mdp(2, 2, seed=52)
    with pytest.raises(ValueError, match=r"^h must be positive, got 0\.0$"):
        cpi.first_order_gap(m, np.zeros((2, 2)), cpi.surrogate, h=0.0)
    with pytest.raises(ValueError, match=r"^h must be finite"):
        cpi.first_order_gap(m, np.zeros((2, 2)), cpi.surrogate, h=np.nan)
    with pytest.raises(ValueError, match=r"^theta must have shape"):
        cpi.first_order_gap(m, np.zeros((2, 3)), cpi.surrogate)
