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
    theta = np.random.default_rng(3).normal(
        size=(small_mdp.n_states, small_mdp.n_actions)
    )
    t = torch.tensor(theta, requires_grad=True)
    pg.finite_horizon_return(small_mdp, torch.softmax(t, 1), 500).backward()
    g = pg.exact_gradient(small_mdp, theta)
    assert np.allclose(g, t.grad.numpy(), atol=1e-9)
    idx, eps = (1, 2), 1e-6
    d = np.zeros_like(theta)
    d[idx] = eps
    fd = (
        M.expected_return(small_mdp, pg.softmax_policy(theta + d))
        - M.expected_return(small_mdp, pg.softmax_policy(theta - d))
    ) / (2 * eps)
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
        pg.enumerate_trajectories(
            M.random_mdp(10, 10, seed=0), M.random_policy(10, 10), 4
        )


@pytest.mark.parametrize("estimator", ["full_return", "reward_to_go"])
def test_reinforce_gradient_is_unbiased_by_enumeration(estimator):
    m = M.random_mdp(2, 2, gamma=0.9, seed=6)
    theta = np.random.default_rng(7).normal(size=(2, 2))
    H = 3
    s, a, p = pg.enumerate_trajectories(m, pg.softmax_policy(theta), H)
    g = np.stack(
        [
            pg.reinforce_gradient(
                theta, si, ai, m.R[si, ai], 0.9, estimator, baseline=np.ones(H)
            )
            for si, ai in zip(s, a)
        ]
    )
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
        pg.train_reinforce(
            pg.ReinforceConfig(env_id="Pendulum-v1", n_epochs=1), progress=False
        )


@pytest.mark.slow
def test_train_reinforce_learns_cartpole():
    _, h = pg.train_reinforce(
        pg.ReinforceConfig(n_epochs=25, steps_per_epoch=2000), seed=0, progress=False
    )
    assert len(h.env_steps) == 25 and h.env_steps[-1] >= 25 * 2000
    assert np.mean(h.mean_return[-3:]) > 2 * np.mean(h.mean_return[:3])


# ----------------------------------------------------------------- bad input is refused


