"""Tests of companion.td."""

import numpy as np
import pytest

from companion import mdp as M
from companion import td as TD
from companion.td import td0, td_residual


def test_td_residual_by_hand():
    delta = td_residual([1.0, 0.0], [2.0, 1.0], [3.0, 0.5], gamma=0.5)
    assert delta == pytest.approx([1.0 + 1.5 - 2.0, 0.25 - 1.0])


def test_td_residual_refuses_bad_input():
    with pytest.raises(ValueError, match="values must have shape"):
        td_residual([1.0, 2.0], [1.0], [1.0, 2.0], 0.9)
    with pytest.raises(ValueError, match="gamma"):
        td_residual([1.0], [1.0], [1.0], 1.5)
    with pytest.raises(ValueError, match="NaN"):
        td_residual([np.nan], [1.0], [1.0], 0.9)


def test_td0_alpha_one_on_one_state_by_hand():
    # one state, reward 1, gamma 0.5: with alpha = 1, V_{k+1} = 1 + 0.5 V_k from V_0 = 0
    m = M.TabularMDP(np.ones((1, 1, 1)), np.ones((1, 1)), 0.5, np.array([1.0]))
    V = td0(m, np.ones((1, 1)), alpha=1.0, n_steps=3, seed=0)
    assert V == pytest.approx([1.75])


def test_td0_equals_the_update_written_out(small_mdp, small_policy):
    schedule = lambda n: 1.0 / n  # noqa: E731
    states, _, rewards = M.sample_trajectory(small_mdp, small_policy, 2000, rng=5)
    V, visits = np.zeros(small_mdp.n_states), np.zeros(small_mdp.n_states)
    for s, r, s2 in zip(states[:-1], rewards, states[1:]):
        visits[s] += 1
        V[s] += schedule(visits[s]) * (r + small_mdp.gamma * V[s2] - V[s])
    assert np.allclose(td0(small_mdp, small_policy, schedule, 2000, seed=5), V, atol=1e-12)


@pytest.mark.slow
def test_td0_converges_to_exact_value(small_mdp, small_policy):
    V = td0(small_mdp, small_policy, lambda n: n**-0.7, 100_000, seed=0)
    assert np.max(np.abs(V - M.value_function(small_mdp, small_policy))) < 0.05


def test_td0_refuses_bad_input(small_mdp, small_policy):
    with pytest.raises(ValueError, match="alpha must lie in"):
        td0(small_mdp, small_policy, 1.5, 10)
    with pytest.raises(ValueError, match="alpha\\(1\\) returned"):
        td0(small_mdp, small_policy, lambda n: 0.0, 10)
    with pytest.raises(ValueError, match="n_steps"):
        td0(small_mdp, small_policy, 0.1, 0)
    with pytest.raises(ValueError, match="V0 must have shape"):
        td0(small_mdp, small_policy, 0.1, 10, V0=np.zeros(2))


# ---------------------------------------------------------------- bad input, table
_PI = np.full((4, 3), 1 / 3)

