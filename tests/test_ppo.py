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


@pytest.mark.parametrize(
    "field, value",
    [
        ("total_timesteps", 0),
        ("total_timesteps", 511),  # less than one rollout of 8 x 64: would silently train 512
        ("total_timesteps", 1.5e4),
        ("num_envs", 0),
        ("n_steps", 0),
        ("n_steps", -3),
        ("n_epochs", 0),
        ("n_minibatches", 0),
        ("n_minibatches", 3),  # does not divide 512
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("learning_rate", float("nan")),
        ("adam_eps", 0.0),
        ("gamma", 1.5),
        ("gamma", -0.1),
        ("gae_lambda", 1.01),
        ("clip_eps", 0.0),
        ("clip_eps", float("inf")),
        ("vf_coef", -0.5),
        ("vf_coef", float("nan")),
        ("ent_coef", -0.01),
        ("max_grad_norm", 0.0),
        ("max_grad_norm", -0.5),  # would flip the gradient: PPO would ascend its loss
        ("max_grad_norm", float("nan")),
        ("target_kl", 0.0),
        ("target_kl", -0.01),
        ("hidden", (64, 0)),
        ("hidden", ()),
        ("hidden", [64, 64]),
        ("log_std_init", float("inf")),
        ("anneal_lr", 1),
        ("clip", "yes"),
        ("clip_grad_separately", None),
        ("device", 0),
    ],
)
def test_ppo_config_refuses_bad_fields(field, value):
    with pytest.raises(ValueError, match=field):
        ppo.PPOConfig(**{field: value})


def test_ppo_config_accepts_edge_values():
    ppo.PPOConfig(max_grad_norm=float("inf"), gamma=1.0, gae_lambda=0.0, vf_coef=0.0,
                  target_kl=0.01, total_timesteps=512)


def test_train_ppo_refuses_a_non_config():
    with pytest.raises(ValueError, match="config"):
        ppo.train_ppo("CartPole-v1", {"n_epochs": 1}, progress=False)


def test_clip_grad_separately_records_the_actor_scale():
    cfg = dict(total_timesteps=1024)
    _, joint = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(**cfg), seed=0, progress=False)
    _, sep = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(clip_grad_separately=True, **cfg), seed=0,
                           progress=False)
    for h in (joint, sep):
        assert all(0 <= f <= 1 for f in h.grad_clip_fraction)
        assert all(0 < s <= 1 for s in h.actor_grad_scale)
    # the critic's gradient dominates the joint norm at the start: the joint clip scales the actor more
    assert np.mean(joint.actor_grad_scale) < np.mean(sep.actor_grad_scale)


def test_train_ppo_history_and_callback_stop():
    calls = []

    def callback(agent, steps):
        calls.append(steps)
        return len(calls) == 2

    _, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=4096), seed=0, progress=False, callback=callback)
    assert len(calls) == 2 and len(h.env_steps) == 2 and h.env_steps == calls
    assert all(k >= 0 for k in h.approx_kl) and all(0 <= c <= 1 for c in h.clip_fraction)
    assert [len(t) for t in h.minibatch_kl] == [24, 24]  # 6 epochs x 4 minibatches
    assert len(h.episode_returns) == len(h.episode_steps) > 0


@pytest.mark.slow
def test_train_ppo_solves_cartpole_over_seeds():
    """Five seeds; the median greedy score must be high, whatever torch's thread count.

    The thread count changes the order of floating-point sums, hence the trajectory of a
    seed: a single seed can fail at one thread count and pass at another (measured: with
    20,480 steps, seeds 0-4 scored 500, 500, 500, 290, 500 with one thread and
    500, 500, 151, 500, 500 with two). The median of five is a property of the learner.
    This test runs with the thread count of the environment it is run in.
    """
    scores = []
    for seed in range(5):
        agent, _ = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=20_480), seed=seed,
                                 progress=False)
        with torch.no_grad():
            scores.append(ppo.evaluate_policy(
                lambda o: agent.greedy(torch.as_tensor(o, dtype=torch.float32)).numpy(), "CartPole-v1"))
    assert np.median(scores) > 400, scores
