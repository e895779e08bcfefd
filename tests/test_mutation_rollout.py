"""Tests of ``companion.rollout`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from companion.rollout import (
    RecordActions,
    RolloutCollector,
    action_bound_report,
    make_vector_env,
)


class Counter64(gym.Env):
    """A float64 observation (steps taken); reward 0.5 per step; truncated by a TimeLimit."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0]), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)]), 0.5, False, False, {}


def test_rollout_tensors_are_float32_and_steps_add_up():
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(Counter64(), 3) for _ in range(2)]
    )
    seen = []

    def act(obs):
        seen.append(obs.dtype)
        return torch.zeros(obs.shape[0], dtype=torch.long), torch.zeros(obs.shape[0])

    col = RolloutCollector(envs, act, lambda obs: obs[:, 0], seed=0)
    ro = col.collect(5)
    assert set(seen) == {torch.float32}
    for name in ("obs", "rewards", "terminated", "truncated", "values", "next_values"):
        assert getattr(ro, name).dtype == torch.float32, name
    assert ro.episode_lengths == [3, 3] and type(ro.episode_lengths[0]) is int
    assert col.total_steps == 8  # 5 steps of 2 envs, minus the two reset steps
    ro2 = col.collect(4)
    assert ro2.obs.dtype == torch.float32
    assert col.total_steps == 8 + int(ro2.valid.sum())


def test_the_first_reset_uses_the_seed():
    def first_obs(seed):
        envs = make_vector_env("CartPole-v1", 2, seed=123)
        col = RolloutCollector(
            envs,
            lambda o: (
                torch.zeros(o.shape[0], dtype=torch.long),
                torch.zeros(o.shape[0]),
            ),
            lambda o: o[:, 0],
            seed=seed,
        )
        return col.collect(1).obs[0]

    torch.testing.assert_close(first_obs(5), first_obs(5), rtol=0, atol=0)
    assert not torch.equal(first_obs(5), first_obs(6))


def test_record_actions_keeps_copies():
    envs = RecordActions(
        gym.vector.SyncVectorEnv([lambda: gym.wrappers.TimeLimit(Counter64(), 3)])
    )
    envs.reset(seed=0)
    a = np.array([1])
    envs.step(a)
    a[0] = 0  # the caller reuses its buffer
    envs.step(a)
    assert [int(x[0]) for x in envs.received] == [1, 0]


def test_action_bound_report_per_dimension_bounds_and_messages():
    rep = action_bound_report(
        np.array([[0.5, 2.0], [-1.0, 0.0], [3.0, -3.0]]),
        np.array([-1.0, -2.0]),
        np.array([1.0, 2.0]),
    )
    assert (rep.n, rep.outside, rep.at_bound) == (6, 2, 2)
    rep1 = action_bound_report(
        np.array([0.5, -1.0, 2.0]), np.array([-1.0]), np.array([1.0])
    )  # 1-D action space
    assert (rep1.n, rep1.outside, rep1.at_bound) == (3, 1, 1)
    rep0 = action_bound_report([0.0, 0.0], 0.0, 0.0)  # low == high is allowed
    assert (rep0.outside, rep0.at_bound) == (0, 2)
    with pytest.raises(ValueError, match=r"^actions must not be empty$"):
        action_bound_report(np.zeros((0, 2)), -1.0, 1.0)
    with pytest.raises(ValueError, match=r"^actions contain NaN or inf$"):
        action_bound_report([np.nan], -1.0, 1.0)
    with pytest.raises(ValueError, match=r"^low must not exceed high$"):
        action_bound_report([0.0], 1.0, -1.0)


def test_make_vector_env_prefers_the_vectorised_implementation():
    envs = make_vector_env("CartPole-v1", 3, seed=0)
    assert type(envs).__name__ == "CartPoleVectorEnv" and envs.num_envs == 3
    # an environment without one falls back to stepping copies one by one
    envs = make_vector_env("Pendulum-v1", 2, seed=0)
    assert isinstance(envs, gym.vector.SyncVectorEnv) and envs.num_envs == 2
    assert envs.envs[0].spec.id == "Pendulum-v1"
    with pytest.raises(
        ValueError, match=r"^num_envs must be a positive integer, got 0$"
    ):
        make_vector_env("CartPole-v1", 0, seed=0)


def test_make_vector_env_resets_with_the_seed():
    a = make_vector_env("Pendulum-v1", 2, seed=4)
    b = make_vector_env("Pendulum-v1", 2, seed=4)
    oa, _, _, _, _ = a.step(np.zeros((2, 1), dtype=np.float32))
    ob, _, _, _, _ = b.step(np.zeros((2, 1), dtype=np.float32))
    np.testing.assert_array_equal(oa, ob)
    c = make_vector_env("Pendulum-v1", 2, seed=5)
    oc, _, _, _, _ = c.step(np.zeros((2, 1), dtype=np.float32))
    assert not np.array_equal(oa, oc)
