"""Tests of the Gaussian (Box-action) path of companion.trpo.train_trpo, its callback and greedy policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import functional_call

from companion import trpo
from companion.rollout import RecordActions, action_bound_report

# ------------------------------------------------------------------ Gaussian KL


def _kl_inverted_variance(mu_p, log_std_p, mu_q, log_std_q):
    """Mutant: the variance ratio upside down, sigma_q^2 / sigma_p^2."""
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    terms = log_std_q - log_std_p + (var_q + (mu_p - mu_q) ** 2) / (2 * var_p) - 0.5
    return terms.sum(-1)


def _kl_std_for_variance(mu_p, log_std_p, mu_q, log_std_q):
    """Mutant: standard deviations where the variances belong (zero at p = q, wrong curvature)."""
    s_p, s_q = torch.exp(log_std_p), torch.exp(log_std_q)
    terms = log_std_q - log_std_p + (s_p + (mu_p - mu_q) ** 2) / (2 * s_q) - 0.5
    return terms.sum(-1)


_P = (
    torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64),
    torch.tensor([-0.7, 0.2, 0.0], dtype=torch.float64),
)
_Q = (
    torch.tensor([-0.2, -0.5, 2.5], dtype=torch.float64),
    torch.tensor([0.4, -0.3, 0.1], dtype=torch.float64),
)


def _kl_monte_carlo_z(kl_fn, n: int = 200_000, seed: int = 0) -> float:
    """z-score of kl_fn(p, q) against a Monte Carlo estimate E_p[log p(x) - log q(x)]."""
    g = torch.Generator().manual_seed(seed)
    p = torch.distributions.Normal(_P[0], _P[1].exp())
    q = torch.distributions.Normal(_Q[0], _Q[1].exp())
    x = _P[0] + _P[1].exp() * torch.randn(n, 3, generator=g, dtype=torch.float64)
    samples = (p.log_prob(x) - q.log_prob(x)).sum(-1)
    se = float(samples.std() / np.sqrt(n))
    return (float(kl_fn(*_P, *_Q)) - float(samples.mean())) / se


def test_gaussian_kl_matches_closed_form_and_monte_carlo():
    kl = trpo.diagonal_gaussian_kl(*_P, *_Q)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(_P[0], _P[1].exp()),
        torch.distributions.Normal(_Q[0], _Q[1].exp()),
    ).sum()
    assert float(kl) == pytest.approx(float(ref), rel=1e-12)
    # one dimension by hand: log(s_q/s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2
    one = trpo.diagonal_gaussian_kl(
        torch.tensor([1.0]),
        torch.tensor([np.log(2.0)]),
        torch.tensor([0.0]),
        torch.tensor([0.0]),
    )
    assert float(one) == pytest.approx(-np.log(2.0) + (4.0 + 1.0) / 2 - 0.5, rel=1e-6)
    # zero at p = q, and broadcasting of a state-independent log_std over a batch of means
    mu = torch.randn(5, 3, dtype=torch.float64)
    assert torch.allclose(
        trpo.diagonal_gaussian_kl(mu, _P[1], mu, _P[1]),
        torch.zeros(5, dtype=torch.float64),
    )
    assert trpo.diagonal_gaussian_kl(mu, _P[1], mu + 1, _Q[1]).shape == (5,)
    assert abs(_kl_monte_carlo_z(trpo.diagonal_gaussian_kl)) < 4


def test_monte_carlo_check_rejects_the_inverted_variance_ratio():
    assert abs(_kl_monte_carlo_z(_kl_inverted_variance)) > 20


# -------------------------------------------------- Fisher-vector product vs Hessian

_BOX = gym.spaces.Box(low=-2.0, high=2.0, shape=(2,), dtype=np.float32)


def _tiny_gaussian_policy(log_std_init: float = -0.7):
    torch.manual_seed(0)
    cfg = trpo.TRPOConfig(hidden=(4,), log_std_init=log_std_init)
    pol = trpo.make_trpo_policy(3, _BOX, cfg).double()
    with torch.no_grad():  # a log_std that is not the same in every dimension
        pol.log_std.add_(torch.tensor([0.0, 0.5], dtype=torch.float64))
    return pol, torch.randn(
        64, 3, dtype=torch.float64
    )  # more states than parameters: F is invertible


def _fvp_vs_hessian_error(kl_of_policy) -> float:
    """Max relative error of fisher_vector_product(mean of kl_of_policy) against the explicit
    Hessian (torch.autograd.functional.hessian) of the mean closed-form KL (torch.distributions)."""
    pol, states = _tiny_gaussian_policy()
    named = list(pol.named_parameters())
    names, shapes, sizes = (
        [n for n, _ in named],
        [p.shape for _, p in named],
        [p.numel() for _, p in named],
    )
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in named])
    with torch.no_grad():
        mu_old, log_std_old = pol(states).clone(), pol.log_std.clone()
    old = torch.distributions.Normal(mu_old, log_std_old.exp())

    def ref_kl(theta):
        chunks = dict(
            zip(names, [c.view(s) for c, s in zip(torch.split(theta, sizes), shapes)])
        )
        mu = functional_call(
            pol.net,
            {k[4:]: v for k, v in chunks.items() if k.startswith("net.")},
            (states,),
        )
        new = torch.distributions.Normal(mu, chunks["log_std"].exp())
        return torch.distributions.kl_divergence(old, new).sum(-1).mean()

    H = torch.autograd.functional.hessian(ref_kl, theta0)
    params = list(pol.parameters())
    dist_old = (mu_old, log_std_old)
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for _ in range(4):
        v = torch.randn(theta0.numel(), generator=g, dtype=torch.float64)
        Fv = trpo.fisher_vector_product(
            lambda: kl_of_policy(pol, dist_old, states).mean(), params, v
        )
        worst = max(worst, float((Fv - H @ v).norm() / (H @ v).norm()))
    return worst


def test_gaussian_fisher_vector_product_is_the_hessian_of_the_mean_kl():
    assert _fvp_vs_hessian_error(lambda pol, old, s: pol.kl(old, s)) < 1e-10


def test_hessian_check_rejects_std_in_place_of_variance():
    def mutant(pol, old, s):
        return _kl_std_for_variance(*old, pol(s), pol.log_std)

    assert _fvp_vs_hessian_error(mutant) > 0.05


# ------------------------------------------------- the full step's KL is max_kl to 2nd order


def _true_kl_after_step(step_fn, delta: float) -> float:
    """Mean KL(old || new) of the tiny Gaussian policy after step_fn(x, F x, delta), x ~ F^{-1} g by 10 CG steps."""
    pol, states = _tiny_gaussian_policy()
    params = list(pol.parameters())
    with torch.no_grad():
        old = tuple(t.clone() for t in pol.dist_params(states))
    theta0 = torch.cat([p.detach().reshape(-1) for p in params])
    u = torch.randn(
        theta0.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )

    def fvp(v):
        return trpo.fisher_vector_product(lambda: pol.kl(old, states).mean(), params, v)

    x = trpo.conjugate_gradient(
        fvp, fvp(u), n_iters=10
    )  # g = F u: a gradient F can explain
    s = step_fn(x, fvp(x), delta)
    i = 0
    with torch.no_grad():
        for p in params:
            p.add_(s[i : i + p.numel()].view_as(p))
            i += p.numel()
        return float(pol.kl(old, states).mean())


def test_full_step_kl_is_max_kl_to_second_order():
    errs = [abs(_true_kl_after_step(trpo.full_step, d) - d) / d for d in (1e-2, 1e-4)]
    assert errs[1] < 0.02  # measured 1.6e-3
    assert (
        errs[0] / errs[1] > 3
    )  # third-order remainder: the error scales as sqrt(delta) (measured ratio 9.5)


def test_second_order_check_rejects_a_step_without_the_factor_two():
    def mutant(x, Fx, delta):
        return np.sqrt(delta / float((x * Fx).sum())) * x

    d = 1e-4
    assert abs(_true_kl_after_step(mutant, d) - d) / d > 0.4  # about 1/2


# ------------------------------------------------------------------ Pendulum smoke run


def _pendulum_run(n_updates: int = 3):
    recorders, stored = [], []

    def wrap(envs):
        recorders.append(RecordActions(envs))
        return recorders[-1]

    def keep(policy, ro):  # the policy here is the one that sampled the rollout
        obs, a = (
            ro.obs.reshape(-1, 3)[ro.valid.reshape(-1)],
            ro.actions.reshape(-1, 1)[ro.valid.reshape(-1)],
        )
        with torch.no_grad():
            ref = (
                torch.distributions.Normal(policy(obs), policy.log_std.exp())
                .log_prob(a)
                .sum(-1)
            )
        stored.append(
            (
                a,
                ro.logp.reshape(-1)[ro.valid.reshape(-1)],
                ref,
                policy(obs).detach(),
                policy.log_std.detach().clone(),
            )
        )

    cfg = trpo.TRPOConfig(
        env_id="Pendulum-v1", num_envs=2, n_steps=256, n_updates=n_updates, gamma=0.9
    )
    pol, vf, h = trpo.train_trpo(
        cfg, seed=0, progress=False, wrap_env=wrap, on_rollout=keep
    )
    return cfg, pol, vf, h, recorders[0], stored


@pytest.fixture(scope="module")
def pendulum():
    return _pendulum_run()


def test_pendulum_smoke_run(pendulum):
    cfg, pol, vf, h, rec, stored = pendulum
    assert len(h.env_steps) == 3 and len(h.fresh_kl) == 2
    for name in ("mean_return", "kl", "fresh_kl", "step_fraction", "surrogate_gain"):
        assert np.all(np.isfinite(getattr(h, name))), name
    assert max(h.kl) <= cfg.max_kl * (1 + 1e-6)
    assert all(b > a for a, b in zip(h.env_steps, h.env_steps[1:]))
    obs = torch.randn(4, 3)
    assert (
        vf(obs).shape == (4, 1)
        and pol(obs).shape == (4, 1)
        and pol.log_std.shape == (1,)
    )


def test_pendulum_actions_are_clipped_only_where_they_reach_the_env(pendulum):
    _, _, _, _, rec, stored = pendulum
    received = np.concatenate(rec.received)
    report = action_bound_report(received, -2.0, 2.0)
    assert report.outside == 0 and report.at_bound > 0
    sampled = torch.cat([a for a, *_ in stored])
    assert float(sampled.abs().max()) > 2.0  # the rollout keeps the unclipped samples
    # the stored log-probability is that of the unclipped sample under the sampling policy
    for a, logp, ref, *_ in stored:
        assert torch.allclose(logp, ref, rtol=1e-5, atol=1e-5)


def test_unclipped_log_prob_check_rejects_the_log_prob_of_the_clipped_action(pendulum):
    """Mutant: log-probability of the clamped sample; the check of the test above catches it."""
    _, _, _, _, _, stored = pendulum
    a, logp, ref, mean, log_std = stored[0]
    mutant = (
        torch.distributions.Normal(mean, log_std.exp())
        .log_prob(a.clamp(-2.0, 2.0))
        .sum(-1)
    )
    assert not torch.allclose(mutant, ref, rtol=1e-5, atol=1e-5)


def test_greedy_is_the_clipped_mean_or_the_argmax(pendulum):
    _, pol, _, _, _, _ = pendulum
    obs = torch.randn(16, 3)
    assert torch.equal(pol.greedy(obs), torch.clamp(pol(obs), -2.0, 2.0))
    with torch.no_grad():
        pol.net[-1].bias += 10.0  # a mean far outside the bounds
    assert torch.all(pol.greedy(obs) == 2.0) and torch.all(pol(obs) > 2.0)
    with torch.no_grad():
        pol.net[-1].bias -= 10.0
    cart = trpo.make_trpo_policy(4, gym.spaces.Discrete(2), trpo.TRPOConfig())
    x = torch.randn(9, 4)
    assert (
        torch.equal(cart.greedy(x), cart(x).argmax(-1))
        and not cart.greedy(x).requires_grad
    )


# ------------------------------------------------------------------- callback and budget


def test_callback_stops_after_the_update_on_which_it_returns_true():
    seen = []

    def cb(policy, env_steps):
        seen.append((policy, env_steps))
        return len(seen) == 2

    cfg = trpo.TRPOConfig(num_envs=2, n_steps=32, n_updates=5)
    pol, _, h = trpo.train_trpo(cfg, seed=0, progress=False, callback=cb)
    assert len(seen) == 2 and len(h.env_steps) == 2 and len(h.kl) == 2
    assert [s for _, s in seen] == h.env_steps and h.env_steps[0] < h.env_steps[1]
    assert all(p is pol for p, _ in seen)
    # a callback that never says stop runs every update
    _, _, h_all = trpo.train_trpo(
        cfg, seed=0, progress=False, callback=lambda p, s: False
    )
    assert len(h_all.env_steps) == 5 and h_all.env_steps[:2] == h.env_steps


def test_total_timesteps_sets_the_number_of_updates_as_sb3():
    cfg = trpo.TRPOConfig(num_envs=2, n_steps=1024, total_timesteps=100_000)
    assert cfg.updates == 49  # SB3 collects rollouts until 100,000 steps are reached
    assert (
        trpo.TRPOConfig(num_envs=2, n_steps=16, total_timesteps=64, n_updates=1).updates
        == 2
    )
    assert trpo.TRPOConfig(n_updates=7).updates == 7
    _, _, h = trpo.train_trpo(
        trpo.TRPOConfig(num_envs=2, n_steps=16, total_timesteps=65, vf_batch_size=10),
        seed=0,
        progress=False,
    )
    assert len(h.env_steps) == 3  # ceil(65 / 32)


def test_train_trpo_refuses_bad_callbacks():
    for name in ("callback", "wrap_env", "on_rollout"):
        with pytest.raises(ValueError, match=name):
            trpo.train_trpo(trpo.TRPOConfig(n_updates=1), progress=False, **{name: 3})


def test_config_refuses_advantage_normalisation_of_a_single_step():
    with pytest.raises(ValueError, match="normalize_advantage"):
        trpo.TRPOConfig(num_envs=1, n_steps=1, vf_minibatches=1)
    trpo.TRPOConfig(num_envs=1, n_steps=1, vf_minibatches=1, normalize_advantage=False)


def test_policy_class_is_importable_and_pickles():
    import pickle

    from companion.trpo import TRPOPolicy

    pol = trpo.make_trpo_policy(3, _BOX, trpo.TRPOConfig(hidden=(4,)))
    assert isinstance(pol, TRPOPolicy) and isinstance(pol, torch.nn.Module)
    back = pickle.loads(pickle.dumps(pol))
    x = torch.randn(5, 3)
    assert torch.equal(back.greedy(x), pol.greedy(x))
