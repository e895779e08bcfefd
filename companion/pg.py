"""Policy gradients (Chapter 2, ``book/02_policy_gradient.md``).

Tabular pieces, exact and sampled, for a softmax policy
:math:`\\pi_\\theta(a|s) = e^{\\theta_{sa}} / \\sum_b e^{\\theta_{sb}}`, and a REINFORCE learner
for gymnasium environments with discrete actions.

The estimators of :math:`\\nabla_\\theta J` for one trajectory :math:`(s_t, a_t, r_t)_{t<T}`
are all of the form :math:`\\hat g = \\sum_t w_t \\nabla_\\theta \\log \\pi_\\theta(a_t|s_t)` with

* full return (eq. ``pg-full``): :math:`w_t = R(\\tau) = \\sum_{j} \\gamma^j r_j`;
* reward-to-go (eq. ``pg-rtg``): :math:`w_t = \\gamma^t \\hat R_t`, :math:`\\hat R_t = \\sum_{j \\ge t} \\gamma^{j-t} r_j`;
* with a baseline (eq. ``pg-baseline``): :math:`w_t = \\gamma^t (\\hat R_t - b_t)`, ``b_t`` depending
  on the state (and time) but not on the action :math:`a_t`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.signal import lfilter

from companion._validate import as_array, check_gamma, check_positive_int
from companion.mdp import TabularMDP, advantage_function, check_policy, visitation

__all__ = [
    "reward_to_go",
    "softmax_policy",
    "log_softmax_policy",
    "score",
    "exact_gradient",
    "finite_horizon_return",
    "enumerate_trajectories",
    "step_weights",
    "reinforce_gradient",
    "ESTIMATORS",
    "ReinforceConfig",
    "train_reinforce",
]

ESTIMATORS = ("full_return", "reward_to_go")


def reward_to_go(rewards: Any, gamma: float = 1.0) -> np.ndarray:
    """Discounted reward-to-go :math:`\\hat R_t = \\sum_{j \\ge t} \\gamma^{j-t} r_j` along axis 0.

    ``rewards`` has shape ``(T,)`` or ``(T, N)`` (``N`` trajectories of equal length side by
    side). Computed in linear time by the backward recursion
    :math:`\\hat R_t = r_t + \\gamma \\hat R_{t+1}`, run as a linear filter in C
    (``scipy.signal.lfilter``), not as a Python loop. ``gamma`` may be 1 here.
    """
    r = as_array(rewards, "rewards")
    if r.ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (T,) or (T, N), got {r.shape}")
    g = check_gamma(gamma, allow_one=True)
    if r.shape[0] == 0:
        return r.copy()
    return lfilter([1.0], [1.0, -g], r[::-1], axis=0)[::-1].copy()


def softmax_policy(theta: Any) -> np.ndarray:
    """Tabular softmax policy :math:`\\pi_\\theta(a|s) = \\exp(\\theta_{sa}) / \\sum_b \\exp(\\theta_{sb})`, shape ``(S, A)``.

    Numerically stable: the row maximum is subtracted before exponentiating, so
    logits of any size give a valid distribution.
    """
    return np.exp(log_softmax_policy(theta))


def log_softmax_policy(theta: Any) -> np.ndarray:
    """:math:`\\log \\pi_\\theta(a|s)`, computed stably (log-sum-exp), shape ``(S, A)``."""
    theta = as_array(theta, "theta", ndim=2)
    z = theta - theta.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def score(theta: Any, state: int, action: int) -> np.ndarray:
    """Score :math:`\\nabla_\\theta \\log \\pi_\\theta(a|s)` of the tabular softmax, shape ``(S, A)``.

    Only row ``s`` is non-zero: :math:`\\partial \\log \\pi(a|s) / \\partial \\theta_{sb} = \\mathbb 1[a=b] - \\pi(b|s)`.
    """
    pi = softmax_policy(theta)
    S, A = pi.shape
    if not (0 <= state < S and 0 <= action < A):
        raise ValueError(f"(state, action) must lie in [0, {S}) x [0, {A}), got ({state}, {action})")
    g = np.zeros_like(pi)
    g[state] = -pi[state]
    g[state, action] += 1.0
    return g


def exact_gradient(mdp: TabularMDP, theta: Any) -> np.ndarray:
    """Exact :math:`\\nabla_\\theta J(\\pi_\\theta)` for the tabular softmax policy, shape ``(S, A)``.

    By the policy gradient theorem,
    :math:`\\partial J / \\partial \\theta_{sa} = \\rho_\\pi(s)\\, \\pi(a|s)\\, A_\\pi(s, a)` with
    :math:`\\rho_\\pi` the unnormalised discounted visitation (Chapter 2, eq. ``pg-softmax``).
    """
    theta = as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
    pi = softmax_policy(theta)
    return visitation(mdp, pi)[:, None] * pi * advantage_function(mdp, pi)


def finite_horizon_return(mdp: TabularMDP, pi: Any, horizon: int) -> Any:
    """:math:`J_H(\\pi) = \\mathbb E[\\sum_{t<H} \\gamma^t r_t]` by backward induction.

    ``pi`` may be a numpy array or a torch tensor; with a tensor that requires grad,
    the result is a differentiable scalar tensor (autograd gives the exact gradient).
    """
    horizon = check_positive_int(horizon, "horizon")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the book
        torch = None
    if torch is not None and isinstance(pi, torch.Tensor):
        P, R, mu = (torch.tensor(x, dtype=pi.dtype) for x in (mdp.P, mdp.R, mdp.mu))
        V = torch.zeros(mdp.n_states, dtype=pi.dtype)
    else:
        pi = check_policy(mdp, pi)
        P, R, mu = mdp.P, mdp.R, mdp.mu
        V = np.zeros(mdp.n_states)
    for _ in range(horizon):
        V = (pi * (R + mdp.gamma * (P @ V))).sum(1)
    return (mu * V).sum()


def enumerate_trajectories(mdp: TabularMDP, pi: Any, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trajectory :math:`(s_0, a_0, \\ldots, s_{H-1}, a_{H-1})` of length ``horizon`` with its probability.

    Returns ``(states, actions, probs)`` with shapes ``(N, H)``, ``(N, H)``, ``(N,)`` where
    ``N = (S A)^H``; ``probs`` (eq. ``trajectory-probability``) sums to one. Meant for
    exact expectations on tiny MDPs: ``N`` grows exponentially with ``horizon``.
    """
    pi = check_policy(mdp, pi)
    horizon = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    if (S * A) ** horizon > 2_000_000:
        raise ValueError(f"(S*A)^horizon = {(S * A) ** horizon} trajectories is too many to enumerate")
    grid = np.array(list(itertools.product(range(S), range(A), repeat=horizon)), dtype=np.int64)
    states, actions = grid[:, 0::2], grid[:, 1::2]
    probs = mdp.mu[states[:, 0]] * np.prod(pi[states, actions], axis=1)
    if horizon > 1:
        probs = probs * np.prod(mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]], axis=1)
    return states, actions, probs


