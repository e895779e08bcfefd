"""Tests of companion.pg."""

import numpy as np
import pytest
import torch

from companion import mdp as M
from companion import pg


def test_reward_to_go_by_hand_and_batched():
    assert pg.reward_to_go([1.0, 2.0, 3.0]) == pytest.approx([6.0, 5.0, 3.0])
    assert pg.reward_to_go([0.0, 0.0, 1.0], 0.5) == pytest.approx([0.25, 0.5, 1.0])
    r = np.random.default_rng(0).normal(size=(7, 3))
    batched = pg.reward_to_go(r, 0.9)
    for n in range(3):
        assert np.allclose(batched[:, n], pg.reward_to_go(r[:, n], 0.9))
    assert pg.reward_to_go(np.zeros(0)).shape == (0,)


def test_reward_to_go_matches_definition_on_long_input():
    r = np.random.default_rng(1).normal(size=300)
    want = np.array([np.sum(0.99 ** np.arange(300 - t) * r[t:]) for t in range(300)])
    assert np.allclose(pg.reward_to_go(r, 0.99), want)


def test_reward_to_go_refuses_bad_input():
    with pytest.raises(ValueError, match="gamma"):
        pg.reward_to_go([1.0], 1.5)
    with pytest.raises(ValueError, match="shape"):
        pg.reward_to_go(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        pg.reward_to_go([1.0, np.nan])


def test_softmax_policy_is_stable_and_matches_torch():
    theta = np.array([[800.0, -800.0, 0.0], [0.1, 0.2, 0.3]])
    pi = pg.softmax_policy(theta)
    assert np.allclose(pi.sum(1), 1) and np.all(np.isfinite(pi))
    assert np.allclose(pi, torch.softmax(torch.tensor(theta), 1).numpy())
    with pytest.raises(ValueError, match="theta must have 2 dimension"):
        pg.softmax_policy(np.zeros(3))


def test_score_by_hand_and_against_autograd():
    theta = np.zeros((2, 2))
    assert np.allclose(pg.score(theta, 1, 0), [[0, 0], [0.5, -0.5]])
    theta = np.random.default_rng(2).normal(size=(3, 4))
    t = torch.tensor(theta, requires_grad=True)
    torch.log_softmax(t, 1)[2, 1].backward()
    assert np.allclose(pg.score(theta, 2, 1), t.grad.numpy())
    with pytest.raises(ValueError, match="state, action"):
        pg.score(theta, 3, 0)


def test_exact_gradient_matches_autograd_and_finite_differences(small_mdp):
    theta = np.random.default_rng(3).normal(size=(small_mdp.n_states, small_mdp.n_actions))
    t = torch.tensor(theta, requires_grad=True)
    pg.finite_horizon_return(small_mdp, torch.softmax(t, 1), 500).backward()
    g = pg.exact_gradient(small_mdp, theta)
    assert np.allclose(g, t.grad.numpy(), atol=1e-9)
    idx, eps = (1, 2), 1e-6
    d = np.zeros_like(theta)
    d[idx] = eps
    fd = (M.expected_return(small_mdp, pg.softmax_policy(theta + d))
          - M.expected_return(small_mdp, pg.softmax_policy(theta - d))) / (2 * eps)
    assert g[idx] == pytest.approx(fd, abs=1e-7)
    with pytest.raises(ValueError, match="theta must have shape"):
        pg.exact_gradient(small_mdp, np.zeros((2, 2)))


def test_finite_horizon_return_numpy_equals_enumeration():
    m = M.random_mdp(2, 2, gamma=0.8, seed=4)
    pi = M.random_policy(2, 2, seed=5)
    s, a, p = pg.enumerate_trajectories(m, pi, 3)
    assert p.sum() == pytest.approx(1.0) and s.shape == (64, 3)
    returns = (m.R[s, a] * 0.8 ** np.arange(3)).sum(1)
    assert float(pg.finite_horizon_return(m, pi, 3)) == pytest.approx(p @ returns)
    with pytest.raises(ValueError, match="too many"):
        pg.enumerate_trajectories(M.random_mdp(10, 10, seed=0), M.random_policy(10, 10), 4)


@pytest.mark.parametrize("estimator", ["full_return", "reward_to_go"])
def test_reinforce_gradient_is_unbiased_by_enumeration(estimator):
    m = M.random_mdp(2, 2, gamma=0.9, seed=6)
    theta = np.random.default_rng(7).normal(size=(2, 2))
    H = 3
    s, a, p = pg.enumerate_trajectories(m, pg.softmax_policy(theta), H)
    g = np.stack([pg.reinforce_gradient(theta, si, ai, m.R[si, ai], 0.9, estimator, baseline=np.ones(H))
                  for si, ai in zip(s, a)])
    t = torch.tensor(theta, requires_grad=True)
    pg.finite_horizon_return(m, torch.softmax(t, 1), H).backward()
    assert np.allclose(np.einsum("n,nsa->sa", p, g), t.grad.numpy(), atol=1e-12)


def test_reinforce_gradient_by_hand():
    # one step, two actions, theta = 0: score of action 0 in state 0 is (0.5, -0.5); reward 2
    g = pg.reinforce_gradient(np.zeros((1, 2)), [0], [0], [2.0])
    assert np.allclose(g, [[1.0, -1.0]])
    g = pg.reinforce_gradient(np.zeros((1, 2)), [0], [0], [2.0], baseline=[2.0])
    assert np.allclose(g, 0.0)


def test_reinforce_gradient_refuses_bad_input():
    theta = np.zeros((2, 2))
    with pytest.raises(ValueError, match="estimator"):
        pg.reinforce_gradient(theta, [0], [0], [1.0], estimator="bogus")
    with pytest.raises(ValueError, match="states and actions must have shape"):
        pg.reinforce_gradient(theta, [0, 1], [0], [1.0])
    with pytest.raises(ValueError, match="actions in"):
        pg.reinforce_gradient(theta, [0], [5], [1.0])
    with pytest.raises(ValueError, match="baseline must have shape"):
        pg.reinforce_gradient(theta, [0], [0], [1.0], baseline=[1.0, 2.0])


def test_train_reinforce_refuses_bad_config():
    with pytest.raises(ValueError, match="estimator"):
        pg.train_reinforce(pg.ReinforceConfig(estimator="nope"), progress=False)
    with pytest.raises(ValueError, match="Discrete"):
        pg.train_reinforce(pg.ReinforceConfig(env_id="Pendulum-v1", n_epochs=1), progress=False)


@pytest.mark.slow
def test_train_reinforce_learns_cartpole():
    _, h = pg.train_reinforce(pg.ReinforceConfig(n_epochs=25, steps_per_epoch=2000), seed=0, progress=False)
    assert len(h.env_steps) == 25 and h.env_steps[-1] >= 25 * 2000
    assert np.mean(h.mean_return[-3:]) > 2 * np.mean(h.mean_return[:3])
