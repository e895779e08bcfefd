"""Proximal policy optimisation (Chapter 5, ``book/05_ppo.md``; Schulman et al. 2017).

The clipped surrogate as a pure function, and a single-loop PPO learner in the style of
CleanRL's ``ppo.py``: every implementation detail is a named field of :class:`PPOConfig`
and a visible line of :func:`train_ppo`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from companion._validate import check_positive_int

__all__ = [
    "clipped_surrogate",
    "PPOConfig",
    "PPOHistory",
    "Agent",
    "evaluate_policy",
    "train_ppo",
]


def clipped_surrogate(ratio: Any, advantages: Any, clip_eps: float) -> Any:
    """Per-sample clipped surrogate :math:`\\min(r A, \\operatorname{clip}(r, 1-\\epsilon, 1+\\epsilon) A)` (Chapter 5, eq. ``ppo-clip``).

    ``ratio`` = :math:`r_t(\\theta) = \\pi_\\theta(a_t|s_t) / \\pi_{old}(a_t|s_t)` and ``advantages``
    are torch tensors of the same shape; the result has that shape (PPO maximises its
    mean). ``clip_eps`` must be positive.
    """
    import torch

    if not isinstance(ratio, torch.Tensor) or not isinstance(advantages, torch.Tensor):
        raise ValueError("ratio and advantages must be torch tensors")
    if ratio.shape != advantages.shape:
        raise ValueError(f"ratio {tuple(ratio.shape)} and advantages {tuple(advantages.shape)} must have the same shape")
    if not clip_eps > 0:
        raise ValueError(f"clip_eps must be positive, got {clip_eps!r}")
    if not (torch.all(torch.isfinite(ratio)) and torch.all(torch.isfinite(advantages))):
        raise ValueError("ratio and advantages must be finite")
    if torch.any(ratio < 0):
        raise ValueError("ratio must be non-negative (it is a ratio of probabilities)")
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    return torch.minimum(unclipped, clipped)


@dataclass
class PPOConfig:
    """Settings of :func:`train_ppo`. Each field is one of the implementation details of Chapter 5."""

    total_timesteps: int = 100_000
    """Environment steps to train for (summed over environments)."""
    num_envs: int = 8
    """Environments stepped together through gymnasium's vector API."""
    n_steps: int = 64
    """Steps per environment per rollout; the batch has ``num_envs * n_steps`` transitions."""
    n_epochs: int = 6
    """Passes over each batch (:math:`K` in the paper; the default was chosen on seeds 5-14, not the benchmark's 0-4)."""
    n_minibatches: int = 4
    """Minibatches per epoch."""
    learning_rate: float = 2.5e-3
    """Adam step size :math:`\\eta` (typical: 3e-4 to 3e-3)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    adam_eps: float = 1e-5
    """Adam's :math:`\\epsilon` (1e-5 as in the reference implementation, not PyTorch's 1e-8)."""
    gamma: float = 0.98
    """Discount :math:`\\gamma`."""
    gae_lambda: float = 0.8
    """GAE :math:`\\lambda` (Chapter 6)."""
    clip_eps: float = 0.2
    """Clipping range :math:`\\epsilon` of the ratio (typical: 0.1 to 0.3)."""
    anneal_clip: bool = False
    """Decay ``clip_eps`` linearly to 0 over training."""
    clip: bool = True
    """Use the clipped surrogate; ``False`` gives the plain importance-sampled surrogate (for ablations)."""
    norm_adv: bool = True
    """Normalise advantages to zero mean and unit standard deviation within each minibatch."""
    clip_vloss: bool = False
    """Clip the value update around the old values with ``clip_eps``, as the reference implementation does."""
    vf_coef: float = 0.5
    """Weight :math:`c_1` of the value loss."""
    ent_coef: float = 0.0
    """Weight :math:`c_2` of the entropy bonus (0 to 0.01)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clipping threshold (``inf`` to disable)."""
    target_kl: float | None = None
    """Stop the epochs of an update early once the approximate KL exceeds this (``None``: never)."""
    ortho_init: bool = True
    """Orthogonal initialisation: gain sqrt(2) for hidden layers, 0.01 for the policy head, 1 for the value head."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden tanh layers of the actor and of the critic (separate networks)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy (continuous actions)."""
    device: str = "cpu"
    """torch device."""


@dataclass
class PPOHistory:
    """What :func:`train_ppo` records: one entry per update, and every finished episode."""

    env_steps: list[int] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    value_loss: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    approx_kl: list[float] = field(default_factory=list)
    clip_fraction: list[float] = field(default_factory=list)
    episode_steps: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)


