"""SB3's ``VecNormalize`` reproduced for gymnasium vector environments (the companion's side).

Stable-Baselines3's ``VecNormalize`` (what the RL Zoo's ``normalize: true`` builds) and
gymnasium's ``NormalizeObservation`` / ``NormalizeReward`` wrappers are not the same
scheme: gymnasium's discounted return is reset only on ``terminated`` (SB3's on any
``done``, terminated or truncated), and is reset *before* the step's reward is added (SB3
adds the reward, updates the statistics, then zeroes the return of finished episodes).
On Acrobot, where most early episodes are truncated, the two reward scales differed by
1.3-2.3x. :class:`VecNormalize` here is SB3's arithmetic, step by step:

* rewards: ``returns = returns * gamma + r``; the running variance of ``returns`` is
  updated with the batch; ``r / sqrt(var + epsilon)`` clipped to ``+-clip_reward``; then
  ``returns[dones] = 0`` with ``dones = terminated | truncated``;
* observations: the running mean/variance is updated with the batch, then
  ``(obs - mean) / sqrt(var + epsilon)`` clipped to ``+-clip_obs``; :meth:`frozen` gives
  the map with the statistics as they are now (evaluation);
* ``reset`` zeroes the returns and updates the observation statistics with the reset
  observations, as ``VecNormalize.reset`` does.

Gymnasium's vector environments autoreset on the *next* step: the step after an episode
ends only resets that copy (reward 0, its action ignored), and the observation returned
on the ending step is the episode's final one. SB3's ``DummyVecEnv`` resets within the
ending step and returns the new episode's first observation (the final one goes to
``info["terminal_observation"]``, normalised but never added to the statistics). So here

* a reset step's reward enters neither the return nor its statistics;
* a final observation is normalised but not added to the statistics; the reset
  observation that follows is added on the reset step.

Every reward and observation SB3 would add to its statistics is then added here too, and
nothing else; running statistics merge batches exactly (Chan et al.), so the statistics
agree with SB3's whenever the same steps have been seen. What remains different is
timing: a reset observation enters the statistics one step later than in SB3 (the final
observation of that episode is normalised without it). With every copy ending its
episodes on the same steps the two streams coincide exactly
(``tests/test_benchmark_suite.py`` checks this against SB3's ``VecNormalize``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


class RunningMeanStd:
    """Running mean and variance over batches (the parallel update SB3 uses; ``count``
    starts at ``epsilon`` with mean 0 and variance 1)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(
            batch
        )  # float32 observations averaged in float32, as SB3 does
        n = batch.shape[0]
        if n == 0:
            return
        b_mean, b_var = batch.mean(axis=0), batch.var(axis=0)
        delta = b_mean - self.mean
        tot = self.count + n
        self.mean = self.mean + delta * n / tot
        m2 = self.var * self.count + b_var * n + np.square(delta) * self.count * n / tot
        self.var = m2 / tot
        self.count = tot