_mdp = M.random_mdp(2, 2, gamma=0.9, seed=0)
_theta = np.zeros((2, 2))
_pi = np.full((2, 2), 0.5)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: pg.reward_to_go([1.0], -0.1), "gamma"),
        (lambda: pg.reward_to_go([1.0], np.nan), "gamma"),
        (lambda: pg.reward_to_go([[[1.0]]]), "shape"),
        (lambda: pg.reward_to_go([1.0, np.inf]), "rewards contains NaN"),
        (lambda: pg.softmax_policy([[1.0, np.nan]]), "theta contains NaN"),
        (lambda: pg.softmax_policy(np.zeros((2, 0))), "theta must have at least one"),
        (lambda: pg.score(_theta, 0.0, 1), "state must be an integer"),
        (lambda: pg.score(_theta, 0, True), "action must be an integer"),
        (lambda: pg.score(_theta, -1, 0), r"\(state, action\) must lie"),
        (lambda: pg.exact_gradient(_mdp, np.zeros(4)), "theta must have shape"),
        (
            lambda: pg.exact_gradient(_mdp, [[0.0, np.nan], [0.0, 0.0]]),
            "theta contains NaN",
        ),
        (lambda: pg.finite_horizon_return(_mdp, _pi, 0), "horizon"),
        (
            lambda: pg.finite_horizon_return(_mdp, [[0.5, 0.6], [0.5, 0.5]], 2),
            "pi must sum to 1",
        ),
        (
            lambda: pg.finite_horizon_return(_mdp, torch.zeros(3, 2), 2),
            "pi must have shape",
        ),
        (
            lambda: pg.finite_horizon_return(_mdp, torch.full((2, 2), float("nan")), 2),
            "pi contains NaN",
        ),
        (
            lambda: pg.finite_horizon_return(
                _mdp, torch.tensor([[0.5, 0.6], [0.5, 0.5]], requires_grad=True), 2
            ),
            "pi must sum to 1",
        ),
        (
            lambda: pg.finite_horizon_return(
                _mdp, torch.tensor([[1.5, -0.5], [0.5, 0.5]]), 2
            ),
            "pi",
        ),
        (lambda: pg.enumerate_trajectories(_mdp, _pi, 2.5), "horizon"),
        (lambda: pg.step_weights([1.0, 2.0], 1.2), "gamma"),
        (lambda: pg.step_weights([1.0, 2.0], 0.9, "bogus"), "estimator"),
        (
            lambda: pg.step_weights([1.0, 2.0], 0.9, baseline=[1.0]),
            "baseline must have shape",
        ),
        (
            lambda: pg.reinforce_gradient(_theta, [0.5], [0], [1.0]),
            "states must hold integer",
        ),
        (
            lambda: pg.reinforce_gradient(_theta, [0], ["a"], [1.0]),
            "actions must hold integer",
        ),
        (
            lambda: pg.reinforce_gradient(_theta, [0], [0], [np.nan]),
            "rewards contains NaN",
        ),
        (lambda: pg.reinforce_gradient(_theta, [0], [0], [1.0], gamma=2.0), "gamma"),
        (
            lambda: pg.reinforce_gradient(_theta, [[0]], [0], [1.0]),
            "states must be a 1-D",
        ),
        (lambda: pg.finite_horizon_q(_mdp, _pi, 0), "horizon"),
        (lambda: pg.conditional_reward_to_go(_mdp, _pi, 2, gamma=1.5), "gamma"),
        (
            lambda: pg.q_enumeration_gap(_mdp, _pi, np.zeros((2, 3, 2))),
            "q_table must have shape",
        ),
        (lambda: pg.gradient_field(_mdp, np.zeros((3, 2)), 2), "theta must have shape"),
        (lambda: pg.gradient_field(_mdp, _theta, 0), "horizon"),
        (lambda: pg.symbolic_softmax(0, 2), "n_states"),
        (
            lambda: pg.symbolic_trajectory_probability(None, None, [1], [0], [0]),
            "one more entry",
        ),
        (lambda: pg.train_reinforce("CartPole-v1"), "config must be a ReinforceConfig"),
        (lambda: pg.train_reinforce(pg.ReinforceConfig(n_epochs=1), seed=-1), "seed"),
    ],
)
def test_public_functions_refuse_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "field, value",
    [
        ("env_id", ""),
        ("env_id", 3),
        ("n_epochs", 0),
        ("n_epochs", 2.0),
        ("steps_per_epoch", -5),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("lr", "1e-2"),
        ("gamma", 1.5),
        ("gamma", -0.1),
        ("estimator", "advantage"),
        ("num_envs", 0),
        ("hidden", (32, 0)),
        ("hidden", 32),
        ("hidden", "32"),
        ("device", ""),
        ("device", None),
    ],
)
def test_reinforce_config_refuses_each_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        pg.ReinforceConfig(**{field: value})


def test_reinforce_config_checks_fields_changed_after_construction():
    config = pg.ReinforceConfig()
    config.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        pg.train_reinforce(config, progress=False)


# ------------------------------------------- the baseline is subtracted as gamma^t b_t


def test_baseline_is_discounted_by_hand():
    # theta = 0, two steps in state 0 with action 0 (score (0.5, -0.5) each), no reward,
    # gamma = 0.5, baseline b = (1, 1): weights -(1, 0.5), estimate -1.5 * (0.5, -0.5).
    g = pg.reinforce_gradient(
        np.zeros((1, 2)), [0, 0], [0, 0], [0.0, 0.0], gamma=0.5, baseline=[1.0, 1.0]
    )
    assert np.allclose(g, [[-0.75, 0.75]])  # without gamma^t on b: [[-1, 1]]
    assert np.allclose(
        pg.step_weights([0.0, 0.0], 0.5, baseline=[1.0, 1.0]), [-1.0, -0.5]
    )


def test_value_baseline_weights_have_zero_conditional_mean():
    # With b_t = V^(H-t)(s_t), the weight gamma^t (R_t - b_t) has mean zero given s_t (the
    # reward-to-go is centred by its own conditional mean); b_t without gamma^t is not.
    m = M.random_mdp(2, 2, gamma=0.8, seed=8)
    theta = np.random.default_rng(9).normal(size=(2, 2))
    pi = pg.softmax_policy(theta)
    H = 3
    s, a, p = pg.enumerate_trajectories(m, pi, H)
    Q = pg.finite_horizon_q(m, pi, H)
    V = (pi[None] * Q).sum(axis=2)  # V[t, s]: value of the H - t steps left
    b = V[np.arange(H), s]  # (N, H)
    w = np.stack(
        [
            pg.step_weights(m.R[si, ai], m.gamma, baseline=bi)
            for si, ai, bi in zip(s, a, b)
        ]
    )
    for t in range(H):
        for state in range(2):
            mask = s[:, t] == state
            assert abs(p[mask] @ w[mask, t]) < 1e-12
    g = np.stack(
        [
            pg.reinforce_gradient(theta, si, ai, m.R[si, ai], m.gamma, baseline=bi)
            for si, ai, bi in zip(s, a, b)
        ]
    )
    t_ = torch.tensor(theta, requires_grad=True)
    pg.finite_horizon_return(m, torch.softmax(t_, 1), H).backward()
    assert np.allclose(np.einsum("n,nsa->sa", p, g), t_.grad.numpy(), atol=1e-12)


