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


# ---------------------------------------------------------------- bad input, table
def _chain():
    return M.random_mdp(3, 2, gamma=0.9, seed=0)


_PI = np.full((3, 2), 0.5)

BAD_INPUTS = [
    ("greedy_policy negative tol", lambda m: M.greedy_policy(np.zeros((2, 2)), tol=-1), "tol"),
    ("greedy_policy nan tol", lambda m: M.greedy_policy(np.zeros((2, 2)), tol=float("nan")), "tol"),
    ("greedy_policy empty Q", lambda m: M.greedy_policy(np.zeros((2, 0))), "Q must have at least"),
    ("sample_batch float start_state", lambda m: M.sample_batch(m, _PI, 5, 3, start_state=1.5), "start_state"),
    ("sample_batch float 1.0 start_state", lambda m: M.sample_batch(m, _PI, 5, 3, start_state=1.0), "start_state"),
    ("sample_batch bool start_state", lambda m: M.sample_batch(m, _PI, 5, 3, start_state=True), "start_state"),
    ("sample_batch negative start_state", lambda m: M.sample_batch(m, _PI, 5, 3, start_state=-1), "start_state"),
    (
        "sample_batch float start_action",
        lambda m: M.sample_batch(m, _PI, 5, 3, start_state=0, start_action=0.5),
        "start_action",
    ),
    ("sample_batch bad seed", lambda m: M.sample_batch(m, _PI, 5, 3, seed=1.5), "seed"),
    ("sample_batch n_episodes", lambda m: M.sample_batch(m, _PI, 0, 3), "n_episodes"),
    ("monte_carlo_returns float start", lambda m: M.monte_carlo_returns(m, _PI, 5, 3, start_state=0.5), "start_state"),
    ("sample_trajectory bad rng", lambda m: M.sample_trajectory(m, _PI, 3, rng="x"), "rng"),
    ("sample_trajectory horizon", lambda m: M.sample_trajectory(m, _PI, 2.0), "horizon"),
    ("random_mdp float seed", lambda m: M.random_mdp(2, 2, seed=0.5), "seed"),
    ("random_mdp negative seed", lambda m: M.random_mdp(2, 2, seed=-1), "seed"),
    ("random_mdp n_actions", lambda m: M.random_mdp(2, 0), "n_actions"),
    ("random_policy concentration inf", lambda m: M.random_policy(2, 2, concentration=float("inf")), "concentration"),
    ("random_policy concentration 0", lambda m: M.random_policy(2, 2, concentration=0), "concentration"),
    ("uniform_policy not an MDP", lambda m: M.uniform_policy("mdp"), "mdp must be a TabularMDP"),
    ("value_function not an MDP", lambda m: M.value_function(None, _PI), "mdp must be a TabularMDP"),
    ("value_function pi shape", lambda m: M.value_function(m, np.full((3, 3), 1 / 3)), "pi must have shape"),
    ("value_function pi nan", lambda m: M.value_function(m, np.full((3, 2), np.nan)), "pi contains NaN"),
    ("q_function pi not normalised", lambda m: M.q_function(m, np.full((3, 2), 0.4)), "pi must sum to 1"),
    ("visitation pi negative", lambda m: M.visitation(m, np.tile([1.5, -0.5], (3, 1))), "negative probability"),
    ("expected_return pi", lambda m: M.expected_return(m, np.ones(3)), "pi must have shape"),
    ("bellman_expectation_backup V", lambda m: M.bellman_expectation_backup(m, _PI, np.zeros(2)), "V must have shape"),
    ("bellman_optimality_backup V nan", lambda m: M.bellman_optimality_backup(m, [np.nan] * 3), "V contains NaN"),
    ("bellman_optimality_backup mdp", lambda m: M.bellman_optimality_backup(1, np.zeros(3)), "mdp must be"),
    ("policy_iteration max_iters", lambda m: M.policy_iteration(m, max_iters=0), "max_iters"),
    ("policy_iteration pi0", lambda m: M.policy_iteration(m, pi0=np.ones((3, 2))), "pi must sum to 1"),
    ("value_iteration tol inf", lambda m: M.value_iteration(m, tol=float("inf")), "tol"),
    ("value_iteration tol negative", lambda m: M.value_iteration(m, tol=-1.0), "tol"),
    ("river_swim gamma", lambda m: M.river_swim(4, gamma=1.0), "gamma"),
    ("river_swim n_states", lambda m: M.river_swim(1), "n_states"),
    ("monte_carlo_q n_rollouts", lambda m: M.monte_carlo_q(m, _PI, 1, 10), "n_rollouts"),
    ("monte_carlo_q horizon", lambda m: M.monte_carlo_q(m, _PI, 10, 0), "horizon"),
    ("monte_carlo_v seed", lambda m: M.monte_carlo_v(m, _PI, 10, 10, seed="a"), "seed"),
    ("monte_carlo_visitation pi", lambda m: M.monte_carlo_visitation(m, np.ones((3, 1)), 10, 10), "pi must have"),
    (
        "monte_carlo_disagreement shape",
        lambda m: M.monte_carlo_disagreement(np.zeros(2), M.monte_carlo_v(m, _PI, 10, 10, seed=0)),
        "candidate must have shape",
    ),
    ("monte_carlo_disagreement estimate", lambda m: M.monte_carlo_disagreement(np.zeros(3), np.zeros(3)), "estimate"),
    (
        "monte_carlo_disagreement n_se",
        lambda m: M.monte_carlo_disagreement(np.zeros(3), M.monte_carlo_v(m, _PI, 10, 10, seed=0), n_se=0),
        "n_se",
    ),
    ("neumann_value tol", lambda m: M.neumann_value(m, _PI, tol=0), "tol"),
    ("neumann_q max_terms", lambda m: M.neumann_q(m, _PI, max_terms=0), "max_terms"),
    ("bellman_expectation_gaps Q", lambda m: M.bellman_expectation_gaps(m, _PI, np.zeros(3), np.zeros(3)), "Q must"),
    (
        "symbolic_value_mismatch shape",
        lambda m: M.symbolic_value_mismatch(lambda P, r, g: r.T),
        "candidate must return a 2x1",
    ),
]