def step_weights(rewards: Any, gamma: float, estimator: str = "reward_to_go", baseline: Any | None = None) -> np.ndarray:
    """The weights :math:`w_t` that multiply :math:`\\nabla \\log \\pi(a_t|s_t)` in each estimator (module docstring).

    ``rewards`` and ``baseline`` have shape ``(T,)``; returns shape ``(T,)``.
    """
    r = as_array(rewards, "rewards", ndim=1)
    g = check_gamma(gamma, allow_one=True)
    discounts = g ** np.arange(r.shape[0])
    if estimator == "full_return":
        w = np.full(r.shape[0], discounts @ r)
    elif estimator == "reward_to_go":
        w = discounts * reward_to_go(r, g)
    else:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if baseline is not None:
        w = w - discounts * as_array(baseline, "baseline", shape=r.shape)
    return w


def reinforce_gradient(
    theta: Any,
    states: Any,
    actions: Any,
    rewards: Any,
    gamma: float = 1.0,
    estimator: str = "reward_to_go",
    baseline: Any | None = None,
) -> np.ndarray:
    """Single-trajectory REINFORCE estimate of :math:`\\nabla_\\theta J` for the tabular softmax.

    Parameters
    ----------
    theta : (S, A) logits.
    states, actions : integer arrays of length ``T``; rewards : float array of length ``T``.
    gamma : discount in [0, 1] (1 for an undiscounted finite horizon).
    estimator : ``"full_return"`` (eq. ``pg-full``) or ``"reward_to_go"`` (eq. ``pg-rtg``).
    baseline : optional length-``T`` array ``b_t`` (a function of :math:`s_t` and ``t`` only,
        for example :math:`V(s_t)`); subtracted as :math:`\\gamma^t b_t` (eq. ``pg-baseline``).

    Returns the ``(S, A)`` array :math:`\\sum_t w_t \\nabla_\\theta \\log \\pi_\\theta(a_t|s_t)`.
    """
    theta = as_array(theta, "theta", ndim=2)
    S, A = theta.shape
    s = np.asarray(states)
    a = np.asarray(actions)
    r = as_array(rewards, "rewards", ndim=1)
    T = r.shape[0]
    if s.shape != (T,) or a.shape != (T,):
        raise ValueError(f"states and actions must have shape ({T},) like rewards, got {s.shape} and {a.shape}")
    if T and (s.min() < 0 or s.max() >= S or a.min() < 0 or a.max() >= A):
        raise ValueError(f"states must lie in [0, {S}) and actions in [0, {A})")
    w = step_weights(r, gamma, estimator, baseline)
    pi = softmax_policy(theta)
    grad = np.zeros((S, A))
    np.add.at(grad, (s, a), w)                       # sum_t w_t e_{s_t a_t}
    np.add.at(grad, s, -w[:, None] * pi[s])          # sum_t w_t (-pi(. | s_t)) in row s_t
    return grad


# ----------------------------------------------------------------------------- deep REINFORCE


