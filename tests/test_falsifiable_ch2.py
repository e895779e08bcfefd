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
    extra = lambda x: (
        sum(  # the score of step 0 counted twice: an extra term
            sp.diff(sp.log(pi[s, a]), x) for s, a in zip(states, actions)
        )
        + sp.diff(sp.log(pi[states[0], actions[0]]), x)
    )
    res = pg.trajectory_gradient_residuals(
        theta, pi, P, mu, states, actions, score_sum=extra
    )
    assert not all(pg.symbolic_is_zero(r) for r in res)


def test_log_derivative_residuals_pass_and_reject_missing_factor():
    # an illustration in the chapter: SymPy writes d log p as p'/p, so the right form
    # cancels for any p; the finite-difference check below is the independent one
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


# ------------------------------------- log-derivative trick by an independent difference


def _numeric_point(theta, P, mu, seed=0):
    rng = np.random.default_rng(seed)
    point = dict(zip(theta, rng.normal(size=len(theta))))
    p_symbols = sorted(
        {x for row in P for a in row for e in a for x in sp.sympify(e).free_symbols},
        key=lambda x: x.name,
    )
    point.update(zip(p_symbols, rng.uniform(0.2, 0.8, size=len(p_symbols))))
    point.update({x: 0.3 for x in sp.sympify(mu[0]).free_symbols})
    return point


def test_log_derivative_fd_gap_accepts_the_trick_and_rejects_wrong_forms():
    theta, pi, P, mu = _symbolic_mdp()
    prob = pg.symbolic_trajectory_probability(pi, P, mu, (1, 0, 1), (0, 1))
    point = _numeric_point(theta, P, mu)
    assert pg.log_derivative_fd_gap(prob, theta, point) < 1e-7
    wrong_forms = {
        "no factor p": lambda p, d: d,
        "divided by p": lambda p, d: d / p,
        "p squared": lambda p, d: p * p * d,
        "sign flipped": lambda p, d: -p * d,
    }
    for name, form in wrong_forms.items():
        assert pg.log_derivative_fd_gap(prob, theta, point, form) > 1e-2, name


def test_log_derivative_fd_gap_refuses_an_incomplete_point():
    theta, pi, P, mu = _symbolic_mdp()
    prob = pg.symbolic_trajectory_probability(pi, P, mu, (1, 0, 1), (0, 1))
    point = _numeric_point(theta, P, mu)
    point.pop(theta[0, 0])
    with pytest.raises(ValueError, match="point"):
        pg.log_derivative_fd_gap(prob, theta, point)


# ------------------------------------------------------------- softmax stability


def test_softmax_stability_gap_rejects_unstable_softmaxes():
    assert pg.softmax_stability_gap(pg.softmax_policy) < 1e-15
    wrong = {
        "naive": lambda t: np.exp(t) / np.exp(t).sum(axis=1, keepdims=True),
        "global maximum": lambda t: (
            np.exp(t - t.max()) / np.exp(t - t.max()).sum(axis=1, keepdims=True)
        ),
        "row minimum": lambda t: (
            np.exp(t - t.min(1, keepdims=True))
            / np.exp(t - t.min(1, keepdims=True)).sum(axis=1, keepdims=True)
        ),
        "columns normalised": lambda t: pg.softmax_policy(t.T).T,
        "no normalisation": lambda t: np.exp(t - t.max(1, keepdims=True)),
    }
    for name, fn in wrong.items():
        assert pg.softmax_stability_gap(fn) > 1e-3, name


# -------------------------------------------- estimators: unbiased ones and wrong versions


def _estimators(mdp, theta, H):
    g = mdp.gamma
    disc = g ** np.arange(H)
    V = pg.finite_horizon_v(mdp, pg.softmax_policy(theta), H)
    t = np.arange(H)
    score = lambda s, a, k: pg.score(theta, s[k], a[k])
    right = {
        "full return": lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, g, "full_return"
        ),
        "reward-to-go": lambda s, a, r: pg.reinforce_gradient(theta, s, a, r, g),
        "value baseline": lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, g, baseline=V[t, s]
        ),
        "constant baseline": lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, g, baseline=np.full(H, 1.7)
        ),
    }
    wrong = {
        "first-step-only score": lambda s, a, r: (disc @ r) * score(s, a, 0),
        "last-step-only score": lambda s, a, r: (disc @ r) * score(s, a, H - 1),
        "undiscounted return": lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, 1.0, "full_return"
        ),
        "reward-to-go without gamma^t": lambda s, a, r: sum(
            pg.reward_to_go(r, g)[k] * score(s, a, k) for k in range(H)
        ),
        "undiscounted reward-to-go": lambda s, a, r: sum(
            disc[k] * pg.reward_to_go(r, 1.0)[k] * score(s, a, k) for k in range(H)
        ),
        "reward-to-go shifted by one": lambda s, a, r: sum(
            disc[k] * np.append(pg.reward_to_go(r, g)[1:], 0.0)[k] * score(s, a, k)
            for k in range(H)
        ),
        "action-dependent baseline": lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, g, baseline=V[t, s] + a
        ),
        "sign flipped": lambda s, a, r: -pg.reinforce_gradient(theta, s, a, r, g),
    }
    return right, wrong