class Normalizer:
    """The arithmetic of SB3's ``VecNormalize`` on numpy batches (no environment).

    :meth:`step` takes what the vector environment returned and two masks: ``valid``
    (rows that are real transitions; ``False`` for gymnasium's reset steps) and
    ``obs_stats`` (rows whose observation enters the statistics). With both all ``True``
    it is exactly ``VecNormalize.step_wait``.
    """

    def __init__(
        self,
        num_envs: int,
        obs_shape: tuple[int, ...],
        norm_obs: bool = True,
        norm_reward: bool = True,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        gamma: float = 0.99,
        epsilon: float = 1e-8,
    ) -> None:
        self.norm_obs, self.norm_reward = bool(norm_obs), bool(norm_reward)
        self.clip_obs, self.clip_reward = float(clip_obs), float(clip_reward)
        self.gamma, self.epsilon = float(gamma), float(epsilon)
        self.obs_rms = RunningMeanStd(tuple(obs_shape))
        self.ret_rms = RunningMeanStd(())
        self.returns = np.zeros(num_envs)
        self.training = True

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if not self.norm_obs:
            return np.asarray(obs)
        z = (np.asarray(obs) - self.obs_rms.mean) / np.sqrt(
            self.obs_rms.var + self.epsilon
        )
        return np.clip(z, -self.clip_obs, self.clip_obs)

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        if not self.norm_reward:
            return np.asarray(reward)
        r = np.asarray(reward) / np.sqrt(self.ret_rms.var + self.epsilon)
        return np.clip(r, -self.clip_reward, self.clip_reward)

    def reset(self, obs: np.ndarray) -> np.ndarray:
        """``VecNormalize.reset``: zero the returns, add the reset observations."""
        self.returns = np.zeros_like(self.returns)
        if self.training and self.norm_obs:
            self.obs_rms.update(obs)
        return self.normalize_obs(obs)

    def step(
        self,
        obs: np.ndarray,
        reward: np.ndarray,
        dones: np.ndarray,
        valid: np.ndarray | None = None,
        obs_stats: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``VecNormalize.step_wait`` on one batch; returns ``(normalised obs, normalised reward)``."""
        n = len(self.returns)
        valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
        obs_stats = (
            np.ones(n, bool) if obs_stats is None else np.asarray(obs_stats, bool)
        )
        dones = np.asarray(dones, bool) & valid
        obs = np.asarray(obs)
        if self.training and self.norm_obs:
            self.obs_rms.update(obs[obs_stats])
        out_obs = self.normalize_obs(obs)
        if self.training:
            r = np.asarray(reward, dtype=np.float64)
            self.returns[valid] = self.returns[valid] * self.gamma + r[valid]
            self.ret_rms.update(self.returns[valid])
        out_rew = self.normalize_reward(reward)
        self.returns[dones] = 0.0
        return out_obs, out_rew

    def frozen(self) -> Callable[[np.ndarray], np.ndarray]:
        """Observation normalisation with the statistics as they are now (for evaluation)."""
        if not self.norm_obs:
            return lambda o: o
        mean, std, c = (
            self.obs_rms.mean.copy(),
            np.sqrt(self.obs_rms.var + self.epsilon),
            self.clip_obs,
        )
        return lambda o: np.clip((o - mean) / std, -c, c)


def VecNormalize(envs: Any, **kwargs: Any) -> Any:
    """Wrap a gymnasium vector environment (next-step autoreset) in SB3's normalisation.

    ``kwargs``: ``norm_obs``, ``norm_reward``, ``clip_obs``, ``clip_reward``, ``gamma``,
    ``epsilon`` (SB3's names and defaults). The wrapper's ``normalizer`` is the
    :class:`Normalizer`; ``normalizer.frozen()`` is the evaluation-time map.
    """
    import gymnasium as gym

    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        raise ValueError(f"expected next-step autoreset, got {mode!r}")

    class _VecNormalize(gym.vector.VectorWrapper):
        def __init__(self, env: Any) -> None:
            super().__init__(env)
            shape = env.single_observation_space.shape
            self.normalizer = Normalizer(env.num_envs, shape, **kwargs)
            self._reset_step = np.zeros(env.num_envs, dtype=bool)

        @property
        def obs_rms(self) -> RunningMeanStd:
            return self.normalizer.obs_rms

        def reset(self, *, seed: Any = None, options: Any = None) -> Any:
            obs, info = self.env.reset(seed=seed, options=options)
            self._reset_step[:] = False
            out = self.normalizer.reset(obs)
            return out.astype(np.asarray(obs).dtype, copy=False), info

        def step(self, actions: Any) -> Any:
            obs, reward, term, trunc, info = self.env.step(actions)
            valid = ~self._reset_step
            dones = (np.asarray(term) | np.asarray(trunc)) & valid
            # a final observation is not added (SB3 keeps it out of the statistics); the
            # reset observation on the next (reset) step is
            out_obs, out_rew = self.normalizer.step(
                obs, reward, dones, valid, obs_stats=~dones
            )
            self._reset_step = dones
            out_obs = out_obs.astype(np.asarray(obs).dtype, copy=False)
            return out_obs, out_rew.astype(np.float64, copy=False), term, trunc, info

    return _VecNormalize(envs)