@pytest.mark.parametrize("call, message", [(c, msg) for _, c, msg in BAD_INPUTS], ids=[n for n, _, _ in BAD_INPUTS])
def test_public_functions_refuse_bad_input(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(_chain())


def test_float32_probabilities_are_accepted_within_float32_precision():
    rng = np.random.default_rng(0)
    pi32 = rng.dirichlet(np.ones(7), size=50).astype(np.float32)
    assert np.any(np.abs(pi32.astype(np.float64).sum(axis=1) - 1) > 1e-8)  # the case refused before
    m = M.random_mdp(50, 7, seed=0)
    assert M.check_policy(m, pi32).dtype == np.float64
    P32 = m.P.astype(np.float32)
    M.TabularMDP(P32, m.R, m.gamma, m.mu.astype(np.float32))
    # but a float32 row that is off by much more than float32 rounding is refused,
    # with enough digits to see why
    bad = pi32.copy()
    bad[3, 0] += 1e-4
    with pytest.raises(ValueError, match=r"pi must sum to 1 .*tolerance.*sums to 1\.0000999.*off by \+0\.0001") as info:
        M.check_policy(m, bad)
    assert "at index (3,)" in str(info.value)


def test_float64_probabilities_keep_the_tight_tolerance():
    m = M.random_mdp(2, 2, seed=0)
    with pytest.raises(ValueError, match=r"sums to 1\.0000001 \(off by \+1e-07\)"):
        M.check_policy(m, np.array([[0.5, 0.5 + 1e-7], [0.5, 0.5]]))
