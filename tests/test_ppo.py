"""Tests of companion.ppo."""

import numpy as np
import pytest
import torch

from companion import ppo


def test_clipped_surrogate_six_cases_by_hand():
    r = torch.tensor([0.5, 1.0, 1.5, 0.5, 1.0, 1.5], requires_grad=True)
    A = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    out = ppo.clipped_surrogate(r, A, 0.2)
    assert torch.allclose(out, torch.tensor([0.5, 1.0, 1.2, -0.8, -1.0, -1.5]))
    out.sum().backward()
    assert torch.equal(r.grad, torch.tensor([1.0, 1.0, 0.0, 0.0, -1.0, -1.0]))


def test_clipped_surrogate_is_pessimistic_and_equal_near_one():
    gen = torch.Generator().manual_seed(0)
    r = torch.rand(1000, generator=gen) * 3
    A = torch.randn(1000, generator=gen)
    out = ppo.clipped_surrogate(r, A, 0.1)
    assert torch.all(out <= r * A + 1e-7)
    inside = (r - 1).abs() <= 0.1
    assert torch.allclose(out[inside], (r * A)[inside])


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.ones(3), torch.ones(3), 0.2), "torch tensors"),
        ((torch.ones(3), torch.ones(2), 0.2), "same shape"),
        ((torch.ones(3), torch.ones(3), 0.0), "clip_eps must be positive"),
        ((torch.tensor([1.0, float("nan")]), torch.ones(2), 0.2), "finite"),
        ((torch.tensor([-1.0]), torch.ones(1), 0.2), "non-negative"),
    ],
)
def test_clipped_surrogate_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        ppo.clipped_surrogate(*args)


def test_gaussian_agent_matches_torch_distributions():
    import gymnasium as gym

    agent = ppo.Agent(3, gym.spaces.Box(-2.0, 2.0, (2,)), ppo.PPOConfig(log_std_init=-0.5))
    obs, actions = torch.randn(7, 3), torch.randn(7, 2)
    logp, ent = agent.log_prob_entropy(obs, actions)
    ref = agent.distribution(obs)
    assert torch.allclose(logp, ref.log_prob(actions).sum(-1), atol=1e-6)
    assert torch.allclose(ent, ref.entropy().sum(-1), atol=1e-6)
    a, lp = agent.sample(obs, torch.Generator().manual_seed(0))
    assert torch.allclose(lp, ref.log_prob(a).sum(-1), atol=1e-5)


def test_categorical_agent_matches_torch_distributions():
    import gymnasium as gym

    agent = ppo.Agent(4, gym.spaces.Discrete(3), ppo.PPOConfig())
    obs = torch.randn(6, 4)
    actions = torch.randint(0, 3, (6,))
    logp, ent = agent.log_prob_entropy(obs, actions)
    ref = agent.distribution(obs)
    assert torch.allclose(logp, ref.log_prob(actions), atol=1e-6)
    assert torch.allclose(ent, ref.entropy(), atol=1e-6)
    # orthogonal init with gain 0.01 on the policy head: the initial policy is nearly uniform
    assert torch.allclose(ref.probs, torch.full((6, 3), 1 / 3), atol=0.02)


def test_train_ppo_refuses_bad_config():
    with pytest.raises(ValueError, match="divisible"):
        ppo.train_ppo("CartPole-v1", ppo.PPOConfig(num_envs=3, n_steps=5, n_minibatches=4), progress=False)
    with pytest.raises(ValueError, match="clip_eps"):
        ppo.train_ppo("CartPole-v1", ppo.PPOConfig(clip_eps=0.0), progress=False)
    with pytest.raises(ValueError, match="n_epochs"):
        ppo.train_ppo("CartPole-v1", ppo.PPOConfig(n_epochs=0), progress=False)


def test_train_ppo_history_and_callback_stop():
    calls = []

    def callback(agent, steps):
        calls.append(steps)
        return len(calls) == 2

    _, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=4096), seed=0, progress=False, callback=callback)
    assert len(calls) == 2 and len(h.env_steps) == 2 and h.env_steps == calls
    assert all(k >= 0 for k in h.approx_kl) and all(0 <= c <= 1 for c in h.clip_fraction)
    assert len(h.episode_returns) == len(h.episode_steps) > 0


@pytest.mark.slow
def test_train_ppo_solves_cartpole():
    agent, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=30_720), seed=0, progress=False)
    with torch.no_grad():
        score = ppo.evaluate_policy(lambda o: agent.greedy(torch.as_tensor(o, dtype=torch.float32)).numpy(),
                                    "CartPole-v1")
    assert score > 400