def test_estimator_gap_accepts_unbiased_and_rejects_wrong_estimators(instance):
    mdp, theta, _ = instance
    right, wrong = _estimators(mdp, theta, 3)
    for name, est in right.items():
        assert pg.estimator_gap(mdp, theta, 3, est) < 1e-12, name
    for name, est in wrong.items():
        assert pg.estimator_gap(mdp, theta, 3, est) > 1e-3, name


def test_estimator_variance_by_hand():
    # one state, two actions, theta = 0, H = 1, r(s, a) = (1, 0): the estimate is
    # (0.5, -0.5) with probability 1/2 and 0 otherwise; mean (0.25, -0.25), so the total
    # variance is 1/2 * 2 * 0.25**2 * 2 = 0.125 (0.25 if taken about 0)
    m = M.TabularMDP(np.ones((1, 2, 1)), np.array([[1.0, 0.0]]), 0.9, np.array([1.0]))
    theta = np.zeros((1, 2))
    est = lambda s, a, r: pg.reinforce_gradient(theta, s, a, r, m.gamma)
    assert np.isclose(pg.estimator_variance(m, theta, 1, est), 0.125, atol=1e-15)


def test_estimator_variance_matches_sampling(instance):
    mdp, theta, pi = instance
    H = 3
    est = lambda s, a, r: pg.reinforce_gradient(theta, s, a, r, mdp.gamma)
    exact = pg.estimator_variance(mdp, theta, H, est)
    probs, g = pg.enumerated_estimates(mdp, theta, H, est)
    rng = np.random.default_rng(3)
    idx = rng.choice(len(probs), size=200_000, p=probs / probs.sum())
    sample = g[idx]
    mc = float(((sample - sample.mean(0)) ** 2).sum(axis=(1, 2)).mean())
    assert abs(mc - exact) < 0.02 * exact


def test_variance_ranking_and_adding_the_baseline(instance):
    mdp, theta, pi = instance
    H = 4
    V = pg.finite_horizon_v(mdp, pi, H)
    t = np.arange(H)
    var = lambda b: pg.estimator_variance(
        mdp,
        theta,
        H,
        lambda s, a, r: pg.reinforce_gradient(
            theta, s, a, r, mdp.gamma, baseline=None if b is None else b(s)
        ),
    )
    none, subtract, add = var(None), var(lambda s: V[t, s]), var(lambda s: -V[t, s])
    assert add > none > subtract


# --------------------------------------------- the value baseline E[R_t | s_t] = V^(H-t)


def test_v_gap_zero_for_the_steps_left(instance):
    mdp, _, pi = instance
    assert pg.v_enumeration_gap(mdp, pi, pg.finite_horizon_v(mdp, pi, 4)) < 1e-12
    V = pg.finite_horizon_v(mdp, pi, 4)
    Q = pg.finite_horizon_q(mdp, pi, 4)
    assert np.allclose(V, (pi[None] * Q).sum(axis=2), atol=1e-13)


def test_v_gap_rejects_wrong_value_baselines(instance):
    mdp, _, pi = instance
    H = 4
    right = pg.finite_horizon_v(mdp, pi, H)
    disc = mdp.gamma ** np.arange(H)
    wrong_versions = {
        "V^(H-t+1): one step too many": pg.finite_horizon_v(mdp, pi, H + 1)[:H],
        "V^(H-t-1): one step too few": np.concatenate(
            [pg.finite_horizon_v(mdp, pi, H - 1), np.zeros((1, 3))]
        ),
        "V^(H) at every t": np.broadcast_to(right[0], right.shape),
        "gamma^-t V^(H-t)": right / disc[:, None],
        "gamma^t V^(H-t)": right * disc[:, None],
        "time reversed": right[::-1],
        "infinite-horizon V": np.broadcast_to(M.value_function(mdp, pi), right.shape),
        "undiscounted": pg.finite_horizon_v(_with_gamma(mdp, 1.0), pi, H),
    }
    for name, wrong in wrong_versions.items():
        assert pg.v_enumeration_gap(mdp, pi, wrong) > 1e-2, name


def test_value_baseline_reads_the_table_along_trajectories(instance):
    mdp, _, pi = instance
    s, _, _ = pg.enumerate_trajectories(mdp, pi, 3)
    b, J_H = pg.value_baseline(mdp, pi, s)
    V = pg.finite_horizon_v(mdp, pi, 3)
    assert b.shape == s.shape and np.allclose(b[:, 1], V[1, s[:, 1]])
    assert np.isclose(J_H, float(pg.finite_horizon_return(mdp, pi, 3)))
    with pytest.raises(ValueError, match="states"):
        pg.value_baseline(mdp, pi, s[:, 0])


# ------------------------------------------------ exact gradient (eq. pg-softmax)


def test_exact_gradient_gap_rejects_wrong_formulas(instance):
    mdp, theta, pi = instance
    assert pg.exact_gradient_gap(mdp, theta, pg.exact_gradient(mdp, theta)) < 1e-12
    rho, A = M.visitation(mdp, pi), M.advantage_function(mdp, pi)
    wrong_versions = {
        "normalised visitation": (1 - mdp.gamma) * rho[:, None] * pi * A,
        "Q in place of A": rho[:, None] * pi * M.q_function(mdp, pi),
        "no pi factor": rho[:, None] * A,
        "initial distribution in place of rho": mdp.mu[:, None] * pi * A,
        "sign flipped": -rho[:, None] * pi * A,
    }
    for name, wrong in wrong_versions.items():
        assert pg.exact_gradient_gap(mdp, theta, wrong) > 1e-3, name
