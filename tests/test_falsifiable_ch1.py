"""Each check of Chapter 1 rejects the plausible wrong versions and accepts the right one.

The chapter calls the same companion functions on the same kinds of instances.
"""

import numpy as np
import pytest
import sympy as sp

from companion import mdp as M
from companion import td as TD
from companion.stats import bootstrap_ci


def chain_mdp() -> M.TabularMDP:
    """The three-state chain of Chapter 1."""
    S, A = 3, 2
    P = np.zeros((S, A, S))
    for s in range(S):
        for a, target in ((0, max(s - 1, 0)), (1, min(s + 1, S - 1))):
            P[s, a, target] += 0.8
            P[s, a, s] += 0.2
    R = np.zeros((S, A))
    R[2, :] += 1.0
    R[:, 1] -= 0.1
    return M.TabularMDP(P, R, 0.9, np.array([1.0, 0.0, 0.0]))


PI = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])


@pytest.fixture(scope="module")
def chain():
    return chain_mdp()


@pytest.fixture(scope="module")
def q_estimate(chain):
    return M.monte_carlo_q(chain, PI, n_rollouts=10_000, horizon=200, seed=0)


def _solve(mdp, pi, gamma=None, transpose=False):
    P_pi = M.policy_transition_matrix(mdp, pi)
    g = mdp.gamma if gamma is None else gamma
    return np.linalg.solve(np.eye(mdp.n_states) - g * (P_pi.T if transpose else P_pi), M.policy_reward(mdp, pi))


def _instances():
    yield chain_mdp(), PI
    yield M.random_mdp(6, 3, gamma=0.95, seed=0), M.random_policy(6, 3, seed=0)


# ---------------------------------------------------------------- Bellman relations vs Neumann series
def test_bellman_gaps_accept_solve_and_series():
    for mdp, pi in _instances():
        for V, Q in [
            (M.value_function(mdp, pi), M.q_function(mdp, pi)),
            (M.neumann_value(mdp, pi), M.neumann_q(mdp, pi)),
        ]:
            gaps = M.bellman_expectation_gaps(mdp, pi, V, Q)
            assert max(gaps.values()) < 1e-9, gaps


@pytest.mark.parametrize(
    "wrong",
    [
        lambda m, pi: _solve(m, pi, gamma=m.gamma**2),  # gamma^2
        lambda m, pi: _solve(m, pi, transpose=True),  # transposed P_pi
        lambda m, pi: M.policy_reward(m, pi) / (1 - m.gamma),  # reward repeated forever
    ],
    ids=["gamma squared", "transposed P_pi", "r_pi / (1 - gamma)"],
)
def test_bellman_gaps_reject_wrong_value(wrong):
    for mdp, pi in _instances():
        V = wrong(mdp, pi)
        Q = mdp.R + mdp.gamma * mdp.P @ V
        gaps = M.bellman_expectation_gaps(mdp, pi, V, Q)
        assert gaps["V vs Neumann series"] > 1e-3 and gaps["bellman-v"] > 1e-3, gaps


def test_bellman_gaps_reject_q_without_discount():
    for mdp, pi in _instances():
        V = M.value_function(mdp, pi)
        gaps = M.bellman_expectation_gaps(mdp, pi, V, mdp.R + mdp.P @ V)
        assert gaps["Q vs Neumann series"] > 1e-3 and gaps["V = sum_a pi Q"] > 1e-3


def test_neumann_series_is_not_the_solve_in_disguise():
    # a one-state MDP: the series is r / (1 - gamma), computed by summation
    m = M.TabularMDP(np.ones((1, 1, 1)), np.array([[2.0]]), 0.75, np.array([1.0]))
    assert M.neumann_value(m, np.ones((1, 1))) == pytest.approx([8.0], abs=1e-12)
    assert M.neumann_q(m, np.ones((1, 1)))[0, 0] == pytest.approx(8.0, abs=1e-12)


