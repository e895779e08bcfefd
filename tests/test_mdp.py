"""Tests of companion.mdp: hand-computable cases, independent cross-checks, bad input."""

import itertools
import re

import numpy as np
import pytest

from companion import mdp as M


def one_state_mdp(reward: float, gamma: float) -> M.TabularMDP:
    return M.TabularMDP(np.ones((1, 1, 1)), np.array([[reward]]), gamma, np.array([1.0]))


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "change, message",
    [
        (dict(P=np.ones((2, 2))), "P must have 3 dimension"),
        (dict(P=np.ones((2, 2, 3)) / 3), "shape (S, A, S)"),
        (dict(P=np.full((2, 2, 2), 0.6)), "sum to 1"),
        (dict(P=np.array([[[1.5, -0.5]] * 2] * 2)), "negative probability"),
        (dict(P=np.array([[[np.nan, 1.0]] * 2] * 2)), "NaN"),
        (dict(R=np.zeros((2, 3))), "R must have shape (2, 2)"),
        (dict(R=np.array([[0.0, np.inf], [0.0, 0.0]])), "R contains NaN or inf"),
        (dict(gamma=1.0), "gamma must lie in [0, 1)"),
        (dict(gamma=-0.5), "gamma must lie in [0, 1)"),
        (dict(gamma=float("nan")), "gamma"),
        (dict(mu=np.array([0.5, 0.6])), "mu must sum to 1"),
        (dict(mu=np.array([1.0])), "mu must have shape (2,)"),
    ],
)
def test_tabular_mdp_refuses_bad_input(change, message):
    args = dict(P=np.full((2, 2, 2), 0.5), R=np.zeros((2, 2)), gamma=0.9, mu=np.array([0.5, 0.5]))
    args.update(change)
    with pytest.raises(ValueError, match=re.escape(message)):
        M.TabularMDP(**args)


def test_tabular_mdp_is_read_only(small_mdp):
    with pytest.raises(ValueError):
        small_mdp.P[0, 0, 0] = 1.0
    assert small_mdp.n_states == 4 and small_mdp.n_actions == 3


def test_policy_is_validated(small_mdp):
    with pytest.raises(ValueError, match="pi must have shape"):
        M.value_function(small_mdp, np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="pi must sum to 1"):
        M.value_function(small_mdp, np.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="pi has a negative probability"):
        M.q_function(small_mdp, np.tile([1.5, -0.5, 0.0], (4, 1)))


def test_random_mdp_is_seeded_and_valid():
    a, b = M.random_mdp(5, 2, seed=3), M.random_mdp(5, 2, seed=3)
    assert np.array_equal(a.P, b.P) and np.array_equal(a.R, b.R)
    assert not np.array_equal(a.P, M.random_mdp(5, 2, seed=4).P)
    with pytest.raises(ValueError, match="n_states"):
        M.random_mdp(0, 2)
    with pytest.raises(ValueError, match="gamma"):
        M.random_mdp(2, 2, gamma=1.2)


# ---------------------------------------------------------------- hand-computable values
def test_one_state_value_is_geometric_series():
    m = one_state_mdp(2.0, 0.75)
    pi = np.ones((1, 1))
    assert M.value_function(m, pi) == pytest.approx([2.0 / 0.25])
    assert M.expected_return(m, pi) == pytest.approx(8.0)
    assert M.visitation(m, pi) == pytest.approx([4.0])


def test_two_state_deterministic_chain_by_hand():
    # state 0 --(any action)--> state 1 (absorbing); r(0, .) = 1, r(1, .) = 0
    P = np.zeros((2, 2, 2))
    P[:, :, 1] = 1.0
    R = np.array([[1.0, 3.0], [0.0, 0.0]])
    m = M.TabularMDP(P, R, 0.5, np.array([1.0, 0.0]))
    pi = np.array([[0.5, 0.5], [1.0, 0.0]])
    assert M.value_function(m, pi) == pytest.approx([2.0, 0.0])  # 0.5 * 1 + 0.5 * 3
    assert M.q_function(m, pi) == pytest.approx(np.array([[1.0, 3.0], [0.0, 0.0]]))
    assert M.advantage_function(m, pi) == pytest.approx(np.array([[-1.0, 1.0], [0.0, 0.0]]))
    assert M.visitation(m, pi) == pytest.approx([1.0, 0.5 / 0.5])  # 1 at t=0; 0.5 + 0.25 + ... at state 1
    pi_star, V_star = M.policy_iteration(m)
    assert np.array_equal(pi_star, [[0.0, 1.0], [1.0, 0.0]]) and V_star == pytest.approx([3.0, 0.0])


# ---------------------------------------------------------------- cross-checks
def test_value_function_matches_iterated_bellman_backup(small_mdp, small_policy):
    V = np.zeros(small_mdp.n_states)
    for _ in range(600):
        V = M.bellman_expectation_backup(small_mdp, small_policy, V)
    assert np.allclose(V, M.value_function(small_mdp, small_policy), atol=1e-10)


