"""Trust region policy optimisation (Chapter 4, ``book/04_trpo.md``; Schulman et al. 2015).

Exact tabular pieces (divergences between policies, the surrogate and the lower bound of
the monotonic-improvement theorem), the numerical tools of the practical algorithm
(conjugate gradient, Fisher-vector products by double backpropagation, a backtracking
line search) and a TRPO learner for gymnasium environments with discrete actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from companion._validate import check_distribution, check_positive_int
from companion.cpi import surrogate
from companion.mdp import TabularMDP, advantage_function, check_policy

__all__ = [
    "tv_distance",
    "kl_divergence",
    "max_tv",
    "max_kl",
    "surrogate",
    "trpo_lower_bound",
    "trpo_kl_lower_bound",
    "conjugate_gradient",
    "flat_grad",
    "fisher_vector_product",
    "backtracking_line_search",
    "TRPOConfig",
    "TRPOHistory",
    "train_trpo",
]


def tv_distance(p: Any, q: Any) -> np.ndarray:
    """Total variation :math:`D_{TV}(p, q) = \\frac12 \\sum_i |p_i - q_i|` along the last axis."""
    p = check_distribution(p, "p")
    q = check_distribution(q, "q", shape=p.shape)
    return 0.5 * np.abs(p - q).sum(axis=-1)


def kl_divergence(p: Any, q: Any) -> np.ndarray:
    """:math:`D_{KL}(p \\| q) = \\sum_i p_i \\log(p_i / q_i)` along the last axis (``0 log 0 = 0``).

    Infinite where ``q`` puts zero mass on an outcome that ``p`` can produce.
    """
    p = check_distribution(p, "p")
    q = check_distribution(q, "q", shape=p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def max_tv(pi: Any, pi_new: Any) -> float:
    """:math:`D_{TV}^{\\max}(\\pi, \\tilde\\pi) = \\max_s D_{TV}(\\pi(\\cdot|s), \\tilde\\pi(\\cdot|s))`."""
    return float(np.max(tv_distance(pi, pi_new)))


def max_kl(pi: Any, pi_new: Any) -> float:
    """:math:`D_{KL}^{\\max}(\\pi, \\tilde\\pi) = \\max_s D_{KL}(\\pi(\\cdot|s) \\| \\tilde\\pi(\\cdot|s))`."""
    return float(np.max(kl_divergence(pi, pi_new)))


def _penalty_constant(mdp: TabularMDP, pi_old: np.ndarray) -> float:
    eps = float(np.abs(advantage_function(mdp, pi_old)).max())
    return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2


def trpo_lower_bound(mdp: TabularMDP, pi_old: Any, pi_new: Any) -> float:
    """:math:`L_{\\pi_{old}}(\\pi_{new}) - \\frac{4 \\varepsilon\\gamma}{(1-\\gamma)^2}\\alpha^2` (Chapter 4, theorem ``thm-trpo``).

    With :math:`\\varepsilon = \\max_{s,a} |A_{\\pi_{old}}(s,a)|` and
    :math:`\\alpha = D_{TV}^{\\max}(\\pi_{old}, \\pi_{new})`; a lower bound on :math:`J(\\pi_{new})`.
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    return surrogate(mdp, pi_old, pi_new) - _penalty_constant(mdp, pi_old) * max_tv(pi_old, pi_new) ** 2