def test_monte_carlo_q_accepts_exact_and_rejects_wrong(chain, q_estimate):
    assert M.monte_carlo_disagreement(M.q_function(chain, PI), q_estimate) <= 1.0
    for V in (_solve(chain, PI, gamma=chain.gamma**2), _solve(chain, PI, transpose=True)):
        wrong_Q = chain.R + chain.gamma * chain.P @ V
        assert M.monte_carlo_disagreement(wrong_Q, q_estimate) > 1.0


def test_symbolic_neumann_accepts_solve_and_rejects_wrong_versions():
    def right(P, r, g):
        return (sp.eye(2) - g * P).LUsolve(r)

    def gamma_squared(P, r, g):
        return (sp.eye(2) - g**2 * P).LUsolve(r)

    def transposed(P, r, g):
        return (sp.eye(2) - g * P.T).LUsolve(r)

    assert all(d == 0 for d in M.symbolic_value_mismatch(right))
    for wrong in (gamma_squared, transposed):
        assert any(d != 0 for d in M.symbolic_value_mismatch(wrong))


# ---------------------------------------------------------------- expected TD residual = advantage
def _series_advantage(mdp, pi):
    return M.neumann_q(mdp, pi) - M.neumann_value(mdp, pi)[:, None]


def test_td_lemma_accepts_sampled_right_residual(chain):
    V = M.value_function(chain, PI)
    est = TD.sampled_td_residual(chain, V, 20_000, seed=0)
    assert M.monte_carlo_disagreement(_series_advantage(chain, PI), est) <= 1.0


@pytest.mark.parametrize(
    "wrong",
    [
        lambda r, v, v_next, g: r + v_next - v,  # no discount
        lambda r, v, v_next, g: r + g * v - v,  # V(s) for V(s')
        lambda r, v, v_next, g: -(r + g * v_next - v),  # sign flip
        lambda r, v, v_next, g: r + g * v_next,  # Q instead of A
        lambda r, v, v_next, g: r + g**2 * v_next - v,  # gamma squared
    ],
    ids=["no gamma", "V(s) for V(s')", "sign flip", "Q not A", "gamma squared"],
)
def test_td_lemma_rejects_wrong_sampled_residuals(chain, wrong):
    V = M.value_function(chain, PI)
    est = TD.sampled_td_residual(chain, V, 20_000, seed=0, residual=wrong)
    assert M.monte_carlo_disagreement(_series_advantage(chain, PI), est) > 1.0


# ---------------------------------------------------------------- discounted visitation
def test_visitation_monte_carlo_accepts_right_and_rejects_wrong(chain):
    est = M.monte_carlo_visitation(chain, PI, n_rollouts=20_000, horizon=200, seed=2)
    rho = M.visitation(chain, PI)
    assert M.monte_carlo_disagreement(rho, est) <= 1.0
    P_pi = M.policy_transition_matrix(chain, PI)
    I = np.eye(3)
    wrong = {
        "not transposed": np.linalg.solve(I - chain.gamma * P_pi, chain.mu),
        "normalised (d_pi)": (1 - chain.gamma) * rho,
        "stationary-like, gamma^2": np.linalg.solve((I - chain.gamma**2 * P_pi).T, chain.mu),
    }
    for name, w in wrong.items():
        assert M.monte_carlo_disagreement(w, est) > 1.0, name


def test_objective_two_ways_and_wrong(chain):
    rho, r_pi = M.visitation(chain, PI), M.policy_reward(chain, PI)
    J = M.expected_return(chain, PI)
    assert rho @ r_pi == pytest.approx(J, abs=1e-12)
    d_pi = (1 - chain.gamma) * rho
    assert abs(d_pi @ r_pi - J) > 0.1  # forgetting the 1/(1 - gamma) of d_pi is caught


# ---------------------------------------------------------------- TD schemes
@pytest.mark.parametrize("sampling", ["trajectory", "random_states"])
def test_both_td_schemes_converge_to_v_pi(chain, sampling):
    V = M.value_function(chain, PI)
    runs = TD.td0_runs(chain, PI, lambda n: n**-0.7, 30_000, 5, sampling=sampling, seed=0)
    assert np.abs(runs[-1] - V).max(axis=1).mean() < 0.1


