"""Tests of ``companion.ppo`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from companion import ppo


def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        obs=torch.randn(n, 4, generator=g),
        actions=torch.randint(0, 2, (n,), generator=g),
        # spread-out old log-probabilities, so that some ratios fall outside [1 - eps, 1 + eps]
        logp_old=torch.log(torch.full((n,), 0.5)) + 0.4 * torch.randn(n, generator=g),
        advantages=2.0 + 3.0 * torch.randn(n, generator=g),
        returns=torch.randn(n, generator=g),
        values_old=torch.randn(n, generator=g),
    )


def reference_loss(agent, b, valid, cfg, eps):
    """The PPO loss of Chapter 5 written out from the distribution objects, sample by sample."""
    keep = [i for i in range(len(valid)) if valid[i] > 0]
    dist = agent.distribution(b["obs"])
    logp = dist.log_prob(b["actions"]).detach()
    ent = dist.entropy().detach()
    v = agent.value(b["obs"]).detach()
    adv = b["advantages"][keep].double()
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std(unbiased=False) + 1e-8)
    pg, vl, en, kl, cf = [], [], [], [], []
    for j, i in enumerate(keep):
        r = float(torch.exp(logp[i] - b["logp_old"][i]))
        a = float(adv[j])
        pg.append(
            min(r * a, float(np.clip(r, 1 - eps, 1 + eps)) * a) if cfg.clip else r * a
        )
        err = (float(v[i]) - float(b["returns"][i])) ** 2
        if cfg.clip_vloss:
            vc = float(b["values_old"][i]) + float(
                np.clip(float(v[i]) - float(b["values_old"][i]), -eps, eps)
            )
            err = max(err, (vc - float(b["returns"][i])) ** 2)
        vl.append(err)
        en.append(float(ent[i]))
        kl.append((r - 1) - np.log(r))
        cf.append(abs(r - 1) > eps)
    pg_loss, v_loss, entropy = -np.mean(pg), 0.5 * np.mean(vl), np.mean(en)
    return dict(
        loss=pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * entropy,
        policy_loss=pg_loss,
        value_loss=v_loss,
        entropy=entropy,
        approx_kl=np.mean(kl),
        clip_fraction=np.mean(cf),
    )


@pytest.mark.parametrize(
    "norm_adv, clip, clip_vloss, n_valid",
    # one valid sample: its normalised advantage would be 0 / 1e-8, so no norm_adv there
    [
        (na, c, cv, 32)
        for na in (True, False)
        for c in (True, False)
        for cv in (True, False)
    ]
    + [(False, c, cv, 1) for c in (True, False) for cv in (True, False)],
)
def test_ppo_loss_matches_the_formula(norm_adv, clip, clip_vloss, n_valid):
    torch.manual_seed(0)
    cfg = ppo.PPOConfig(
        norm_adv=norm_adv, clip=clip, clip_vloss=clip_vloss, ent_coef=0.05, vf_coef=0.7
    )
    agent = ppo.Agent(4, gym.spaces.Discrete(2), cfg)
    with torch.no_grad():  # a policy far enough from uniform that the ratios spread out
        for p in agent.actor.parameters():
            p.mul_(50.0)
    b = _batch()
    valid = torch.zeros(32)
    valid[torch.arange(32) % (32 // n_valid) == 0] = 1
    got = ppo.ppo_loss(agent, **b, valid=valid, config=cfg, clip_eps=0.2)
    ref = reference_loss(agent, b, valid, cfg, 0.2)
    if n_valid == 32 and clip:
        assert (
            0.05 < ref["clip_fraction"] < 0.95
        )  # both branches of the clip are exercised
    for term, value in ref.items():
        assert float(getattr(got, term).detach()) == pytest.approx(
            value, rel=1e-4, abs=1e-6
        ), term


def test_ppo_loss_gradient_is_that_of_the_loss():
    torch.manual_seed(1)
    cfg = ppo.PPOConfig()
    agent = ppo.Agent(4, gym.spaces.Discrete(2), cfg)
    b = _batch(seed=3)
    out = ppo.ppo_loss(agent, **b, valid=torch.ones(32), config=cfg, clip_eps=0.2)
    assert out.loss.requires_grad
    assert not out.approx_kl.requires_grad and not out.clip_fraction.requires_grad


def test_approx_kl_with_weights_is_the_weighted_mean():
    new = torch.tensor([-0.5, -1.0, -2.0])
    old = torch.tensor([-0.7, -0.9, -1.0])
    terms = torch.expm1(new - old) - (new - old)
    assert float(ppo.approx_kl(new, old)) == pytest.approx(float(terms.mean()))
    assert float(
        ppo.approx_kl(new, old, torch.tensor([0.0, 1.0, 0.0]))
    ) == pytest.approx(float(terms[1]))
    assert float(
        ppo.approx_kl(new, old, torch.tensor([1.0, 0.0, 1.0]))
    ) == pytest.approx(float(terms[[0, 2]].mean()))
    assert float(ppo.approx_kl(new, old, torch.zeros(3))) == 0.0


# ---------------------------------------------------------------- clip_gradients
def _params_with_grads(grads):
    ps = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(len(g)))
        p.grad = torch.tensor(g, dtype=torch.float32)
        ps.append(p)
    return ps


@pytest.mark.parametrize("separately", [True, False])
def test_clip_gradients_scales(separately):
    actor = _params_with_grads([[3.0, 4.0]])  # norm 5
    critic = _params_with_grads([[0.0, 12.0], [0.0, 0.0]])  # norm 12
    out = ppo.clip_gradients(actor, critic, 2.0, separately)
    assert out.actor_norm == pytest.approx(5.0)
    assert out.critic_norm == pytest.approx(12.0)
    if separately:
        sa, sc = 2.0 / (5.0 + 1e-6), 2.0 / (12.0 + 1e-6)
    else:
        sa = sc = 2.0 / (13.0 + 1e-6)
    assert out.actor_scale == pytest.approx(sa, rel=1e-7)
    assert out.critic_scale == pytest.approx(sc, rel=1e-7)
    np.testing.assert_allclose(
        actor[0].grad.numpy(), np.array([3.0, 4.0]) * sa, rtol=1e-6
    )
    np.testing.assert_allclose(
        critic[0].grad.numpy(), np.array([0.0, 12.0]) * sc, rtol=1e-6
    )


@pytest.mark.parametrize("separately", [True, False])
def test_clip_gradients_leaves_small_gradients_alone(separately):
    actor = _params_with_grads([[0.3, 0.4]])
    critic = _params_with_grads([[0.0, 0.1]])
    out = ppo.clip_gradients(actor, critic, 10.0, separately)
    assert (out.actor_scale, out.critic_scale) == (1.0, 1.0)
    np.testing.assert_array_equal(
        actor[0].grad.numpy(), np.array([0.3, 0.4], dtype=np.float32)
    )


def test_clip_gradients_without_gradients():
    critic = [torch.nn.Parameter(torch.zeros(2))]  # grad is None
    actor = _params_with_grads([[3.0, 4.0]])
    out = ppo.clip_gradients(actor, critic, 1.0, True)
    assert out.critic_norm == 0.0 and out.critic_scale == 1.0
    assert out.actor_scale == pytest.approx(1.0 / (5.0 + 1e-6), rel=1e-7)
    assert critic[0].grad is None


# ---------------------------------------------------------------- Agent
def test_agent_refuses_other_action_spaces():
    with pytest.raises(ValueError, match=r"^unsupported action space MultiBinary"):
        ppo.Agent(3, gym.spaces.MultiBinary(2), ppo.PPOConfig())


def test_orthogonal_init_gains():
    torch.manual_seed(0)
    agent = ppo.Agent(
        5, gym.spaces.Discrete(3), ppo.PPOConfig(ortho_init=True, hidden=(8,))
    )
    actor_out, critic_out = (
        agent.actor[-1].weight.detach(),
        agent.critic[-1].weight.detach(),
    )
    # orthogonal rows with norm = gain: 0.01 for the actor's output layer, 1 for the critic's
    torch.testing.assert_close(
        actor_out @ actor_out.T, 0.01**2 * torch.eye(3), atol=1e-7, rtol=0
    )
    torch.testing.assert_close(
        critic_out @ critic_out.T, torch.eye(1), atol=1e-6, rtol=0
    )
    hidden = agent.critic[0].weight.detach()
    torch.testing.assert_close(hidden.T @ hidden, 2.0 * torch.eye(5), atol=1e-5, rtol=0)
    assert float(agent.critic[-1].bias.detach().abs().sum()) == 0.0


def test_greedy_discrete_is_the_argmax():
    torch.manual_seed(0)
    agent = ppo.Agent(3, gym.spaces.Discrete(4), ppo.PPOConfig())
    obs = torch.randn(20, 3)
    with torch.no_grad():
        torch.testing.assert_close(agent.greedy(obs), agent.actor(obs).argmax(-1))


def test_greedy_continuous_is_the_clipped_mean():
    torch.manual_seed(0)
    space = gym.spaces.Box(
        low=np.array([-1.0, 0.0]), high=np.array([1.0, 0.5]), dtype=np.float64
    )
    agent = ppo.Agent(3, space, ppo.PPOConfig())
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.mul_(100.0)  # means far outside the box on both sides
        obs = torch.randn(50, 3)
        mean = agent.actor(obs)
        got = agent.greedy(obs)
    assert got.dtype == torch.float32
    assert float(mean.min()) < -1 and float(mean.max()) > 1
    expected = torch.stack(
        [mean[:, 0].clamp(-1.0, 1.0), mean[:, 1].clamp(0.0, 0.5)], dim=1
    )
    torch.testing.assert_close(got, expected)
    assert agent.low.dtype == torch.float32 and agent.high.dtype == torch.float32


# ---------------------------------------------------------------- evaluate_policy
def test_evaluate_policy_is_the_mean_return_of_single_episodes():
    def act(
        obs,
    ):  # push towards the side the pole leans to: episodes of different lengths
        return (obs[:, 2] > 0).astype(np.int64)

    n, seed = 3, 123
    got = ppo.evaluate_policy(act, "CartPole-v1", n_episodes=n, seed=seed)
    returns = []
    for i in range(n):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(int(act(obs[None])[0]))
            total += r
            done = term or trunc
        env.close()
        returns.append(total)
    assert len(set(returns)) > 1
    assert got == pytest.approx(np.mean(returns))


# ---------------------------------------------------------------- PPOConfig
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(learning_rate=True), r"^learning_rate must be a number, got True$"),
        (dict(ent_coef="0.1"), r"^ent_coef must be a number, got '0\.1'$"),
        (
            dict(target_kl=np.inf),
            r"^target_kl must be None or positive and finite, got inf$",
        ),
        (dict(vf_coef=np.inf), r"^vf_coef must be non-negative and finite, got inf$"),
        (
            dict(hidden=(True,)),
            r"^hidden must be a non-empty tuple of positive integers",
        ),
        (dict(hidden=(0,)), r"^hidden must be a non-empty tuple of positive integers"),
    ],
)
def test_config_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**kwargs)


def test_config_accepts_the_edges():
    assert ppo.PPOConfig(hidden=(1,)).hidden == (1,)
    assert ppo.PPOConfig(vf_coef=0, ent_coef=0.0).vf_coef == 0


# ---------------------------------------------------------------- clip table
def test_clip_table_names_the_failing_cases_of_max():
    def with_max(r, A, eps):
        import sympy as sp

        return sp.Max(r * A, sp.Min(sp.Max(r, 1 - eps), 1 + eps) * A)

    # max(rA, clip(r)A) is max(rA, (1-eps)A) below the interval and rA above it
    assert ppo.clip_table_mismatches(with_max) == [
        "value, A > 0, r < 1-eps",
        "gradient, A > 0, r < 1-eps",
        "not pessimistic, A > 0, r < 1-eps",
        "value, A > 0, r > 1+eps",
        "gradient, A > 0, r > 1+eps",
        "value, A < 0, r < 1-eps",
        "gradient, A < 0, r < 1-eps",
        "value, A < 0, r > 1+eps",
        "gradient, A < 0, r > 1+eps",
        "not pessimistic, A < 0, r > 1+eps",
    ]


def test_clipped_surrogate_messages_and_zero_ratio():
    r = torch.tensor([0.0, 0.5, 2.0])
    a = torch.tensor([1.0, -1.0, 1.0])
    torch.testing.assert_close(
        ppo.clipped_surrogate(r, a, 0.2), torch.tensor([0.0, -0.8, 1.2])
    )
    with pytest.raises(
        ValueError, match=r"^ratio and advantages must be torch tensors$"
    ):
        ppo.clipped_surrogate([1.0], a[:1], 0.2)
    with pytest.raises(ValueError, match=r"^ratio and advantages must be finite$"):
        ppo.clipped_surrogate(torch.tensor([np.nan]), a[:1], 0.2)
    with pytest.raises(
        ValueError,
        match=r"^ratio must be non-negative \(it is a ratio of probabilities\)$",
    ):
        ppo.clipped_surrogate(torch.tensor([-0.1]), a[:1], 0.2)


# ---------------------------------------------------------------- sampling is reproducible from the generator
def test_gaussian_sample_uses_the_generator():
    torch.manual_seed(0)
    agent = ppo.Agent(
        3,
        gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
        ppo.PPOConfig(log_std_init=-0.5),
    )
    obs = torch.randn(6, 3)
    with torch.no_grad():
        a, logp = agent.sample(obs, torch.Generator().manual_seed(7))
        noise = torch.randn((6, 2), generator=torch.Generator().manual_seed(7))
        mean = agent.actor(obs)
        torch.testing.assert_close(a, mean + np.exp(-0.5) * noise)
        ref = (
            torch.distributions.Normal(mean, torch.full_like(mean, np.exp(-0.5)))
            .log_prob(a)
            .sum(-1)
        )
        torch.testing.assert_close(logp, ref)


# ---------------------------------------------------------------- train_ppo bookkeeping
def _small_run(seed=0, **kw):
    cfg = ppo.PPOConfig(
        total_timesteps=1024, num_envs=4, n_steps=128, n_epochs=2, n_minibatches=2, **kw
    )
    seen = []
    agent, h = ppo.train_ppo(
        "CartPole-v1",
        cfg,
        seed=seed,
        progress=False,
        on_rollout=lambda a, ro: seen.append((a, ro)),
    )
    return agent, h, seen


def test_train_ppo_records_every_update_and_is_reproducible():
    agent, h, seen = _small_run()
    assert (
        len(h.env_steps) == 2 and 0 < h.env_steps[0] < h.env_steps[1] <= 1024
    )  # valid steps only
    assert len(seen) == 2 and all(a is agent for a, _ in seen)
    assert all(ro.obs.shape == (128, 4, 4) for _, ro in seen)
    for name in (
        "policy_loss",
        "value_loss",
        "entropy",
        "actor_grad_norm",
        "critic_grad_norm",
        "grad_clip_fraction",
        "wall_time",
    ):
        values = getattr(h, name)
        assert len(values) == 2 and all(
            isinstance(v, float) and np.isfinite(v) for v in values
        ), name
    assert 0 < h.wall_time[0] < h.wall_time[1] < 600
    assert all(0.0 <= f <= 1.0 for f in h.grad_clip_fraction)
    assert all(isinstance(s, int) and 0 < s <= h.env_steps[-1] for s in h.episode_steps)
    assert h.episode_steps == sorted(h.episode_steps)
    # same seed, same run; another seed, another run
    _, h2, _ = _small_run()
    assert h2.policy_loss == h.policy_loss and h2.episode_returns == h.episode_returns
    _, h3, _ = _small_run(seed=1)
    assert h3.episode_returns != h.episode_returns
    # the default seed is 0
    _, h0 = ppo.train_ppo(
        "CartPole-v1",
        ppo.PPOConfig(
            total_timesteps=1024, num_envs=4, n_steps=128, n_epochs=2, n_minibatches=2
        ),
        progress=False,
    )
    assert h0.policy_loss == h.policy_loss


def test_train_ppo_refuses_a_dict_config():
    with pytest.raises(ValueError, match=r"^config must be a PPOConfig, got dict$"):
        ppo.train_ppo("CartPole-v1", {}, progress=False)


def test_grad_clip_fraction_counts_scaled_steps_only():
    # with an infinite max_grad_norm nothing is ever scaled down
    _, h, _ = _small_run(max_grad_norm=np.inf)
    assert h.grad_clip_fraction == [0.0, 0.0]
    _, h, _ = _small_run(max_grad_norm=1e-6)
    assert h.grad_clip_fraction == [1.0, 1.0]