class Agent:
    """Actor (categorical or diagonal Gaussian policy) and critic, as two separate MLPs."""

    def __init__(self, obs_dim: int, action_space: Any, config: PPOConfig) -> None:
        import gymnasium as gym
        import torch

        from companion.nets import mlp

        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(action_space, gym.spaces.Box):
            raise ValueError(f"unsupported action space {action_space}")
        n_out = int(action_space.n) if self.discrete else int(np.prod(action_space.shape))
        h = list(config.hidden)
        self.actor = mlp([obs_dim, *h, n_out], config.ortho_init, out_gain=0.01).to(config.device)
        self.critic = mlp([obs_dim, *h, 1], config.ortho_init, out_gain=1.0).to(config.device)
        params = list(self.actor.parameters()) + list(self.critic.parameters())
        if not self.discrete:
            self.log_std = torch.nn.Parameter(torch.full((n_out,), config.log_std_init, device=config.device))
            params.append(self.log_std)
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32, device=config.device)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32, device=config.device)
        self.parameters = params

    def distribution(self, obs: Any) -> Any:
        """The action distribution: categorical over logits, or a diagonal Gaussian."""
        import torch

        out = self.actor(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=out, validate_args=False)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def sample(self, obs: Any, generator: Any) -> tuple[Any, Any]:
        """Sample actions and their log-probabilities (no distribution objects: this runs every step)."""
        import torch

        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            a = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
            return a, logp_all.gather(1, a[:, None]).squeeze(1)
        a = out + self.log_std.exp() * torch.randn(out.shape, generator=generator, device=out.device)
        return a, self._gaussian_logp(a, out)

    def _gaussian_logp(self, actions: Any, mean: Any) -> Any:
        """:math:`\\sum_i \\log \\mathcal N(a_i; \\mu_i, \\sigma_i^2)` of the diagonal Gaussian policy."""
        z = (actions - mean) / self.log_std.exp()
        return (-0.5 * z**2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

    def log_prob_entropy(self, obs: Any, actions: Any) -> tuple[Any, Any]:
        """:math:`\\log \\pi_\\theta(a|s)` of the given actions and the entropy of :math:`\\pi_\\theta(\\cdot|s)`."""
        import torch

        out = self.actor(obs)
        if self.discrete:
            logp_all = torch.log_softmax(out, -1)
            return logp_all.gather(1, actions.long()[:, None]).squeeze(1), -(logp_all.exp() * logp_all).sum(-1)
        logp = self._gaussian_logp(actions, out)
        entropy = (0.5 + 0.5 * np.log(2 * np.pi) + self.log_std).sum().expand(out.shape[0])
        return logp, entropy

    def value(self, obs: Any) -> Any:
        return self.critic(obs).squeeze(-1)

    def greedy(self, obs: Any) -> Any:
        """The deterministic policy used for evaluation: most likely action, or the Gaussian mean (clipped)."""
        import torch

        out = self.actor(obs)
        return out.argmax(-1) if self.discrete else torch.clamp(out, self.low, self.high)


def evaluate_policy(act: Callable[[np.ndarray], np.ndarray], env_id: str, n_episodes: int = 10, seed: int = 10_000) -> float:
    """Mean return of ``n_episodes`` episodes played side by side with ``act(obs_batch) -> actions``."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=n_episodes, vectorization_mode="sync")
    obs, _ = envs.reset(seed=seed)
    returns = np.zeros(n_episodes)
    running = np.ones(n_episodes, dtype=bool)
    while running.any():
        obs, reward, term, trunc, _ = envs.step(act(obs))
        returns += reward * running
        running &= ~(term | trunc)
    envs.close()
    return float(returns.mean())


def train_ppo(
    env_id: str,
    config: PPOConfig,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[Agent, int], bool] | None = None,
) -> tuple[Agent, PPOHistory]:
    """Train PPO on a gymnasium environment; returns ``(agent, history)``.

    One loop, as in Chapter 5: collect ``num_envs * n_steps`` transitions (gymnasium
    vector API, truncation bootstrapped, reset steps masked); GAE advantages and
    TD(:math:`\\lambda`) returns; then ``n_epochs`` passes of ``n_minibatches`` Adam steps on
    :math:`-\\text{mean}(\\text{clipped surrogate}) + c_1 \\cdot \\text{value loss} - c_2 \\cdot \\text{entropy}`,
    with per-minibatch advantage normalisation, global gradient clipping, learning-rate
    annealing and approximate-KL monitoring (:math:`\\widehat{KL} = \\mathbb E[(r - 1) - \\log r]`).
    ``callback(agent, env_steps)`` runs after every update; returning ``True`` stops
    training (the benchmark uses it to evaluate outside the timed region).
    """
    import gymnasium as gym
    import torch
    from tqdm.auto import tqdm

    from companion.gae import gae
    from companion.rollout import RolloutCollector, make_vector_env

    check_positive_int(config.total_timesteps, "total_timesteps")
    for name in ("num_envs", "n_steps", "n_epochs", "n_minibatches"):
        check_positive_int(getattr(config, name), name)
    if not config.clip_eps > 0:
        raise ValueError(f"clip_eps must be positive, got {config.clip_eps}")
    batch_size = config.num_envs * config.n_steps
    if batch_size % config.n_minibatches:
        raise ValueError(f"num_envs * n_steps = {batch_size} must be divisible by n_minibatches")

    torch.manual_seed(seed)
    dev = config.device
    envs = make_vector_env(env_id, config.num_envs, seed)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(obs_dim, envs.single_action_space, config)
    optimizer = torch.optim.Adam(agent.parameters, lr=config.learning_rate, eps=config.adam_eps, fused=True)
    gen = torch.Generator(device=dev).manual_seed(seed)

    def act(obs: Any) -> tuple[Any, Any]:
        return agent.sample(obs, gen)

    to_env = None if agent.discrete else (lambda a: np.clip(a, envs.single_action_space.low, envs.single_action_space.high))
    collector = RolloutCollector(envs, act, agent.value, seed, dev, to_env=to_env)
    history = PPOHistory()
    n_updates = max(1, config.total_timesteps // batch_size)
    mb_size = batch_size // config.n_minibatches
    start = time.perf_counter()
    bar = tqdm(range(n_updates), desc=f"PPO {env_id}", disable=not progress)
    for update in bar:
        frac = 1.0 - update / n_updates                       # 1 -> 1/n_updates
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = frac * config.learning_rate
        clip_eps = frac * config.clip_eps if config.anneal_clip else config.clip_eps

        ro = collector.collect(config.n_steps)
        for ret in ro.episode_returns:
            history.episode_returns.append(ret)
            history.episode_steps.append(collector.total_steps)
        advantages = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated,
                         config.gamma, config.gae_lambda)
        returns = advantages + ro.values

        b_obs = ro.obs.reshape(batch_size, -1)
        b_actions = ro.actions.reshape(batch_size, *ro.actions.shape[2:])
        b_logp, b_adv = ro.logp.reshape(-1), advantages.reshape(-1)
        b_returns, b_values, b_valid = returns.reshape(-1), ro.values.reshape(-1), ro.valid.reshape(-1).float()

        kls, clipfracs = [], []
        for _epoch in range(config.n_epochs):
            perm = torch.randperm(batch_size, generator=gen, device=dev)
            for mb in perm.split(mb_size):
                w = b_valid[mb]                                      # 0 for autoreset steps
                n_valid = w.sum().clamp(min=1.0)
                logp, entropy = agent.log_prob_entropy(b_obs[mb], b_actions[mb])
                log_ratio = logp - b_logp[mb]
                ratio = log_ratio.exp()
                with torch.no_grad():
                    kls.append(float((((ratio - 1) - log_ratio) * w).sum() / n_valid))
                    clipfracs.append(float((((ratio - 1).abs() > clip_eps).float() * w).sum() / n_valid))
                adv = b_adv[mb]
                if config.norm_adv:
                    mean = (adv * w).sum() / n_valid
                    std = (((adv - mean) ** 2 * w).sum() / n_valid).sqrt()
                    adv = (adv - mean) / (std + 1e-8)
                if config.clip:
                    surrogate = clipped_surrogate(ratio, adv, clip_eps)
                else:
                    surrogate = ratio * adv
                pg_loss = -(surrogate * w).sum() / n_valid

                new_value = agent.value(b_obs[mb])
                v_err = (new_value - b_returns[mb]) ** 2
                if config.clip_vloss:
                    v_clipped = b_values[mb] + torch.clamp(new_value - b_values[mb], -clip_eps, clip_eps)
                    v_err = torch.maximum(v_err, (v_clipped - b_returns[mb]) ** 2)
                v_loss = 0.5 * (v_err * w).sum() / n_valid
                ent = (entropy * w).sum() / n_valid

                loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters, config.max_grad_norm)
                optimizer.step()
            if config.target_kl is not None and np.mean(kls[-config.n_minibatches:]) > config.target_kl:
                break

        history.env_steps.append(collector.total_steps)
        history.policy_loss.append(pg_loss.item())
        history.value_loss.append(v_loss.item())
        history.entropy.append(ent.item())
        history.approx_kl.append(float(np.mean(kls)))
        history.clip_fraction.append(float(np.mean(clipfracs)))
        history.wall_time.append(time.perf_counter() - start)
        if history.episode_returns:
            bar.set_postfix(ret=f"{np.mean(history.episode_returns[-20:]):.1f}")
        if callback is not None and callback(agent, collector.total_steps):
            break
    envs.close()
    return agent, history