@dataclass
class ReinforceConfig:
    """Settings of :func:`train_reinforce` (vanilla policy gradient, Chapter 2)."""

    env_id: str = "CartPole-v1"
    """gymnasium id of an environment with a Box observation and Discrete actions."""
    n_epochs: int = 40
    """Number of policy updates."""
    steps_per_epoch: int = 2000
    """Environment steps collected per update (episodes are completed, so slightly more)."""
    lr: float = 1e-2
    """Adam learning rate (typical: 1e-3 to 3e-2)."""
    gamma: float = 1.0
    """Discount :math:`\\gamma` used in the returns (1: the undiscounted episodic return)."""
    estimator: str = "reward_to_go"
    """``"reward_to_go"`` (eq. ``pg-rtg``) or ``"full_return"`` (eq. ``pg-full``)."""
    num_envs: int = 8
    """Environment copies run in parallel (gymnasium vector API)."""
    hidden: tuple[int, ...] = (32,)
    """Widths of the hidden tanh layers of the policy network."""
    device: str = "cpu"
    """torch device for the network."""


@dataclass
class ReinforceHistory:
    """What :func:`train_reinforce` records, one entry per epoch."""

    env_steps: list[int] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def train_reinforce(config: ReinforceConfig, seed: int = 0, progress: bool = True) -> tuple[Any, ReinforceHistory]:
    """Train a softmax MLP policy with REINFORCE; returns ``(policy_network, history)``.

    Each epoch runs ``config.num_envs`` environments in parallel with the current
    policy until at least ``steps_per_epoch`` steps of *completed* episodes are
    collected, then takes one Adam step on the surrogate loss
    :math:`-\\frac{1}{N} \\sum_{t} w_t \\log \\pi_\\theta(a_t|s_t)`, whose gradient is the
    estimator chosen by ``config.estimator`` averaged over the ``N`` collected steps.
    Episodes still running at the end of an epoch are discarded (their return is not
    known yet). Seeds numpy, torch and the environments.
    """
    import gymnasium as gym
    import torch
    from tqdm.auto import tqdm

    from companion.nets import mlp
    from companion.rollout import make_vector_env

    if config.estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {config.estimator!r}")
    check_positive_int(config.n_epochs, "n_epochs")
    check_positive_int(config.steps_per_epoch, "steps_per_epoch")
    gamma = check_gamma(config.gamma, allow_one=True)
    if not config.lr > 0:
        raise ValueError(f"lr must be positive, got {config.lr!r}")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    envs = make_vector_env(config.env_id, config.num_envs, seed)
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError(f"{config.env_id} must have a Discrete action space for this learner")
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)
    policy = mlp([obs_dim, *config.hidden, n_actions]).to(config.device, dtype=torch.float32)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    history = ReinforceHistory()
    total_steps = 0
    obs, _ = envs.reset(seed=seed)
    bar = tqdm(range(config.n_epochs), desc=f"REINFORCE ({config.estimator})", disable=not progress)
    for _ in bar:
        # one episode buffer per environment copy: lists of (observation, action, reward)
        running = [[] for _ in range(config.num_envs)]
        just_reset = np.zeros(config.num_envs, dtype=bool)
        batch_obs, batch_act, batch_w, ep_returns = [], [], [], []
        n_collected = 0
        while n_collected < config.steps_per_epoch:
            with torch.inference_mode():
                logits = policy(torch.as_tensor(obs, dtype=torch.float32, device=config.device))
                cum = torch.softmax(logits, -1).cumsum(-1).cpu().numpy()
            actions = np.minimum((rng.random((config.num_envs, 1)) >= cum).sum(1), n_actions - 1)
            next_obs, rewards, terminated, truncated, _ = envs.step(actions)
            for i in np.flatnonzero(~just_reset):     # a step right after an episode end only resets
                running[i].append((obs[i], actions[i], float(rewards[i])))
                if terminated[i] or truncated[i]:
                    ep_obs, ep_act, ep_rew = zip(*running[i])
                    batch_obs.extend(ep_obs)
                    batch_act.extend(ep_act)
                    batch_w.append(step_weights(np.array(ep_rew), gamma, config.estimator))
                    ep_returns.append(sum(ep_rew))
                    n_collected += len(ep_rew)
                    running[i] = []
            just_reset = terminated | truncated
            obs = next_obs
        obs_t = torch.as_tensor(np.asarray(batch_obs), dtype=torch.float32, device=config.device)
        act_t = torch.as_tensor(np.asarray(batch_act), device=config.device)
        w_t = torch.as_tensor(np.concatenate(batch_w), dtype=torch.float32, device=config.device)
        logp = torch.log_softmax(policy(obs_t), -1).gather(1, act_t[:, None]).squeeze(1)
        loss = -(logp * w_t).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total_steps += n_collected
        history.env_steps.append(total_steps)
        history.mean_return.append(float(np.mean(ep_returns)))
        history.loss.append(loss.item())
        bar.set_postfix(mean_return=f"{history.mean_return[-1]:.1f}")
    envs.close()
    return policy, history