BAD_TD_INPUTS = [
    ("td0 alpha string", lambda m: td0(m, _PI, "big", 10), "alpha"),
    ("td0 alpha nan", lambda m: td0(m, _PI, float("nan"), 10), "alpha"),
    ("td0 alpha 0", lambda m: td0(m, _PI, 0.0, 10), "alpha must lie in"),
    ("td0 float n_steps", lambda m: td0(m, _PI, 0.1, 10.0), "n_steps"),
    ("td0 float seed", lambda m: td0(m, _PI, 0.1, 10, seed=0.5), "seed"),
    ("td0 V0 nan", lambda m: td0(m, _PI, 0.1, 10, V0=[np.nan] * 4), "V0 contains NaN"),
    ("td0 pi", lambda m: td0(m, np.ones((4, 3)), 0.1, 10), "pi must sum to 1"),
    ("td0 mdp", lambda m: td0("mdp", _PI, 0.1, 10), "mdp must be a TabularMDP"),
    ("td0_runs sampling", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, sampling="random"), "sampling"),
    ("td0_runs n_runs", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 0), "n_runs"),
    ("td0_runs alpha > 1", lambda m: TD.td0_runs(m, _PI, 1.5, 10, 2), "alpha must lie in"),
    ("td0_runs alpha schedule", lambda m: TD.td0_runs(m, _PI, lambda n: 2.0 + 0 * n, 10, 2), "alpha(1) returned"),
    (
        "td0_runs state_dist zero",
        lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, sampling="random_states", state_dist=[1.0, 0, 0, 0]),
        "state_dist must give every state",
    ),
    (
        "td0_runs state_dist sum",
        lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, sampling="random_states", state_dist=[0.5] * 4),
        "state_dist must sum to 1",
    ),
    (
        "td0_runs state_dist with trajectory",
        lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, state_dist=[0.25] * 4),
        "state_dist is only used",
    ),
    ("td0_runs checkpoints beyond", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, checkpoints=[5, 11]), "checkpoints"),
    ("td0_runs checkpoints float", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, checkpoints=[2.5]), "checkpoints"),
    ("td0_runs checkpoints order", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, checkpoints=[5, 3]), "checkpoints"),
    ("td0_runs seed", lambda m: TD.td0_runs(m, _PI, 0.1, 10, 2, seed=-3), "seed"),
    ("td_residual shapes", lambda m: td_residual([1.0], [1.0, 2.0], [1.0], 0.9), "values must have shape"),
    ("td_residual gamma", lambda m: td_residual([1.0], [1.0], [1.0], -0.1), "gamma"),
    ("expected_td_residual V", lambda m: TD.expected_td_residual(m, np.zeros(3)), "V must have shape"),
    ("expected_td_residual mdp", lambda m: TD.expected_td_residual(None, np.zeros(4)), "mdp must be"),
    ("sampled_td_residual n", lambda m: TD.sampled_td_residual(m, np.zeros(4), 1), "n_samples"),
    ("sampled_td_residual V", lambda m: TD.sampled_td_residual(m, np.zeros(3), 10), "V must have shape"),
    (
        "sampled_td_residual residual",
        lambda m: TD.sampled_td_residual(m, np.zeros(4), 10, residual=3),
        "residual must be callable",
    ),
    ("linear_td_runs features", lambda m: TD.linear_td_runs(m, _PI, np.eye(3), 10, 2), "features"),
    ("linear_td_runs sampling", lambda m: TD.linear_td_runs(m, _PI, np.eye(4), 10, 2, sampling="x"), "sampling"),
    ("linear_td_runs alpha0", lambda m: TD.linear_td_runs(m, _PI, np.eye(4), 10, 2, alpha0=2.0), "alpha0"),
    ("linear_td_runs power", lambda m: TD.linear_td_runs(m, _PI, np.eye(4), 10, 2, power=0.4), "power"),
    ("linear_td_runs n_steps", lambda m: TD.linear_td_runs(m, _PI, np.eye(4), 1, 2), "n_steps"),
    (
        "weighted_projection features",
        lambda m: TD.weighted_projection(np.zeros(4), np.eye(3), np.full(4, 0.25)),
        "features must have shape",
    ),
    (
        "projected_bellman_gap values",
        lambda m: TD.projected_bellman_gap(m, _PI, np.eye(4), np.full(4, 0.25), np.zeros(3)),
        "values must have shape",
    ),
    (
        "linear_td_fixed_point features",
        lambda m: TD.linear_td_fixed_point(m, _PI, np.eye(3), np.full(4, 0.25)),
        "features must have shape",
    ),
    (
        "linear_td_fixed_point state_dist",
        lambda m: TD.linear_td_fixed_point(m, _PI, np.eye(4), [1.0, 0, 0, 0]),
        "state_dist must give every state",
    ),
]


@pytest.mark.parametrize("call, message", [(c, m) for _, c, m in BAD_TD_INPUTS], ids=[n for n, _, _ in BAD_TD_INPUTS])
def test_td_functions_refuse_bad_input(small_mdp, call, message):
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        call(small_mdp)


def test_td0_runs_random_states_written_out(small_mdp, small_policy):
    """The random-state scheme of td0_runs is the loop of the chapter, draw for draw."""
    n_steps, n_runs, seed = 300, 3, 4
    got = TD.td0_runs(small_mdp, small_policy, lambda n: 1.0 / n, n_steps, n_runs, sampling="random_states", seed=seed)
    rng = np.random.default_rng(seed)
    S = small_mdp.n_states
    cum_d, cum_pi, cum_P = np.cumsum(np.full(S, 1 / S)), np.cumsum(small_policy, 1), np.cumsum(small_mdp.P, 2)
    V, visits = np.zeros((n_runs, S)), np.zeros((n_runs, S))
    u = rng.random((n_steps, 3, n_runs, 1))
    pick = lambda cum, x: min(int((x >= cum).sum()), len(cum) - 1)  # noqa: E731
    for t in range(n_steps):
        for k in range(n_runs):
            s = pick(cum_d, u[t, 0, k, 0])
            a = pick(cum_pi[s], u[t, 1, k, 0])
            s2 = pick(cum_P[s, a], u[t, 2, k, 0])
            visits[k, s] += 1
            V[k, s] += (small_mdp.R[s, a] + small_mdp.gamma * V[k, s2] - V[k, s]) / visits[k, s]
    assert np.allclose(got[-1], V, atol=1e-12)


def test_td0_runs_checkpoints_are_prefixes(small_mdp, small_policy):
    full = TD.td0_runs(small_mdp, small_policy, 0.1, 50, 2, checkpoints=[10, 50], seed=1)
    short = TD.td0_runs(small_mdp, small_policy, 0.1, 50, 2, checkpoints=[50], seed=1)
    assert np.array_equal(full[-1], short[-1])
