"""Each check of Chapter 5 rejects the wrong versions it claims to reject (CONTRIBUTING.md, point 1)."""

import gymnasium as gym
import numpy as np
import pytest
import sympy as sp
import torch

from companion import ppo, rollout
from companion.rollout import RecordActions, action_bound_report


def _clip(x, eps):
    return sp.Max(1 - eps, sp.Min(x, 1 + eps))


# ---- the six-case table of the clipped objective (chapter: "Check (proof)") -------------

def test_clip_table_accepts_the_clipped_objective():
    assert ppo.clip_table_mismatches(lambda r, A, e: sp.Min(r * A, _clip(r, e) * A)) == []


@pytest.mark.parametrize(
    "wrong",
    [
        lambda r, A, e: sp.Min(r * A, _clip(r * A, e)),  # the misprint: bracket around r A
        lambda r, A, e: sp.Max(r * A, _clip(r, e) * A),  # max instead of min
        lambda r, A, e: _clip(r, e) * A,  # clipped term alone
        lambda r, A, e: r * A,  # no clip
        lambda r, A, e: sp.Min(r * A, _clip(r, 2 * e) * A),  # wrong interval
    ],
)
def test_clip_table_rejects_wrong_objectives(wrong):
    assert ppo.clip_table_mismatches(wrong) != []


# ---- the loss averages over valid steps only (chapter: reset steps masked) --------------

def _batch(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(obs=torch.randn(n, 4, generator=g), actions=torch.randint(0, 2, (n,), generator=g),
                logp_old=torch.log(torch.full((n,), 0.5)) + 0.1 * torch.randn(n, generator=g),
                advantages=torch.randn(n, generator=g), returns=torch.randn(n, generator=g),
                values_old=torch.randn(n, generator=g))


@pytest.mark.parametrize("norm_adv", [True, False])
@pytest.mark.parametrize("clip_vloss", [True, False])
def test_ppo_loss_ignores_invalid_steps(norm_adv, clip_vloss):
    torch.manual_seed(0)
    cfg = ppo.PPOConfig(norm_adv=norm_adv, clip_vloss=clip_vloss, ent_coef=0.01)
    agent = ppo.Agent(4, gym.spaces.Discrete(2), cfg)
    b = _batch()
    valid = torch.ones(32)
    valid[::4] = 0
    garbage = {k: v.clone() for k, v in b.items()}
    garbage["advantages"][::4] = 1e3  # what an autoreset step could carry
    garbage["returns"][::4] = -1e3
    full = ppo.ppo_loss(agent, **garbage, valid=valid, config=cfg, clip_eps=0.2)
    keep = valid.bool()
    only_valid = ppo.ppo_loss(agent, **{k: v[keep] for k, v in b.items()}, valid=torch.ones(24),
                              config=cfg, clip_eps=0.2)
    for term in ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
        assert torch.allclose(getattr(full, term), getattr(only_valid, term), atol=1e-6), term


def test_a_loss_averaged_over_all_steps_would_be_caught():
    """The same comparison tells a masked loss from one that averages over the reset steps."""
    torch.manual_seed(0)
    cfg = ppo.PPOConfig()
    agent = ppo.Agent(4, gym.spaces.Discrete(2), cfg)
    b = _batch()
    valid = torch.ones(32)
    valid[::4] = 0
    masked = ppo.ppo_loss(agent, **b, valid=valid, config=cfg, clip_eps=0.2)
    unmasked = ppo.ppo_loss(agent, **b, valid=torch.ones(32), config=cfg, clip_eps=0.2)
    assert not torch.allclose(masked.policy_loss, unmasked.policy_loss, atol=1e-6)


# ---- gradient clipping: global couples actor and critic, separate does not -------------

def _grads(actor_scale, critic_scale):
    a = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    c = [torch.nn.Parameter(torch.zeros(4))]
    for p in a:
        p.grad = actor_scale * torch.ones_like(p)
    for p in c:
        p.grad = critic_scale * torch.ones_like(p)
    return a, c


def test_global_clip_matches_torch_and_shrinks_the_actor_with_the_critic():
    a, c = _grads(0.1, 10.0)
    ref_a, ref_c = _grads(0.1, 10.0)
    torch.nn.utils.clip_grad_norm_(ref_a + ref_c, 0.5)
    info = ppo.clip_gradients(a, c, 0.5, separately=False)
    for p, q in zip(a + c, ref_a + ref_c):
        assert torch.allclose(p.grad, q.grad, atol=1e-7)
    assert info.actor_norm == pytest.approx(0.1 * np.sqrt(5))  # below 0.5: alone it would not be clipped
    assert info.actor_scale < 0.05  # but the critic's norm (20) shrinks it


def test_separate_clip_leaves_a_small_actor_gradient_alone():
    a, c = _grads(0.1, 10.0)
    info = ppo.clip_gradients(a, c, 0.5, separately=True)
    assert info.actor_scale == 1.0 and torch.all(a[0].grad == 0.1)
    assert torch.linalg.vector_norm(c[0].grad).item() == pytest.approx(0.5, rel=1e-5)


# ---- the recorded KL is KL(old || new) of the updated policy on that update's batch -----

def test_recorded_kl_is_that_of_the_updated_policy_on_its_batch(monkeypatch):
    rollouts, kls = [], []
    original = rollout.RolloutCollector.collect

    def capture(self, n_steps):
        ro = original(self, n_steps)
        rollouts.append(ro)
        return ro

    monkeypatch.setattr(rollout.RolloutCollector, "collect", capture)

    def callback(agent, steps):  # independent computation with torch.distributions
        ro = rollouts[-1]
        with torch.no_grad():
            dist = agent.distribution(ro.obs.reshape(-1, 4))
            logp_new = dist.log_prob(ro.actions.reshape(-1))
        log_r = logp_new - ro.logp.reshape(-1)
        v = ro.valid.reshape(-1).float()
        kls.append(float(((torch.exp(log_r) - 1 - log_r) * v).sum() / v.sum()))
        return False

    _, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=1536), seed=3,
                         progress=False, callback=callback)
    assert np.allclose(h.approx_kl, kls, rtol=1e-4, atol=1e-7)
    # the per-minibatch trace starts at 0 (no step taken yet) and is a different quantity
    assert all(trace[0] == pytest.approx(0.0, abs=1e-7) for trace in h.minibatch_kl)
    assert not np.allclose(h.approx_kl, [np.mean(t) for t in h.minibatch_kl])


