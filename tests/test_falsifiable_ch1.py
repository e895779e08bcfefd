"""Each check of Chapter 1 rejects the plausible wrong versions and accepts the right one.

The chapter calls the same companion functions on the same kinds of instances.
"""

import numpy as np
import pytest
import sympy as sp

from companion import mdp as M
from companion import td as TD


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


def test_monte_carlo_v_accepts_exact_and_rejects_wrong(chain):
    est = M.monte_carlo_v(chain, PI, n_rollouts=10_000, horizon=200, seed=1)
    assert M.monte_carlo_disagreement(M.value_function(chain, PI), est) <= 1.0
    assert M.monte_carlo_disagreement(_solve(chain, PI, transpose=True), est) > 1.0


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


def test_random_states_would_reject_a_wrong_target(chain):
    # the check in the chapter compares with V_pi; the value of another policy is far off
    V = M.value_function(chain, PI)
    other = M.value_function(chain, np.array([[1.0, 0.0]] * 3))
    runs = TD.td0_runs(chain, PI, lambda n: n**-0.7, 30_000, 5, sampling="random_states", seed=0)
    assert np.abs(runs[-1] - other).max(axis=1).mean() > 10 * np.abs(runs[-1] - V).max(axis=1).mean()


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
