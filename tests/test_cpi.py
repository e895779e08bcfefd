"""Tests of companion.cpi."""

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M


def test_mixture_by_hand_and_validation():
    p, q = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert np.allclose(cpi.mixture(p, q, 0.25), [[0.75, 0.25]])
    with pytest.raises(ValueError, match="alpha must lie in"):
        cpi.mixture(p, q, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        cpi.mixture(p, np.array([[0.5, 0.5], [0.5, 0.5]]), 0.5)
    with pytest.raises(ValueError, match="pi_new must sum to 1"):
        cpi.mixture(p, np.array([[0.5, 0.6]]), 0.5)


def test_policy_advantage_and_surrogate_relations(small_mdp, small_policy):
    other = M.random_policy(4, 3, seed=9)
    adv = cpi.policy_advantage(small_mdp, small_policy, other)
    J = M.expected_return(small_mdp, small_policy)
    assert cpi.surrogate(small_mdp, small_policy, other) == pytest.approx(J + adv / (1 - small_mdp.gamma))
    assert cpi.policy_advantage(small_mdp, small_policy, small_policy) == pytest.approx(0.0, abs=1e-12)
    # independent computation of the policy advantage from its definition
    d = (1 - small_mdp.gamma) * M.visitation(small_mdp, small_policy)
    A = M.q_function(small_mdp, small_policy) - M.value_function(small_mdp, small_policy)[:, None]
    assert adv == pytest.approx(sum(d[s] * other[s] @ A[s] for s in range(4)))
    with pytest.raises(ValueError, match="pi must have shape"):
        cpi.policy_advantage(small_mdp, np.ones((2, 3)) / 3, other)


def test_performance_difference_lemma(small_mdp, small_policy):
    other = M.random_policy(4, 3, seed=10)
    lhs = M.expected_return(small_mdp, other) - M.expected_return(small_mdp, small_policy)
    rhs = M.visitation(small_mdp, other) @ (other * M.advantage_function(small_mdp, small_policy)).sum(1)
    assert lhs == pytest.approx(rhs)


def test_kakade_langford_bound_by_hand_and_vectorised():
    # alpha = 1, gamma = 0.5: 1/(0.5) * (A - 2*0.5*eps/1) = 2 (A - eps)
    assert cpi.kakade_langford_bound(0.3, 0.2, 1.0, 0.5) == pytest.approx(0.2)
    assert cpi.kakade_langford_bound(0.3, 0.2, 0.0, 0.5) == 0.0
    out = cpi.kakade_langford_bound(0.3, 0.2, np.array([0.0, 1.0]), 0.5)
    assert out.shape == (2,) and out[1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="gamma"):
        cpi.kakade_langford_bound(0.3, 0.2, 0.5, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        cpi.kakade_langford_bound(0.3, 0.2, [0.5, 2.0], 0.5)
    with pytest.raises(ValueError, match="eps"):
        cpi.kakade_langford_bound(0.3, -1.0, 0.5, 0.5)


def test_bound_holds_on_random_mdps():
    alphas = np.linspace(0, 1, 11)
    for i in range(100):
        m = M.random_mdp(4, 3, gamma=0.5 + 0.45 * (i % 10) / 10, seed=i)
        p, q = M.random_policy(4, 3, seed=1000 + i), M.random_policy(4, 3, seed=2000 + i)
        gain = np.array([M.expected_return(m, cpi.mixture(p, q, a)) for a in alphas]) - M.expected_return(m, p)
        bound = cpi.kakade_langford_bound(cpi.policy_advantage(m, p, q), cpi.advantage_gap(m, p, q), alphas, m.gamma)
        assert np.all(gain >= bound - 1e-10)


def test_cpi_step_size_cases():
    assert cpi.cpi_step_size(0.1, 0.5, 0.9) == pytest.approx(0.1 * 0.1 / (4 * 0.9 * 0.5))
    assert cpi.cpi_step_size(0.4, 0.4, 0.1) == 1.0
    assert cpi.cpi_step_size(-0.1, 0.4, 0.9) == 0.0


def test_conservative_policy_iteration_reaches_optimum():
    m = M.random_mdp(5, 3, gamma=0.8, seed=3)
    pi, hist = cpi.conservative_policy_iteration(m, n_iters=5000, tol=1e-10)
    J_star = m.mu @ M.policy_iteration(m)[1]
    assert J_star - hist.J[-1] < 1e-6
    gains = np.diff(hist.J)
    assert np.all(gains >= np.array(hist.bound) - 1e-12) and len(hist.J) == len(hist.alpha) + 1
    with pytest.raises(ValueError, match="n_iters"):
        cpi.conservative_policy_iteration(m, n_iters=0)


def test_river_swim_structure_and_optimum():
    m = M.river_swim(6, 0.95)
    assert m.n_states == 6 and m.n_actions == 2
    pi_star, _ = M.policy_iteration(m)
    assert np.all(pi_star.argmax(1) == 1)        # swimming upstream is optimal everywhere
    with pytest.raises(ValueError, match="at least 2"):
        M.river_swim(1)
