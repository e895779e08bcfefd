"""Tests of companion.rollout: termination, truncation and autoreset steps as the learners see them."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from companion.gae import gae
from companion.rollout import RecordActions, RolloutCollector, action_bound_report


class Counter(gym.Env):
    """Observation = steps taken; reward 1 per step; terminates when ``terminate_at`` is reached."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at=None):
        self.terminate_at = terminate_at

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        term = self.terminate_at is not None and self.t >= self.terminate_at
        return np.array([float(self.t)], np.float32), 1.0, term, False, {}


def collector(terminate_at=None, limit=3, num_envs=1, value=None):
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(Counter(terminate_at), limit) for _ in range(num_envs)])

    def act(obs):
        n = obs.shape[0]
        return torch.zeros(n, dtype=torch.long), torch.zeros(n)

    value = value or (lambda obs: 10.0 + obs[:, 0])  # V(s) = 10 + counter: easy to read
    return RolloutCollector(envs, act, value, seed=0)


def test_truncation_is_flagged_and_bootstrapped_from_the_final_observation():
    ro = collector(limit=3).collect(8)
    # steps 0,1,2 of the first episode; step 2 is cut by the time limit; step 3 only resets
    np.testing.assert_array_equal(ro.truncated[:, 0].numpy(), [0, 0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(ro.terminated[:, 0].numpy(), np.zeros(8))
    np.testing.assert_array_equal(ro.valid[:, 0].numpy(), [1, 1, 1, 0, 1, 1, 1, 0])
    # the value after the truncated step is that of the final observation (counter 3), not the reset one
    assert float(ro.next_values[2, 0]) == 13.0
    assert ro.episode_returns == [3.0, 3.0] and ro.episode_lengths == [3, 3]
    # GAE with lambda = 0 at the truncated step: r + gamma V(final obs) - V(s)
    adv = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, 0.9, 0.0)
    assert float(adv[2, 0]) == pytest.approx(1.0 + 0.9 * 13.0 - 12.0)


def test_dropping_the_truncated_flag_changes_the_advantages():
    """Mutant: a rollout that reports truncation as nothing lets GAE run into the reset step."""
    ro = collector(limit=3).collect(8)
    right = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, 0.9, 0.95)
    dropped = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated * 0, 0.9, 0.95)
    assert not torch.allclose(right, dropped)
    # with the flag, the truncated step's advantage does not look past the episode's end
    assert float(right[2, 0]) == pytest.approx(1.0 + 0.9 * 13.0 - 12.0)


def test_termination_is_not_bootstrapped():
    ro = collector(terminate_at=2, limit=50).collect(6)
    np.testing.assert_array_equal(ro.terminated[:, 0].numpy(), [0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(ro.truncated[:, 0].numpy(), np.zeros(6))
    np.testing.assert_array_equal(ro.valid[:, 0].numpy(), [1, 1, 0, 1, 1, 0])
    adv = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, 0.9, 0.0)
    assert float(adv[1, 0]) == pytest.approx(1.0 - 11.0)


def test_reset_steps_carry_no_reward_and_count_no_steps():
    c = collector(limit=3, num_envs=2)
    ro = c.collect(8)
    assert torch.all(ro.rewards[~ro.valid.bool()] == 0)
    assert c.total_steps == int(ro.valid.sum()) == 12


def test_record_actions_sees_what_the_environment_receives():
    envs = RecordActions(gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync"))
    envs.reset(seed=0)
    envs.step(np.array([[5.0], [-0.5]], np.float32))
    assert len(envs.received) == 1 and envs.received[0].tolist() == [[5.0], [-0.5]]
    report = action_bound_report(np.concatenate(envs.received), -2.0, 2.0)
    assert (report.n, report.outside, report.at_bound) == (2, 1, 0)
    envs.close()


def test_action_bound_report_counts_and_refuses_bad_input():
    r = action_bound_report(np.array([[-2.0], [0.0], [2.0], [2.5]]), -2.0, 2.0)
    assert (r.n, r.outside, r.at_bound) == (4, 1, 2)
    with pytest.raises(ValueError, match="NaN"):
        action_bound_report(np.array([np.nan]), -1.0, 1.0)
    with pytest.raises(ValueError, match="low"):
        action_bound_report(np.array([0.0]), 1.0, -1.0)
    with pytest.raises(ValueError, match="empty"):
        action_bound_report(np.zeros((0, 1)), -1.0, 1.0)