def test_q_and_advantage_relations(small_mdp, small_policy):
    V = M.value_function(small_mdp, small_policy)
    Q = M.q_function(small_mdp, small_policy)
    A = M.advantage_function(small_mdp, small_policy)
    assert np.allclose((small_policy * Q).sum(axis=1), V)
    assert np.allclose(A, Q - V[:, None])
    assert np.allclose((small_policy * A).sum(axis=1), 0.0)


def test_visitation_power_series_and_duality(small_mdp, small_policy):
    rho = M.visitation(small_mdp, small_policy)
    P_pi = M.policy_transition_matrix(small_mdp, small_policy)
    series, dist = np.zeros(small_mdp.n_states), small_mdp.mu.copy()
    for t in range(800):
        series += small_mdp.gamma**t * dist
        dist = dist @ P_pi
    assert np.allclose(rho, series, atol=1e-10)
    assert rho.sum() == pytest.approx(1 / (1 - small_mdp.gamma))
    # J = mu . V = rho . r_pi (the same number computed from the two sides)
    J = M.expected_return(small_mdp, small_policy)
    assert J == pytest.approx(rho @ M.policy_reward(small_mdp, small_policy))


def test_value_function_matches_monte_carlo(small_mdp, small_policy):
    n, H = 20_000, 200
    G = M.monte_carlo_returns(small_mdp, small_policy, n, H, start_state=2, seed=0)
    V = M.value_function(small_mdp, small_policy)
    assert abs(G.mean() - V[2]) < 4 * G.std() / np.sqrt(n) + 1e-6
    Gq = M.monte_carlo_returns(small_mdp, small_policy, n, H, start_state=1, start_action=2, seed=1)
    Q = M.q_function(small_mdp, small_policy)
    assert abs(Gq.mean() - Q[1, 2]) < 4 * Gq.std() / np.sqrt(n) + 1e-6


def test_monte_carlo_returns_refuses_bad_start(small_mdp, small_policy):
    with pytest.raises(ValueError, match="start_state"):
        M.monte_carlo_returns(small_mdp, small_policy, 10, 10, start_state=7)
    with pytest.raises(ValueError, match="start_action needs a start_state"):
        M.monte_carlo_returns(small_mdp, small_policy, 10, 10, start_action=0)


def test_policy_and_value_iteration_agree_with_brute_force():
    for seed in range(5):
        m = M.random_mdp(3, 2, gamma=0.9, seed=seed)
        best = np.max(
            [M.value_function(m, np.eye(2)[list(actions)]) for actions in itertools.product(range(2), repeat=3)],
            axis=0,
        )
        pi_pi, V_pi = M.policy_iteration(m)
        pi_vi, V_vi = M.value_iteration(m, tol=1e-10)
        assert np.allclose(V_pi, best, atol=1e-10)
        assert np.allclose(V_vi, best, atol=1e-9)
        assert np.allclose(M.value_function(m, pi_vi), best, atol=1e-9)
        assert np.allclose(M.bellman_optimality_backup(m, V_pi), V_pi, atol=1e-12)


def test_value_iteration_refuses_bad_tol(small_mdp):
    with pytest.raises(ValueError, match="tol"):
        M.value_iteration(small_mdp, tol=0.0)


def test_greedy_policy_breaks_ties_to_lowest_index():
    Q = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    assert np.array_equal(M.greedy_policy(Q), [[1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="Q must have 2 dimension"):
        M.greedy_policy(np.zeros(3))


def test_sample_trajectory_shapes_law_and_prefix(small_mdp, small_policy):
    s, a, r = M.sample_trajectory(small_mdp, small_policy, 30_000, rng=0)
    assert s.shape == (30_001,) and a.shape == r.shape == (30_000,)
    assert np.array_equal(r, small_mdp.R[s[:-1], a])
    # action frequencies in state 0 follow pi(. | 0)
    in0 = s[:-1] == 0
    freq = np.bincount(a[in0], minlength=small_mdp.n_actions) / in0.sum()
    assert np.allclose(freq, small_policy[0], atol=5 * np.sqrt(0.25 / in0.sum()))
    # a longer horizon extends the same trajectory
    s2, a2, _ = M.sample_trajectory(small_mdp, small_policy, 100, rng=0)
    assert np.array_equal(s2, s[:101]) and np.array_equal(a2, a[:100])
    with pytest.raises(ValueError, match="horizon"):
        M.sample_trajectory(small_mdp, small_policy, 0)


def test_sample_batch_shapes_forced_start_and_law(small_mdp, small_policy):
    s, a, r = M.sample_batch(small_mdp, small_policy, 5000, 3, start_state=1, start_action=2, seed=0)
    assert s.shape == (4, 5000) and a.shape == r.shape == (3, 5000)
    assert np.all(s[0] == 1) and np.all(a[0] == 2)
    assert np.array_equal(r, small_mdp.R[s[:-1], a])
    freq = np.bincount(s[1], minlength=small_mdp.n_states) / 5000
    assert np.allclose(freq, small_mdp.P[1, 2], atol=5 * np.sqrt(0.25 / 5000))
    s_mu, _, _ = M.sample_batch(small_mdp, small_policy, 20_000, 1, seed=1)
    assert np.allclose(np.bincount(s_mu[0], minlength=4) / 20_000, small_mdp.mu, atol=5 * np.sqrt(0.25 / 20_000))