def test_train_reinforce_does_not_depend_on_thread_count():
    # Chapter 2 pins torch to one thread for speed; the results must be the same.
    config = pg.ReinforceConfig(n_epochs=3, steps_per_epoch=500)
    before = torch.get_num_threads()
    try:
        histories = []
        for n in (1, 2):
            torch.set_num_threads(n)
            _, h = pg.train_reinforce(config, seed=3, progress=False)
            histories.append(h.mean_return + h.loss)
    finally:
        torch.set_num_threads(before)
    assert histories[0] == histories[1]


# ------------------------------- REINFORCE records whole episodes, each begun at a reset


class _SpyEnvs:
    """Wraps a vector env and records every observation at which an episode begins."""

    def __init__(self, envs):
        self._envs, self.starts, self._ended = envs, [], None

    def __getattr__(self, name):
        return getattr(self._envs, name)

    def reset(self, **kwargs):
        obs, info = self._envs.reset(**kwargs)
        self.starts.extend(np.array(o) for o in obs)
        self._ended = np.zeros(len(obs), dtype=bool)
        return obs, info

    def step(self, actions):
        out = self._envs.step(actions)
        # next-step autoreset: the step after an episode end returns the new start
        self.starts.extend(np.array(out[0][i]) for i in np.flatnonzero(self._ended))
        self._ended = out[2] | out[3]
        return out


def test_train_reinforce_records_only_whole_cartpole_episodes(monkeypatch):
    import companion.rollout as rollout

    spies, recorded = [], []
    make = rollout.make_vector_env
    collect = pg._collect_episodes

    def spy_make(*args, **kwargs):
        spies.append(_SpyEnvs(make(*args, **kwargs)))
        return spies[-1]

    def spy_collect(*args, **kwargs):
        episodes = collect(*args, **kwargs)
        recorded.extend(episodes)
        return episodes

    monkeypatch.setattr(rollout, "make_vector_env", spy_make)
    monkeypatch.setattr(pg, "_collect_episodes", spy_collect)
    config = pg.ReinforceConfig(n_epochs=4, steps_per_epoch=300, num_envs=4)
    _, h = pg.train_reinforce(config, seed=1, progress=False)
    assert len(recorded) > 4 * config.num_envs
    starts = {o.tobytes() for o in spies[0].starts}
    n_steps = 0
    for obs, act, rew in recorded:
        # CartPole pays 1 per step: a reset step (reward 0) recorded would show here
        assert np.all(rew == 1.0)
        assert obs.shape == (len(rew), 4) and act.shape == (len(rew),)
        # the episode's first observation is one the environment returned at a reset
        assert obs[0].tobytes() in starts
        assert np.all(np.abs(obs[0]) <= 0.05)  # CartPole starts in [-0.05, 0.05]^4
        n_steps += len(rew)
    assert h.env_steps[-1] == n_steps


def test_train_reinforce_resets_the_environments_each_epoch(monkeypatch):
    import companion.rollout as rollout

    spies = []
    make = rollout.make_vector_env

    def spy_make(*args, **kwargs):
        spies.append(_SpyEnvs(make(*args, **kwargs)))
        return spies[-1]

    calls = []
    monkeypatch.setattr(rollout, "make_vector_env", spy_make)
    original_reset = _SpyEnvs.reset
    monkeypatch.setattr(
        _SpyEnvs,
        "reset",
        lambda self, **kw: calls.append(kw) or original_reset(self, **kw),
    )
    pg.train_reinforce(
        pg.ReinforceConfig(n_epochs=3, steps_per_epoch=50, num_envs=2),
        seed=5,
        progress=False,
    )
    seeds = [kw.get("seed") for kw in calls]
    assert len(seeds) == 3 and len(set(seeds)) == 3 and None not in seeds
