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

__all__ = [
    "clipped_surrogate",
    "clip_table_mismatches",
    "approx_kl",
    "ppo_loss",
    "MinibatchLoss",
    "clip_gradients",
    "GradClip",
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


def clip_table_mismatches(objective: Callable[[Any, Any, Any], Any]) -> list[str]:
    """Compare a symbolic clipped objective with the six-case table of Chapter 5; return the mismatches.

    ``objective(r, A, eps)`` builds a SymPy expression of the ratio ``r``, the advantage
    ``A`` and :math:`\\epsilon`. For each sign of :math:`A = \\pm a` (:math:`a > 0`) and each
    region of ``r`` (below, inside, above :math:`[1-\\epsilon, 1+\\epsilon]`, each written
    through positive symbols so the check holds for every point of the region and every
    :math:`\\epsilon > 0`), the value and :math:`\\partial/\\partial r` must equal the table's
    and the objective must not exceed :math:`rA`. An empty list means every case holds;
    each entry names a failing case. A misplaced bracket (clipping :math:`rA` instead of
    :math:`r`) or ``max`` instead of ``min`` fails.
    """
    import sympy as sp

    r = sp.Symbol("r", positive=True)
    eps, a, k, u = sp.symbols("epsilon a k u", positive=True)
    regions = {"r < 1-eps": 1 - eps - k, "inside": 1 - eps + 2 * eps * u / (1 + u),
               "r > 1+eps": 1 + eps + k}
    table = {  # (sign of A, region): (value as a function of r, d/dr)
        (+1, "r < 1-eps"): (lambda rv: rv * a, a),
        (+1, "inside"): (lambda rv: rv * a, a),
        (+1, "r > 1+eps"): (lambda rv: (1 + eps) * a, 0),
        (-1, "r < 1-eps"): (lambda rv: -(1 - eps) * a, 0),
        (-1, "inside"): (lambda rv: -rv * a, -a),
        (-1, "r > 1+eps"): (lambda rv: -rv * a, -a),
    }
    bad = []
    for (sign, region), (value, grad) in table.items():
        rv = regions[region]
        expr = objective(r, sign * a, eps)
        case = f"A {'>' if sign > 0 else '<'} 0, {region}"
        if sp.simplify(expr.subs(r, rv) - value(rv)) != 0:
            bad.append(f"value, {case}")
        if sp.simplify(sp.diff(expr, r).subs(r, rv) - grad) != 0:
            bad.append(f"gradient, {case}")
        if not sp.simplify((r * sign * a - expr).subs(r, rv)).is_nonnegative:
            bad.append(f"not pessimistic, {case}")
    return bad


@dataclass
class PPOConfig:
    """Settings of :func:`train_ppo`. Each field is one of the implementation details of Chapter 5.

    Every field is validated when the config is built; a bad value raises ``ValueError``
    naming the field.
    """

    total_timesteps: int = 100_000
    """Environment steps to train for (summed over environments); at least one rollout,
    ``num_envs * n_steps``. Training runs ``total_timesteps // (num_envs * n_steps)``
    updates."""
    num_envs: int = 8
    """Environments stepped together through gymnasium's vector API."""
    n_steps: int = 64
    """Steps per environment per rollout; the batch has ``num_envs * n_steps`` transitions."""
    n_epochs: int = 6
    """Passes over each batch (:math:`K` in the paper). The defaults of this config were
    tuned on CartPole-v1, on seeds 5-14 (not the seeds the book and the benchmark use)."""
    n_minibatches: int = 4
    """Minibatches per epoch; must divide ``num_envs * n_steps``."""
    learning_rate: float = 2.5e-3
    """Adam step size :math:`\\eta` (typical: 3e-4 to 3e-3)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    adam_eps: float = 1e-5
    """Adam's :math:`\\epsilon` (1e-5 as in the reference implementation, not PyTorch's 1e-8)."""
    gamma: float = 0.98
    """Discount :math:`\\gamma`, in [0, 1]."""
    gae_lambda: float = 0.8
    """GAE :math:`\\lambda` (Chapter 6), in [0, 1]."""
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
    """Weight :math:`c_1 \\ge 0` of the value loss."""
    ent_coef: float = 0.0
    """Weight :math:`c_2 \\ge 0` of the entropy bonus (0 to 0.01)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clipping threshold, positive (``inf`` disables clipping)."""
    clip_grad_separately: bool = False
    """``False`` (the reference implementations): one clip on the norm of the actor's and
    the critic's gradients together, so a large critic gradient also scales the actor's
    down. ``True``: clip the actor's gradient (with ``log_std``) and the critic's
    gradient separately, each to ``max_grad_norm``."""
    target_kl: float | None = None
    """Stop the epochs of an update early once KL(old || new) of the current policy,
    estimated on the whole batch after an epoch, exceeds this (``None``: never). This is
    the quantity recorded in :attr:`PPOHistory.approx_kl`; SB3 and CleanRL instead stop
    on the per-minibatch estimate taken *before* a gradient step."""
    ortho_init: bool = True
    """Orthogonal initialisation: gain sqrt(2) for hidden layers, 0.01 for the policy head, 1 for the value head."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden tanh layers of the actor and of the critic (separate networks)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of a Gaussian policy (continuous actions)."""
    device: str = "cpu"
    """torch device."""

    def __post_init__(self) -> None:
        for name in ("total_timesteps", "num_envs", "n_steps", "n_epochs", "n_minibatches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        batch = self.num_envs * self.n_steps
        if batch % self.n_minibatches:
            raise ValueError(
                f"n_minibatches ({self.n_minibatches}) must divide num_envs * n_steps = {batch}"
            )
        if self.total_timesteps < batch:
            raise ValueError(
                f"total_timesteps ({self.total_timesteps}) must be at least one rollout, "
                f"num_envs * n_steps = {batch}"
            )
        for name in ("anneal_lr", "anneal_clip", "clip", "norm_adv", "clip_vloss",
                     "clip_grad_separately", "ortho_init"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if np.isnan(value):
                raise ValueError(f"{name} must not be NaN")
            return float(value)

        for name in ("learning_rate", "adam_eps", "clip_eps"):
            v = number(name)
            if not (0 < v < np.inf):
                raise ValueError(f"{name} must be positive and finite, got {v!r}")
        for name in ("gamma", "gae_lambda"):
            v = number(name)
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {v!r}")
        for name in ("vf_coef", "ent_coef"):
            v = number(name)
            if not (0 <= v < np.inf):
                raise ValueError(f"{name} must be non-negative and finite, got {v!r}")
        if not number("max_grad_norm") > 0:
            raise ValueError(
                f"max_grad_norm must be positive (inf disables clipping), got {self.max_grad_norm!r}"
            )
        if self.target_kl is not None:
            v = number("target_kl")
            if not (0 < v < np.inf):
                raise ValueError(f"target_kl must be None or positive and finite, got {v!r}")
        if not isinstance(self.hidden, tuple) or not self.hidden or any(
            isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in self.hidden
        ):
            raise ValueError(f"hidden must be a non-empty tuple of positive integers, got {self.hidden!r}")
        if not np.isfinite(number("log_std_init")):
            raise ValueError(f"log_std_init must be finite, got {self.log_std_init!r}")
        if not isinstance(self.device, str):
            raise ValueError(f"device must be a string, got {self.device!r}")


@dataclass
class PPOHistory:
    """What :func:`train_ppo` records: one entry per update, and every finished episode.

    ``policy_loss``, ``value_loss`` and ``entropy`` are those of the update's *last
    minibatch*, computed before its gradient step (so ``entropy`` is the mean entropy of
    the policy just before the update's final step, on that minibatch's valid states,
    not of the updated policy on the whole batch).

    ``approx_kl`` is :math:`\\widehat{KL}(\\pi_{old} \\| \\pi_{new})`, the estimator
    :math:`\\hat{\\mathbb E}[(r - 1) - \\log r]` of the policy *after* the update on
    that update's whole batch: the quantity comparable with TRPO's :math:`\\delta`.
    ``minibatch_kl`` keeps, per update, the same estimator on each minibatch just
    *before* its gradient step (what SB3 and CleanRL log and stop on); its first entry is 0.
    ``grad_clip_fraction`` is the fraction of the update's gradient steps in which the
    actor's gradient was scaled down, ``actor_grad_scale`` the mean factor it was
    multiplied by, ``actor_grad_norm`` and ``critic_grad_norm`` the mean norms before
    clipping (the critic's includes ``vf_coef``).
    """

    env_steps: list[int] = field(default_factory=list)
    policy_loss: list[float] = field(default_factory=list)
    value_loss: list[float] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    approx_kl: list[float] = field(default_factory=list)
    minibatch_kl: list[list[float]] = field(default_factory=list)
    clip_fraction: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    grad_clip_fraction: list[float] = field(default_factory=list)
    actor_grad_scale: list[float] = field(default_factory=list)
    actor_grad_norm: list[float] = field(default_factory=list)
    critic_grad_norm: list[float] = field(default_factory=list)
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
        self.actor_parameters = list(self.actor.parameters())
        self.critic_parameters = list(self.critic.parameters())
        if not self.discrete:
            self.log_std = torch.nn.Parameter(torch.full((n_out,), config.log_std_init, device=config.device))
            self.actor_parameters.append(self.log_std)
            self.low = torch.as_tensor(action_space.low, dtype=torch.float32, device=config.device)
            self.high = torch.as_tensor(action_space.high, dtype=torch.float32, device=config.device)
        self.parameters = self.actor_parameters + self.critic_parameters

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


def approx_kl(logp_new: Any, logp_old: Any, weights: Any | None = None) -> Any:
    """:math:`\\widehat{KL}(\\pi_{old} \\| \\pi_{new}) = \\hat{\\mathbb E}[(r - 1) - \\log r]`, :math:`r = \\pi_{new}/\\pi_{old}`.

    From log-probabilities of actions sampled from :math:`\\pi_{old}` (Chapter 5): unbiased,
    since :math:`\\mathbb E_{old}[r] = 1`, and non-negative term by term, since
    :math:`\\log x \\le x - 1`. ``weights`` (0/1, e.g. the rollout's ``valid``) give a
    weighted mean.
    """
    import torch

    log_r = logp_new - logp_old
    terms = torch.expm1(log_r) - log_r
    if weights is None:
        return terms.mean()
    return (terms * weights).sum() / weights.sum().clamp(min=1.0)


@dataclass
class MinibatchLoss:
    """The terms of the PPO loss on one minibatch (tensors; ``loss`` carries the graph)."""

    loss: Any
    policy_loss: Any
    value_loss: Any
    entropy: Any
    approx_kl: Any
    clip_fraction: Any


def ppo_loss(
    agent: "Agent",
    obs: Any,
    actions: Any,
    logp_old: Any,
    advantages: Any,
    returns: Any,
    values_old: Any,
    valid: Any,
    config: PPOConfig,
    clip_eps: float,
) -> MinibatchLoss:
    """The PPO loss of one minibatch, :math:`-L^{CLIP} + c_1 L^{V} - c_2 H` (Chapter 5).

    Every mean is over the *valid* samples only (``valid`` is 0 for the autoreset steps of
    a gymnasium vector environment, whose action was ignored): the loss of a minibatch
    equals the loss of the same minibatch with its invalid rows deleted. With
    ``config.norm_adv`` the advantages are normalised with the mean and standard deviation
    of the valid samples.
    """
    w = valid.float()
    n_valid = w.sum().clamp(min=1.0)
    logp, entropy = agent.log_prob_entropy(obs, actions)
    log_ratio = logp - logp_old
    ratio = log_ratio.exp()
    import torch

    with torch.no_grad():
        kl = approx_kl(logp, logp_old, w)
        clip_frac = (((ratio - 1).abs() > clip_eps).float() * w).sum() / n_valid
    adv = advantages
    if config.norm_adv:
        mean = (adv * w).sum() / n_valid
        std = (((adv - mean) ** 2 * w).sum() / n_valid).sqrt()
        adv = (adv - mean) / (std + 1e-8)
    surrogate = clipped_surrogate(ratio, adv, clip_eps) if config.clip else ratio * adv
    pg_loss = -(surrogate * w).sum() / n_valid
    new_value = agent.value(obs)
    v_err = (new_value - returns) ** 2
    if config.clip_vloss:
        v_clipped = values_old + torch.clamp(new_value - values_old, -clip_eps, clip_eps)
        v_err = torch.maximum(v_err, (v_clipped - returns) ** 2)
    v_loss = 0.5 * (v_err * w).sum() / n_valid
    ent = (entropy * w).sum() / n_valid
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
    return MinibatchLoss(loss, pg_loss, v_loss, ent, kl, clip_frac)


@dataclass
class GradClip:
    """Norms before clipping and the factors applied by :func:`clip_gradients`."""

    actor_norm: float
    critic_norm: float
    actor_scale: float
    critic_scale: float


def clip_gradients(actor_params: list, critic_params: list, max_norm: float, separately: bool) -> GradClip:
    """Clip gradients in place; return the norms and the scale factors applied.

    ``separately=False`` is the usual global clip (``torch.nn.utils.clip_grad_norm_`` on
    all parameters): both gradients are multiplied by
    :math:`\\min(1, c / \\|(g_{actor}, g_{critic})\\|)`, so a large critic gradient shrinks
    the actor's. ``separately=True`` multiplies each by :math:`\\min(1, c / \\|g\\|)` of
    its own norm.
    """
    import torch

    def norm(params: list) -> Any:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))

    a, c = norm(actor_params), norm(critic_params)
    if separately:
        sa = torch.clamp(max_norm / (a + 1e-6), max=1.0)
        sc = torch.clamp(max_norm / (c + 1e-6), max=1.0)
    else:
        sa = sc = torch.clamp(max_norm / (torch.sqrt(a**2 + c**2) + 1e-6), max=1.0)
    for params, scale in ((actor_params, sa), (critic_params, sc)):
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return GradClip(float(a), float(c), float(sa), float(sc))


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


