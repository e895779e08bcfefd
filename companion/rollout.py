"""Collecting fixed-length rollouts from gymnasium vector environments (used by TRPO and PPO).

A rollout is ``T`` steps of ``N`` environments stepped together, stored with time on
axis 0, which is the layout :func:`companion.gae.gae` expects.

Gymnasium's vector environments reset an environment whose episode ended on the *next*
call to ``step`` (autoreset mode "next step"). So after a step with
``terminated or truncated``, the observation returned is still the episode's *final*
observation (exactly what a truncated step must bootstrap from), and the following step
of that environment only resets it: its action is ignored and its reward is 0. Such
steps are marked ``valid = False`` and must be left out of every loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from companion._validate import check_positive_int

__all__ = ["make_vector_env", "Rollout", "RolloutCollector", "RecordActions", "ActionBounds", "action_bound_report"]


def make_vector_env(env_id: str, num_envs: int, seed: int) -> Any:
    """``num_envs`` copies of ``env_id`` stepped together (gymnasium's vector API).

    Uses the environment's own vectorised implementation when it has one (CartPole
    does: all copies are stepped by one numpy computation), else a ``SyncVectorEnv``.
    Either way the autoreset mode is gymnasium's default, *next step*: after an episode
    ends, the following ``step`` call only resets that copy (its action is ignored and
    its reward is 0), so learners must skip that transition.
    """
    import gymnasium as gym

    num_envs = check_positive_int(num_envs, "num_envs")
    try:
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    except (gym.error.Error, ValueError, TypeError):
        envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    envs.reset(seed=seed)
    return envs


def RecordActions(envs: Any) -> Any:
    """Wrap a gymnasium vector environment so that it keeps every action it receives.

    The returned wrapper behaves as ``envs``; after each ``step(actions)`` a copy of
    ``actions`` is appended to its list ``received``. It shows what actually reaches the
    environment (for example, that a Gaussian policy's samples were clipped to the action
    bounds), as opposed to what the learner sampled.
    """
    import gymnasium as gym

    class _RecordActions(gym.vector.VectorWrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            self.received: list[np.ndarray] = []

        def step(self, actions: Any) -> Any:
            self.received.append(np.array(actions, copy=True))
            return self.env.step(actions)

    return _RecordActions(envs)


@dataclass(frozen=True)
class ActionBounds:
    """How many of ``n`` action entries lie outside the bounds, and how many exactly on one."""

    n: int
    outside: int
    at_bound: int


def action_bound_report(actions: Any, low: Any, high: Any) -> ActionBounds:
    """Count the entries of ``actions`` outside ``[low, high]`` and exactly on a bound.

    Applied to the actions an environment received (:func:`RecordActions`), ``outside``
    must be 0 when a learner clips its samples; ``at_bound > 0`` shows that clipping
    happened (a Gaussian sample lands exactly on a bound with probability 0).
    """
    a = np.asarray(actions, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(low, dtype=np.float64), a.shape[-1:] if a.ndim else ())
    hi = np.broadcast_to(np.asarray(high, dtype=np.float64), lo.shape)
    if a.size == 0:
        raise ValueError("actions must not be empty")
    if not np.all(np.isfinite(a)):
        raise ValueError("actions contain NaN or inf")
    if np.any(lo > hi):
        raise ValueError("low must not exceed high")
    outside = int(np.sum((a < lo) | (a > hi)))
    at_bound = int(np.sum((a == lo) | (a == hi)))
    return ActionBounds(int(a.size), outside, at_bound)


@dataclass
class Rollout:
    """``T`` steps of ``N`` environments; every array has leading shape ``(T, N)``."""

    obs: Any
    actions: Any
    logp: Any
    values: Any
    next_values: Any
    rewards: Any
    terminated: Any
    truncated: Any
    valid: Any
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)


class RolloutCollector:
    """Steps ``envs`` with a policy and keeps the environments' state between rollouts.

    Parameters
    ----------
    envs
        A gymnasium vector environment (next-step autoreset, gymnasium's default).
    act
        ``act(obs) -> (actions, logp)`` on a float32 tensor of observations ``(N, ...)``;
        called under ``torch.no_grad``.
    value
        ``value(obs) -> values`` of shape ``(N,)``.
    seed
        Seed for the first ``reset``.
    device
        torch device of the tensors handed to ``act`` and ``value``.
    to_env
        Optional map from the sampled actions (numpy) to what the environments receive,
        e.g. clipping a Gaussian sample to the action bounds; the rollout stores the
        sampled actions, whose log-probabilities ``act`` returned.
    """

    def __init__(self, envs: Any, act: Callable[[Any], tuple[Any, Any]], value: Callable[[Any], Any],
                 seed: int, device: str = "cpu", to_env: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        import torch

        self.envs, self.act, self.value, self.device, self.to_env = envs, act, value, device, to_env
        obs, _ = envs.reset(seed=seed)
        self._obs = np.asarray(obs, dtype=np.float32)
        self._just_reset = np.zeros(envs.num_envs, dtype=bool)
        self._ep_return = np.zeros(envs.num_envs)
        self._ep_length = np.zeros(envs.num_envs, dtype=np.int64)
        self.total_steps = 0

    def collect(self, n_steps: int) -> Rollout:
        """Run ``n_steps`` steps of every environment; returns a :class:`Rollout` of torch tensors.

        Per-step bookkeeping is done in numpy and converted to tensors once at the end:
        the loop body is the hot path of every learner.
        """
        import torch

        N, dev = self.envs.num_envs, self.device
        obs = np.zeros((n_steps + 1, *self._obs.shape), dtype=np.float32)
        rewards = np.zeros((n_steps, N), dtype=np.float32)
        terminated = np.zeros((n_steps, N), dtype=np.float32)
        truncated = np.zeros((n_steps, N), dtype=np.float32)
        valid = np.zeros((n_steps, N), dtype=bool)
        actions, logps = [], []
        returns, lengths = [], []
        for t in range(n_steps):
            obs[t] = self._obs
            with torch.no_grad():
                action, logp = self.act(torch.from_numpy(self._obs).to(dev))
            actions.append(action)
            logps.append(logp)
            env_action = action.cpu().numpy()
            if self.to_env is not None:
                env_action = self.to_env(env_action)
            next_obs, reward, term, trunc, _ = self.envs.step(env_action)
            ok = ~self._just_reset
            valid[t] = ok
            rewards[t] = reward * ok
            terminated[t] = term & ok
            truncated[t] = trunc & ok
            self._ep_return += reward * ok
            self._ep_length += ok
            done = (term | trunc) & ok
            for i in np.flatnonzero(done):
                returns.append(float(self._ep_return[i]))
                lengths.append(int(self._ep_length[i]))
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0
            self._just_reset = done
            self._obs = np.asarray(next_obs, dtype=np.float32)
        obs[n_steps] = self._obs
        obs_t = torch.from_numpy(obs).to(dev)
        with torch.no_grad():
            all_values = self.value(obs_t.reshape(-1, *obs_t.shape[2:])).reshape(n_steps + 1, N)
        self.total_steps += int(valid.sum())
        as_t = lambda a: torch.from_numpy(a).to(dev)  # noqa: E731
        return Rollout(
            obs=obs_t[:-1], actions=torch.stack(actions), logp=torch.stack(logps),
            values=all_values[:-1], next_values=all_values[1:], rewards=as_t(rewards),
            terminated=as_t(terminated), truncated=as_t(truncated), valid=as_t(valid),
            episode_returns=returns, episode_lengths=lengths,
        )
