"""Tests of companion.td."""

import numpy as np
import pytest

from companion import mdp as M
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