def _batch_kl(agent: Agent, obs: Any, actions: Any, logp_old: Any, valid: Any) -> float:
    """KL(old || current policy) estimated on a whole batch (valid steps only)."""
    import torch

    with torch.no_grad():
        logp, _ = agent.log_prob_entropy(obs, actions)
        return float(approx_kl(logp, logp_old, valid))


def train_ppo(
    env_id: str,
    config: PPOConfig,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[Agent, int], bool] | None = None,
    wrap_env: Callable[[Any], Any] | None = None,
    on_rollout: Callable[[Agent, Any], None] | None = None,
) -> tuple[Agent, PPOHistory]:
    """Train PPO on a gymnasium environment; returns ``(agent, history)``.

    One loop, as in Chapter 5: collect ``num_envs * n_steps`` transitions (gymnasium
    vector API, truncation bootstrapped, reset steps masked); GAE advantages and
    TD(:math:`\\lambda`) returns; then ``n_epochs`` passes of ``n_minibatches`` Adam steps on
    :func:`ppo_loss`, with per-minibatch advantage normalisation, gradient clipping
    (:func:`clip_gradients`, global or per network), learning-rate annealing, and
    :math:`\\widehat{KL}(\\pi_{old}\\|\\pi_{new})` measured on the whole batch after the
    update (and after each epoch when ``target_kl`` is set, to stop early).
    ``callback(agent, env_steps)`` runs after every update; returning ``True`` stops
    training (the benchmark uses it to evaluate outside the timed region).
    ``wrap_env`` maps the vector environment to a wrapper of it (e.g.
    :class:`companion.rollout.RecordActions`, to see what the environment receives).
    ``on_rollout(agent, rollout)`` runs after each collection, before the update: the
    agent is still the policy that sampled the rollout's actions.
    Results are the same whatever torch's thread count, up to floating-point reordering.
    """
    import torch
    from companion.progress import tqdm

    from companion.gae import gae
    from companion.rollout import RolloutCollector, make_vector_env

    if not isinstance(config, PPOConfig):
        raise ValueError(f"config must be a PPOConfig, got {type(config).__name__}")
    batch_size = config.num_envs * config.n_steps

    torch.manual_seed(seed)
    dev = config.device
    envs = make_vector_env(env_id, config.num_envs, seed)
    if wrap_env is not None:
        envs = wrap_env(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    agent = Agent(obs_dim, envs.single_action_space, config)
    optimizer = torch.optim.Adam(agent.parameters, lr=config.learning_rate, eps=config.adam_eps, fused=True)
    gen = torch.Generator(device=dev).manual_seed(seed)

    def act(obs: Any) -> tuple[Any, Any]:
        return agent.sample(obs, gen)

    to_env = None if agent.discrete else (lambda a: np.clip(a, envs.single_action_space.low, envs.single_action_space.high))
    collector = RolloutCollector(envs, act, agent.value, seed, dev, to_env=to_env)
    history = PPOHistory()
    n_updates = config.total_timesteps // batch_size
    mb_size = batch_size // config.n_minibatches
    start = time.perf_counter()
    bar = tqdm(range(n_updates), desc=f"PPO {env_id}", disable=not progress)
    for update in bar:
        frac = 1.0 - update / n_updates                       # 1 -> 1/n_updates
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = frac * config.learning_rate
        clip_eps = frac * config.clip_eps if config.anneal_clip else config.clip_eps

        ro = collector.collect(config.n_steps)
        if on_rollout is not None:
            on_rollout(agent, ro)
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

        mb_kls, clipfracs, clips = [], [], []
        epochs_run = 0
        for _epoch in range(config.n_epochs):
            perm = torch.randperm(batch_size, generator=gen, device=dev)
            for mb in perm.split(mb_size):
                out = ppo_loss(agent, b_obs[mb], b_actions[mb], b_logp[mb], b_adv[mb], b_returns[mb],
                               b_values[mb], b_valid[mb], config, clip_eps)
                mb_kls.append(float(out.approx_kl))
                clipfracs.append(float(out.clip_fraction))
                optimizer.zero_grad()
                out.loss.backward()
                clips.append(clip_gradients(agent.actor_parameters, agent.critic_parameters,
                                            config.max_grad_norm, config.clip_grad_separately))
                optimizer.step()
            epochs_run += 1
            if (config.target_kl is not None and _epoch < config.n_epochs - 1
                    and _batch_kl(agent, b_obs, b_actions, b_logp, b_valid) > config.target_kl):
                break

        history.env_steps.append(collector.total_steps)
        history.policy_loss.append(out.policy_loss.item())
        history.value_loss.append(out.value_loss.item())
        history.entropy.append(out.entropy.item())
        history.approx_kl.append(_batch_kl(agent, b_obs, b_actions, b_logp, b_valid))
        history.minibatch_kl.append(mb_kls)
        history.clip_fraction.append(float(np.mean(clipfracs)))
        history.epochs.append(epochs_run)
        history.grad_clip_fraction.append(float(np.mean([c.actor_scale < 1.0 for c in clips])))
        history.actor_grad_scale.append(float(np.mean([c.actor_scale for c in clips])))
        history.actor_grad_norm.append(float(np.mean([c.actor_norm for c in clips])))
        history.critic_grad_norm.append(float(np.mean([c.critic_norm for c in clips])))
        history.wall_time.append(time.perf_counter() - start)
        if history.episode_returns:
            bar.set_postfix(ret=f"{np.mean(history.episode_returns[-20:]):.1f}")
        if callback is not None and callback(agent, collector.total_steps):
            break
    envs.close()
    return agent, history
