"""Each check of Chapter 2 rejects the wrong versions it is meant to reject.

Every test calls the same companion function the chapter calls, once with the right
version (which passes) and once with each plausible wrong version (which must fail).
"""

import itertools

import numpy as np
import pytest
import sympy as sp
import torch

from companion import mdp as M
from companion import pg

# --------------------------------------------------------------- symbolic P(tau), horizon 2


def _symbolic_mdp():
    theta, pi = pg.symbolic_softmax(2, 2)
    p = sp.symbols("p_00 p_01 p_10 p_11", positive=True)
    m = sp.Symbol("m", positive=True)
    P = [[[1 - p[2 * s + a], p[2 * s + a]] for a in range(2)] for s in range(2)]
    return theta, pi, P, [m, 1 - m]


def _trajectories(T=2):
    for states in itertools.product(range(2), repeat=T + 1):
        for actions in itertools.product(range(2), repeat=T):
            yield states, actions


def test_trajectory_gradient_check_passes_for_every_trajectory():
    theta, pi, P, mu = _symbolic_mdp()
    for states, actions in _trajectories():
        residuals = pg.trajectory_gradient_residuals(theta, pi, P, mu, states, actions)
        assert all(pg.symbolic_is_zero(r) for r in residuals)


def test_trajectory_gradient_check_rejects_dynamics_that_depend_on_theta():
    theta, pi, _, mu = _symbolic_mdp()
    q = 1 / (
        1 + sp.exp(-theta[0, 0])
    )  # P(s'=1 | s, a) moved by theta_00: not model-free any more
    P = [[[1 - q, q] for _ in range(2)] for _ in range(2)]
    residuals = pg.trajectory_gradient_residuals(theta, pi, P, mu, (0, 1, 1), (0, 1))
    assert not pg.symbolic_is_zero(residuals[0])


def test_trajectory_gradient_check_rejects_a_dropped_or_extra_score_term():
    theta, pi, P, mu = _symbolic_mdp()
    states, actions = (0, 0, 1), (1, 1)
    off_by_one = lambda x: sp.diff(
        sp.log(pi[states[0], actions[0]]), x
    )  # last step missing
    res = pg.trajectory_gradient_residuals(
        theta, pi, P, mu, states, actions, score_sum=off_by_one
    )
    assert not all(pg.symbolic_is_zero(r) for r in res)
    no_log = lambda x: sum(
        sp.diff(pi[s, a], x) for s, a in zip(states, actions)
    )  # grad pi, not grad log pi
    res = pg.trajectory_gradient_residuals(
        theta, pi, P, mu, states, actions, score_sum=no_log
    )
    assert not all(pg.symbolic_is_zero(r) for r in res)


def test_log_derivative_check_passes_and_rejects_missing_factor():
    theta, pi, P, mu = _symbolic_mdp()
    prob = pg.symbolic_trajectory_probability(pi, P, mu, (1, 0, 1), (0, 1))
    assert all(pg.symbolic_is_zero(r) for r in pg.log_derivative_residuals(prob, theta))
    no_factor = lambda p, x: sp.diff(sp.log(p), x)  # grad log P without the P in front
    assert not all(
        pg.symbolic_is_zero(r)
        for r in pg.log_derivative_residuals(prob, theta, no_factor)
    )
    inverted = lambda p, x: sp.diff(sp.log(p), x) / p
    assert not all(
        pg.symbolic_is_zero(r)
        for r in pg.log_derivative_residuals(prob, theta, inverted)
    )


def test_symbolic_is_zero_is_not_fooled():
    x = sp.Symbol("x", real=True)
    assert pg.symbolic_is_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1)
    assert not pg.symbolic_is_zero(sp.exp(x) / (1 + sp.exp(x)) - 1 / (1 + sp.exp(x)))


# ----------------------------------------------------- E[R_t | s_t, a_t] = Q^(H-t)(s_t, a_t)


@pytest.fixture
def instance():
    mdp = M.random_mdp(3, 2, gamma=0.9, seed=0)
    theta = np.random.default_rng(0).normal(size=(3, 2))
    return mdp, theta, pg.softmax_policy(theta)