def trpo_kl_lower_bound(mdp: TabularMDP, pi_old: Any, pi_new: Any) -> float:
    """The KL form :math:`L_{\\pi_{old}}(\\pi_{new}) - \\frac{4 \\varepsilon\\gamma}{(1-\\gamma)^2} D_{KL}^{\\max}(\\pi_{old}, \\pi_{new})`.

    Lower than :func:`trpo_lower_bound` because :math:`D_{TV}^2 \\le D_{KL}` (Pinsker).
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    return surrogate(mdp, pi_old, pi_new) - _penalty_constant(mdp, pi_old) * max_kl(pi_old, pi_new)


# ----------------------------------------------------------------------------- numerical tools


def conjugate_gradient(Avp: Callable[[Any], Any], b: Any, n_iters: int = 10, tol: float = 1e-10) -> Any:
    """Approximately solve :math:`A x = b` for symmetric positive-definite :math:`A` given only ``Avp(v) = A v``.

    Conjugate gradient from :math:`x_0 = 0`: at most ``n_iters`` matrix-vector products,
    stopping early once the squared residual norm :math:`\\|b - Ax\\|^2` falls below
    ``tol``. In exact arithmetic it solves an :math:`n \\times n` system in :math:`n`
    iterations. ``b`` may be a numpy array or a torch tensor (1-D); ``x`` has its type.
    """
    n_iters = check_positive_int(n_iters, "n_iters")
    if getattr(b, "ndim", None) != 1:
        raise ValueError(f"b must be a 1-D vector, got shape {getattr(b, 'shape', None)}")
    x = b * 0
    r = b.clone() if hasattr(b, "clone") else np.array(b, dtype=np.float64)
    p = r.clone() if hasattr(r, "clone") else r.copy()
    rr = float((r * r).sum())
    for _ in range(n_iters):
        if rr < tol:
            break
        Ap = Avp(p)
        pAp = float((p * Ap).sum())
        if pAp <= 0:
            raise ValueError(f"conjugate_gradient needs a positive-definite A, but p^T A p = {pAp:.3g}")
        step = rr / pAp
        x = x + step * p
        r = r - step * Ap
        rr_new = float((r * r).sum())
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def flat_grad(output: Any, params: Sequence[Any], create_graph: bool = False) -> Any:
    """Gradient of a scalar ``output`` with respect to ``params``, concatenated into one vector."""
    import torch

    grads = torch.autograd.grad(output, list(params), create_graph=create_graph, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def fisher_vector_product(kl_fn: Callable[[], Any], params: Sequence[Any], v: Any, damping: float = 0.0) -> Any:
    """:math:`(F + \\text{damping}\\, I) v`, with :math:`F` the Hessian of the mean KL at the current parameters.

    ``kl_fn()`` must return the mean :math:`D_{KL}(\\pi_{old} \\| \\pi_\\theta)` over a batch of states,
    with :math:`\\pi_{old}` detached, evaluated at :math:`\\theta = \\theta_{old}`; there its
    Hessian equals the Fisher information matrix :math:`\\mathbb E[\\nabla\\log\\pi \\nabla\\log\\pi^\\top]`
    (Chapter 4, eq. ``fisher-hessian``). Computed by double backpropagation,
    :math:`\\nabla_\\theta (\\nabla_\\theta \\mathrm{KL} \\cdot v)`, without ever forming :math:`F`.
    """
    import torch

    params = list(params)
    n = sum(p.numel() for p in params)
    if v.ndim != 1 or v.numel() != n:
        raise ValueError(f"v must be a vector of length {n} (the number of parameters), got shape {tuple(v.shape)}")
    if damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping}")
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)
    hvp = flat_grad((grad_kl * v.detach()).sum(), params)
    return hvp + damping * v if damping else hvp


def backtracking_line_search(
    objective: Callable[[Any], float],
    constraint: Callable[[Any], float],
    x: Any,
    full_step: Any,
    max_constraint: float,
    shrink: float = 0.5,
    max_backtracks: int = 10,
) -> tuple[Any, float]:
    """Try :math:`x + \\beta^k \\cdot` ``full_step`` for :math:`k = 0, 1, \\ldots` (Chapter 4, "line search").

    Accept the first point that improves ``objective`` over its value at ``x`` and keeps
    ``constraint`` at most ``max_constraint``. Returns ``(new_x, fraction)`` with
    ``fraction`` = :math:`\\beta^k`, or ``(x, 0.0)`` if no tried point is acceptable.
    """
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must lie in (0, 1), got {shrink}")
    max_backtracks = check_positive_int(max_backtracks, "max_backtracks")
    f0 = objective(x)
    fraction = 1.0
    for _ in range(max_backtracks):
        candidate = x + fraction * full_step
        if constraint(candidate) <= max_constraint and objective(candidate) > f0:
            return candidate, fraction
        fraction *= shrink
    return x, 0.0


# ----------------------------------------------------------------------------- the learner


@dataclass
class TRPOConfig:
    """Settings of :func:`train_trpo`; defaults suit CartPole-v1."""

    env_id: str = "CartPole-v1"
    """gymnasium id of an environment with a Box observation and Discrete actions."""
    num_envs: int = 8
    """Environments stepped together."""
    n_steps: int = 256
    """Steps per environment per update (the batch has ``num_envs * n_steps`` steps)."""
    n_updates: int = 60
    """Number of policy updates."""
    max_kl: float = 0.01
    """Trust-region size :math:`\\delta` on the mean KL (typical: 0.001 to 0.05)."""
    gamma: float = 0.99
    """Discount :math:`\\gamma`."""
    gae_lambda: float = 0.97
    """GAE :math:`\\lambda` (Chapter 6)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations (Fisher-vector products) per update."""
    damping: float = 0.1
    """Damping added to the Fisher matrix, :math:`F + \\text{damping}\\, I`, for stability."""
    vf_lr: float = 1e-3
    """Adam learning rate of the separate value network."""
    vf_epochs: int = 5
    """Passes over the batch to fit the value network."""
    vf_minibatches: int = 8
    """Minibatches per value-network pass."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden tanh layers of the policy and of the value network."""
    device: str = "cpu"
    """torch device."""


@dataclass
class TRPOHistory:
    """One entry per update."""

    env_steps: list[int] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    step_fraction: list[float] = field(default_factory=list)
    surrogate_gain: list[float] = field(default_factory=list)