def test_target_kl_stops_epochs_on_the_whole_batch_kl():
    _, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=1024), seed=0, progress=False)
    assert h.epochs == [6, 6]
    # A threshold between the two candidate statistics after the first epoch (seed 1):
    # the whole-batch KL after the epoch (the companion's rule) and the last minibatch's
    # pre-step estimate (CleanRL's rule). The rules then stop at different epochs.
    cfg1 = dict(total_timesteps=512, n_epochs=1)
    _, one = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(**cfg1), seed=1, progress=False)
    batch_kl, last_mb_kl = one.approx_kl[0], one.minibatch_kl[0][-1]
    assert batch_kl > 1.5 * last_mb_kl  # measured: 0.0067 vs 0.0032
    threshold = float(np.sqrt(batch_kl * last_mb_kl))
    _, h = ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=512, target_kl=threshold),
                         seed=1, progress=False)
    # the companion stops after epoch 1; the minibatch rule (last_mb_kl < threshold) would not
    assert h.epochs == [1]
    assert h.approx_kl[0] == pytest.approx(batch_kl, rel=1e-6)


# ---- actions reaching the environment are clipped (chapter: Pendulum check) ------------

def test_actions_received_by_the_environment_are_within_bounds():
    recorders = []

    def wrap(envs):
        recorders.append(RecordActions(envs))
        return recorders[-1]

    cfg = ppo.PPOConfig(total_timesteps=1024, n_steps=64)
    ppo.train_ppo("Pendulum-v1", cfg, seed=0, progress=False, wrap_env=wrap)
    report = action_bound_report(np.concatenate(recorders[0].received), -2.0, 2.0)
    assert report.outside == 0 and report.at_bound > 0


def test_bound_report_rejects_unclipped_gaussian_samples():
    samples = np.random.default_rng(0).normal(0.0, 1.0, size=(1024, 1))
    report = action_bound_report(samples, -2.0, 2.0)
    assert report.outside > 0 and report.at_bound == 0