def test_q_gap_zero_for_the_steps_left(instance):
    mdp, _, pi = instance
    assert pg.q_enumeration_gap(mdp, pi, pg.finite_horizon_q(mdp, pi, 4)) < 1e-12


def _with_gamma(mdp, gamma):
    other = M.TabularMDP(mdp.P, mdp.R, 0.5, mdp.mu)
    object.__setattr__(other, "gamma", gamma)  # gamma = 1 is fine for a finite horizon
    return other


def test_q_gap_rejects_wrong_q_tables(instance):
    mdp, _, pi = instance
    H = 4
    right = pg.finite_horizon_q(mdp, pi, H)
    wrong_versions = {
        "H - t + 1 steps left": pg.finite_horizon_q(mdp, pi, H + 1)[:H],
        "H - t - 1 steps left": np.concatenate(
            [pg.finite_horizon_q(mdp, pi, H - 1), np.zeros((1, 3, 2))]
        ),
        "time reversed": right[::-1],
        "Q^(H) at every t": np.broadcast_to(right[0], right.shape),
        "infinite-horizon Q": np.broadcast_to(M.q_function(mdp, pi), right.shape),
        "undiscounted": pg.finite_horizon_q(_with_gamma(mdp, 1.0), pi, H),
        "r(s, a) only": np.broadcast_to(mdp.R, right.shape),
    }
    for name, wrong in wrong_versions.items():
        assert pg.q_enumeration_gap(mdp, pi, wrong) > 1e-2, name


def test_q_gap_rejects_an_undiscounted_reward_to_go(instance):
    mdp, _, pi = instance
    H = 4
    cond_undiscounted = pg.conditional_reward_to_go(mdp, pi, H, gamma=1.0)
    assert pg.q_enumeration_gap(mdp, pi, np.nan_to_num(cond_undiscounted)) > 1e-2


# --------------------------------------------- dropping gamma^t: the gradient of no function


def test_true_field_is_the_gradient_of_J_H(instance):
    mdp, theta, _ = instance
    t = torch.tensor(theta, requires_grad=True)
    pg.finite_horizon_return(mdp, torch.softmax(t, 1), 4).backward()
    assert np.allclose(pg.gradient_field(mdp, theta, 4), t.grad.numpy(), atol=1e-13)


def test_dropped_field_equals_its_enumeration(instance):
    mdp, theta, pi = instance
    H = 4
    s, a, p = pg.enumerate_trajectories(mdp, pi, H)
    R_hat = pg.reward_to_go(mdp.R[s, a].T, mdp.gamma).T
    g = sum(
        p[n] * R_hat[n, t] * pg.score(theta, s[n, t], a[n, t])
        for n in range(len(p))
        for t in range(H)
    )
    assert np.allclose(
        pg.gradient_field(mdp, theta, H, drop_discount=True), g, atol=1e-12
    )
    assert not np.allclose(pg.gradient_field(mdp, theta, H), g, atol=1e-3)


def test_jacobian_asymmetry_separates_gradients_from_other_fields(instance):
    mdp, theta, _ = instance
    A = torch.tensor(np.random.default_rng(1).normal(size=(6, 6)), dtype=torch.float64)
    quadratic_grad = lambda x: ((A + A.T) @ x.reshape(-1)).reshape(
        x.shape
    )  # gradient of x'Ax
    rotation = lambda x: (A @ x.reshape(-1)).reshape(x.shape)  # A not symmetric
    assert pg.jacobian_asymmetry(quadratic_grad, theta) < 1e-14
    assert pg.jacobian_asymmetry(rotation, theta) > 0.1
    true = pg.jacobian_asymmetry(lambda x: pg.gradient_field(mdp, x, 4), theta)
    dropped = pg.jacobian_asymmetry(
        lambda x: pg.gradient_field(mdp, x, 4, drop_discount=True), theta
    )
    assert true < 1e-12 and dropped > 1e-2


def test_dropped_field_is_a_gradient_when_gamma_is_one(instance):
    mdp, theta, _ = instance
    m1 = _with_gamma(mdp, 1.0)  # J_H is still defined for a finite horizon
    assert (
        pg.jacobian_asymmetry(
            lambda x: pg.gradient_field(m1, x, 4, drop_discount=True), theta
        )
        < 1e-12
    )