def train_trpo(config: TRPOConfig, seed: int = 0, progress: bool = True) -> tuple[Any, Any, TRPOHistory]:
    """Train a categorical MLP policy with TRPO; returns ``(policy, value_net, history)``.

    Each update (Chapter 4, "TRPO, the algorithm"): collect ``num_envs * n_steps`` steps;
    GAE advantages (normalised); the importance-sampled surrogate
    :math:`L(\\theta) = \\mathbb E[\\frac{\\pi_\\theta(a|s)}{\\pi_{old}(a|s)} \\hat A]` and its gradient
    :math:`g`; :math:`x \\approx F^{-1} g` by conjugate gradient with Fisher-vector products;
    the full step :math:`\\sqrt{2\\delta / x^\\top F x}\\, x`; a backtracking line search that
    requires the mean KL to stay below :math:`\\delta` and :math:`L` to improve; then a few
    epochs of Adam on the value network's squared error to the TD(:math:`\\lambda`) returns.
    """
    import gymnasium as gym
    import torch
    from tqdm.auto import tqdm

    from companion.gae import gae
    from companion.nets import mlp
    from companion.rollout import RolloutCollector, make_vector_env

    if not config.max_kl > 0:
        raise ValueError(f"max_kl must be positive, got {config.max_kl}")
    check_positive_int(config.n_updates, "n_updates")
    torch.manual_seed(seed)
    envs = make_vector_env(config.env_id, config.num_envs, seed)
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError(f"{config.env_id} must have a Discrete action space for this learner")
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)
    dev = config.device
    policy = mlp([obs_dim, *config.hidden, n_actions]).to(dev, dtype=torch.float32)
    value_net = mlp([obs_dim, *config.hidden, 1]).to(dev, dtype=torch.float32)
    vf_opt = torch.optim.Adam(value_net.parameters(), lr=config.vf_lr)
    params = list(policy.parameters())
    gen = torch.Generator(device=dev).manual_seed(seed)

    def act(obs: Any) -> tuple[Any, Any]:
        logp_all = torch.log_softmax(policy(obs), -1)
        a = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)
        return a, logp_all.gather(1, a[:, None]).squeeze(1)

    collector = RolloutCollector(envs, act, lambda o: value_net(o).squeeze(-1), seed, dev)
    history = TRPOHistory()
    recent: list[float] = []

    def get_flat() -> Any:
        return torch.cat([p.data.reshape(-1) for p in params])

    def set_flat(x: Any) -> None:
        i = 0
        for p in params:
            p.data.copy_(x[i : i + p.numel()].view_as(p))
            i += p.numel()

    for _ in tqdm(range(config.n_updates), desc="TRPO", disable=not progress):
        ro = collector.collect(config.n_steps)
        adv = gae(ro.rewards, ro.values, ro.next_values, ro.terminated, ro.truncated, config.gamma, config.gae_lambda)
        returns = adv + ro.values
        m = ro.valid.reshape(-1)
        obs, actions = ro.obs.reshape(-1, obs_dim)[m], ro.actions.reshape(-1)[m]
        logp_old, adv, returns = ro.logp.reshape(-1)[m], adv.reshape(-1)[m], returns.reshape(-1)[m]
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        with torch.no_grad():
            logp_all_old = torch.log_softmax(policy(obs), -1)

        def surrogate_loss() -> Any:
            logp = torch.log_softmax(policy(obs), -1).gather(1, actions[:, None]).squeeze(1)
            return (torch.exp(logp - logp_old) * adv).mean()

        def mean_kl() -> Any:
            logp_all = torch.log_softmax(policy(obs), -1)
            return (logp_all_old.exp() * (logp_all_old - logp_all)).sum(-1).mean()

        g = flat_grad(surrogate_loss(), params)
        x = conjugate_gradient(lambda v: fisher_vector_product(mean_kl, params, v, config.damping), g, config.cg_iters)
        xFx = float((x * fisher_vector_product(mean_kl, params, x, config.damping)).sum())
        full_step = np.sqrt(2 * config.max_kl / max(xFx, 1e-12)) * x
        theta_old = get_flat()
        with torch.no_grad():
            L_old = float(surrogate_loss())

        def evaluate(theta: Any, fn: Callable[[], Any]) -> float:
            set_flat(theta)
            with torch.no_grad():
                return float(fn())

        theta_new, fraction = backtracking_line_search(
            lambda th: evaluate(th, surrogate_loss), lambda th: evaluate(th, mean_kl),
            theta_old, full_step, config.max_kl,
        )
        set_flat(theta_new)
        with torch.no_grad():
            kl_now, L_new = float(mean_kl()), float(surrogate_loss())

        n = obs.shape[0]
        for _ in range(config.vf_epochs):
            perm = torch.randperm(n, generator=gen, device=dev)
            for idx in perm.chunk(config.vf_minibatches):
                vf_loss = ((value_net(obs[idx]).squeeze(-1) - returns[idx]) ** 2).mean()
                vf_opt.zero_grad()
                vf_loss.backward()
                vf_opt.step()

        recent = (recent + ro.episode_returns)[-20:]
        history.env_steps.append(collector.total_steps)
        history.mean_return.append(float(np.mean(recent)) if recent else float("nan"))
        history.kl.append(kl_now)
        history.step_fraction.append(fraction)
        history.surrogate_gain.append(L_new - L_old)
    envs.close()
    return policy, value_net, history