def test_stored_log_probs_are_those_of_the_unclipped_gaussian_sample(monkeypatch):
    """Mutant: clamping the sample before computing (or storing) its log-probability."""
    rollouts = []
    original = rollout.RolloutCollector.collect

    def capture(self, n_steps):
        ro = original(self, n_steps)
        agent = self.value.__self__  # the policy that collected this rollout
        with torch.no_grad():
            dist = agent.distribution(ro.obs.reshape(-1, 3))
            ref = dist.log_prob(ro.actions.reshape(-1, 1)).sum(-1)
        rollouts.append((ro, ref))
        return ro

    monkeypatch.setattr(rollout.RolloutCollector, "collect", capture)
    ppo.train_ppo("Pendulum-v1", ppo.PPOConfig(total_timesteps=1024, n_steps=64), seed=0,
                  progress=False)
    for ro, ref in rollouts:
        assert torch.allclose(ro.logp.reshape(-1), ref, atol=1e-5)
    actions = torch.cat([ro.actions.reshape(-1) for ro, _ in rollouts])
    assert (actions.abs() > 2.0).sum() > 0  # stored actions are the unclipped samples


# ---- the loss sees the rollout's valid mask; truncation is not termination ---------------

def _capture_rollouts(monkeypatch):
    rollouts = []
    original = rollout.RolloutCollector.collect

    def capture(self, n_steps):
        ro = original(self, n_steps)
        rollouts.append(ro)
        return ro

    monkeypatch.setattr(rollout.RolloutCollector, "collect", capture)
    return rollouts


def test_the_loss_receives_the_rollouts_valid_mask(monkeypatch):
    """Mutant: passing ``ones_like(valid)`` to the loss (reset steps trained on)."""
    rollouts = _capture_rollouts(monkeypatch)
    calls = []
    original = ppo.ppo_loss

    def spy(agent, obs, actions, logp_old, adv, returns, values, valid, *args, **kw):
        calls.append((len(rollouts), obs.clone(), actions.clone(), valid.clone()))
        return original(agent, obs, actions, logp_old, adv, returns, values, valid, *args, **kw)

    monkeypatch.setattr(ppo, "ppo_loss", spy)
    ppo.train_ppo("CartPole-v1", ppo.PPOConfig(total_timesteps=1024), seed=0, progress=False)
    assert len(calls) == 2 * 6 * 4
    for k, ro in enumerate(rollouts, start=1):
        ro_valid = ro.valid.reshape(-1).float()
        assert ro_valid.min() == 0  # reset steps present
        # each row's valid flag, looked up by its (observation, action)
        table = {(tuple(o.tolist()), int(a)): float(v)
                 for o, a, v in zip(ro.obs.reshape(-1, 4), ro.actions.reshape(-1), ro_valid)}
        mine = [c for c in calls if c[0] == k]
        for _, obs, actions, valid in mine:
            want = [table[(tuple(o.tolist()), int(a))] for o, a in zip(obs, actions)]
            assert valid.tolist() == want
        # one epoch's minibatches cover the batch: same number of valid rows
        assert sum(float(c[3].sum()) for c in mine[:4]) == float(ro_valid.sum())


def test_truncated_steps_bootstrap_from_the_final_observation_in_train_ppo(monkeypatch):
    """Mutant: ``terminated + truncated`` handed to GAE as ``terminated``.

    Pendulum's episodes end only by its 200-step time limit. At a truncated step GAE's
    recursion is cut, so whatever lambda, A_t = r_t + gamma V(final obs) - V(s_t).
    """
    from companion import gae as gae_module

    rollouts = _capture_rollouts(monkeypatch)
    seen = []
    original = gae_module.gae

    def spy(rewards, values, next_values, terminated, truncated, gamma, lam):
        adv = original(rewards, values, next_values, terminated, truncated, gamma, lam)
        seen.append((terminated.clone(), truncated.clone(), adv.clone()))
        return adv

    monkeypatch.setattr(gae_module, "gae", spy)
    cfg = ppo.PPOConfig(total_timesteps=2048, n_steps=256, n_epochs=1)
    ppo.train_ppo("Pendulum-v1", cfg, seed=0, progress=False)
    (term, trunc, adv), = seen
    ro = rollouts[0]
    assert trunc.sum() == 8 and term.sum() == 0  # every copy hits the limit at step 200
    assert torch.equal(term, ro.terminated) and torch.equal(trunc, ro.truncated)
    cut = ro.truncated.bool()
    one_step = ro.rewards + cfg.gamma * ro.next_values - ro.values
    assert torch.allclose(adv[cut], one_step[cut], atol=1e-4)
    assert not torch.allclose(adv[cut], (ro.rewards - ro.values)[cut], atol=1e-2)