@pytest.mark.parametrize("wrong_gamma", [0.0, 0.81], ids=["no discount (r_pi)", "gamma squared"])
def test_random_states_would_reject_a_wrong_target(chain, wrong_gamma):
    # the chapter's check compares with V_pi; the value under a wrong discount is rejected
    V = M.value_function(chain, PI)
    wrong = M.TabularMDP(chain.P, chain.R, wrong_gamma, chain.mu)
    other = M.value_function(wrong, PI)
    # the chapter's run: 10 seeds, 100,000 updates, bound 0.05 on the 95% interval
    runs = TD.td0_runs(chain, PI, lambda n: n**-0.7, 100_000, 10, sampling="random_states", seed=1)
    right = bootstrap_ci(np.abs(runs[-1] - V).max(axis=1))
    wrong = bootstrap_ci(np.abs(runs[-1] - other).max(axis=1))
    assert right.high < 0.05 and wrong.low > 0.05


PHI = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def test_linear_td_fixed_point_tabular_and_shared_feature(chain):
    V = M.value_function(chain, PI)
    d_stat = TD.stationary_distribution(chain, PI)
    assert d_stat == pytest.approx([0.17475728, 0.4368932, 0.38834951], abs=1e-7)
    uniform = np.full(3, 1 / 3)
    for law in (d_stat, uniform):
        assert np.allclose(TD.linear_td_fixed_point(chain, PI, np.eye(3), law), V, atol=1e-10)
    a = TD.linear_td_fixed_point(chain, PI, PHI, d_stat)
    b = TD.linear_td_fixed_point(chain, PI, PHI, uniform)
    assert np.abs(a - b).max() > 0.5


@pytest.mark.parametrize("law", ["stationary", "uniform"])
def test_projected_bellman_gap_accepts_td_fixed_point_rejects_projection(chain, law):
    d = TD.stationary_distribution(chain, PI) if law == "stationary" else np.full(3, 1 / 3)
    fixed = TD.linear_td_fixed_point(chain, PI, PHI, d)
    assert TD.projected_bellman_gap(chain, PI, PHI, d, fixed) < 1e-10
    # the misstatement "TD converges to the projection of V_pi"
    projected = TD.weighted_projection(M.value_function(chain, PI), PHI, d)
    assert TD.projected_bellman_gap(chain, PI, PHI, d, projected) > 0.05
    # the normalised discounted visitation is the wrong weighting for on-trajectory TD
    if law == "stationary":
        d_disc = (1 - chain.gamma) * M.visitation(chain, PI)
        wrong = TD.linear_td_fixed_point(chain, PI, PHI, d_disc)
        assert TD.projected_bellman_gap(chain, PI, PHI, d, wrong) > 0.05


def test_sampled_linear_td_lands_on_its_fixed_point_not_the_projection(chain):
    d_stat = TD.stationary_distribution(chain, PI)
    fixed = TD.linear_td_fixed_point(chain, PI, PHI, d_stat)
    projected = TD.weighted_projection(M.value_function(chain, PI), PHI, d_stat)
    mean = TD.linear_td_runs(chain, PI, PHI, 30_000, 20, seed=0).mean(axis=0)
    assert np.abs(mean - fixed).max() < 0.05
    assert np.abs(mean - projected).max() > 0.05


def test_weighted_projection_is_least_squares():
    Phi = np.array([[1.0], [1.0]])
    # weighted mean of the values
    assert TD.weighted_projection([0.0, 4.0], Phi, [0.75, 0.25]) == pytest.approx([1.0, 1.0])


# ---------------------------------------------------------------- sampler, reward averaging
def _wrong_action_row_trajectory(mdp, pi, horizon, seed):
    """A sampler bug: the next state is drawn from the row of the other action."""
    rng = np.random.default_rng(seed)
    s, states, actions = 0, [0], []
    for _ in range(horizon):
        a = rng.choice(mdp.n_actions, p=pi[s])
        s = rng.choice(mdp.n_states, p=mdp.P[s, 1 - a])
        actions.append(a)
        states.append(s)
    return np.array(states), np.array(actions)


def _wrong_axis_trajectory(mdp, pi, horizon, seed):
    """A sampler bug: the table read along the first axis, P[:, a, s] (renormalised)."""
    rng = np.random.default_rng(seed)
    s, states, actions = 0, [0], []
    for _ in range(horizon):
        a = rng.choice(mdp.n_actions, p=pi[s])
        column = mdp.P[:, a, s]
        s = rng.choice(mdp.n_states, p=column / column.sum())
        actions.append(a)
        states.append(s)
    return np.array(states), np.array(actions)


def test_transition_frequencies_accept_sampler_and_reject_buggy_ones(chain):
    states, actions, _ = M.sample_trajectory(chain, PI, horizon=50_000, rng=0)
    assert M.transition_frequency_disagreement(chain, states, actions) <= 1.0
    for buggy in (_wrong_action_row_trajectory, _wrong_axis_trajectory):
        states, actions = buggy(chain, PI, 20_000, 0)
        assert M.transition_frequency_disagreement(chain, states, actions) > 1.0, buggy.__name__


def test_reward_average_accepts_right_and_rejects_wrong_weights(chain):
    R3 = np.random.default_rng(0).normal(size=(3, 2, 3))
    exact = M.enumerated_discounted_reward(chain, PI, R3, 4)
    assert M.enumerated_discounted_reward(chain, PI, M.average_reward(chain.P, R3), 4) == pytest.approx(
        exact, abs=1e-12
    )
    wrong = {
        "uniform weights": R3.mean(axis=2),
        "over s, not s'": np.einsum("sat,sat->ta", chain.P, R3),
    }
    for name, r in wrong.items():
        assert abs(M.enumerated_discounted_reward(chain, PI, r, 4) - exact) > 1e-3, name


# ---------------------------------------------------------------- optimality
def test_optimality_violations_accept_policy_iteration():
    for mdp, _ in _instances():
        pi_star, V_star = M.policy_iteration(mdp)
        assert max(M.optimality_violations(mdp, V_star, pi_star, n_random=50).values()) < 1e-9


def test_optimality_violations_reject_mean_operator_and_greedy_on_r():
    for mdp, _ in _instances():
        # fixed point of T with a mean over actions: the value of the uniform policy
        uniform = np.full((mdp.n_states, mdp.n_actions), 1 / mdp.n_actions)
        V_mean = M.value_function(mdp, uniform)
        assert max(M.optimality_violations(mdp, V_mean, uniform, n_random=50).values()) > 1e-3
    # greedy with respect to r alone (on the chain: left in the first state, which never
    # reaches the paying right end; on the random MDP it happens to be optimal)
    chain = chain_mdp()
    _, V_star = M.policy_iteration(chain)
    greedy_r = M.greedy_policy(chain.R)
    assert M.optimality_violations(chain, V_star, greedy_r, n_random=50)["pi attains V"] > 1e-3


# ---------------------------------------------------------------- Monte Carlo Q: first action forced
def test_monte_carlo_rejects_rollouts_without_forced_first_action(chain):
    Q = M.q_function(chain, PI)
    kwargs = dict(n_episodes=20_000, horizon=150, seed=1)
    truncation = chain.gamma**150 * np.abs(chain.R).max() / (1 - chain.gamma)
    for forced, ok in ((dict(start_action=1), True), ({}, False)):
        G = M.monte_carlo_returns(chain, PI, start_state=1, **forced, **kwargs)
        tol = 4 * G.std(ddof=1) / np.sqrt(len(G)) + truncation
        assert (abs(G.mean() - Q[1, 1]) < tol) == ok


def test_neumann_value_rejects_transposed_policy_matrix(monkeypatch):
    """value_function with a transposed P_pi is caught: the series does not share it."""
    original = M.policy_transition_matrix
    for mdp, pi in _instances():
        monkeypatch.setattr(M, "policy_transition_matrix", lambda m, p: original(m, p).T)
        V = M.value_function(mdp, pi)
        monkeypatch.undo()
        Q = mdp.R + mdp.gamma * mdp.P @ V
        assert M.bellman_expectation_gaps(mdp, pi, V, Q)["V vs Neumann series"] > 1e-3
