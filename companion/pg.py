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

The chapter's checks also live here, so that tests can feed them wrong versions:
:func:`trajectory_gradient_residuals` (SymPy, on a trajectory probability built from a
symbolic policy and dynamics), :func:`log_derivative_fd_gap` (the log-derivative trick
against a finite difference of :math:`\\log p`; :func:`log_derivative_residuals` only
illustrates it, since SymPy differentiates :math:`\\log p` as :math:`p'/p`),
:func:`softmax_stability_gap`, :func:`estimator_gap` and :func:`estimator_variance`
(the exact mean of an estimator, by enumeration, against autograd; its exact variance),
:func:`exact_gradient_gap` (eq. ``pg-softmax`` against autograd),
:func:`q_enumeration_gap` and :func:`v_enumeration_gap`
(:math:`\\mathbb E[\\hat R_t | s_t, a_t] = Q^{(H-t)}_\\pi` and
:math:`\\mathbb E[\\hat R_t | s_t] = V^{(H-t)}_\\pi`, by enumeration) and
:func:`gradient_field` with :func:`jacobian_asymmetry` (the update without
:math:`\\gamma^t` has a non-symmetric Jacobian, so it is not a gradient).
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
    "finite_horizon_q",
    "conditional_reward_to_go",
    "q_enumeration_gap",
    "conditional_state_reward_to_go",
    "finite_horizon_v",
    "value_baseline",
    "v_enumeration_gap",
    "autograd_finite_horizon_gradient",
    "enumerated_estimates",
    "estimator_gap",
    "estimator_variance",
    "discounted_return_torch",
    "exact_gradient_gap",
    "softmax_stability_gap",
    "log_derivative_fd_gap",
    "gradient_field",
    "jacobian_asymmetry",
    "symbolic_softmax",
    "symbolic_trajectory_probability",
    "log_derivative_residuals",
    "trajectory_gradient_residuals",
    "symbolic_is_zero",
    "ESTIMATORS",
    "ReinforceConfig",
    "train_reinforce",
]

ESTIMATORS = ("full_return", "reward_to_go")


def _index(x: Any, name: str) -> int:
    """An integer index (a Python or numpy integer, not a bool or a float)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise ValueError(f"{name} must be an integer index, got {x!r}")
    return int(x)


def _index_array(x: Any, name: str) -> np.ndarray:
    """A 1-D array of integer indices (integer dtype, or floats that are whole numbers)."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of indices, got shape {arr.shape}"
        )
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(
                f"{name} must hold integer indices, got non-integer values"
            )
        arr = arr.astype(np.int64)
    return arr


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
    if 0 in theta.shape:
        raise ValueError(
            f"theta must have at least one state and one action, got shape {theta.shape}"
        )
    z = theta - theta.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def score(theta: Any, state: int, action: int) -> np.ndarray:
    """Score :math:`\\nabla_\\theta \\log \\pi_\\theta(a|s)` of the tabular softmax, shape ``(S, A)``.

    Only row ``s`` is non-zero: :math:`\\partial \\log \\pi(a|s) / \\partial \\theta_{sb} = \\mathbb 1[a=b] - \\pi(b|s)`.
    """
    pi = softmax_policy(theta)
    S, A = pi.shape
    state, action = _index(state, "state"), _index(action, "action")
    if not (0 <= state < S and 0 <= action < A):
        raise ValueError(
            f"(state, action) must lie in [0, {S}) x [0, {A}), got ({state}, {action})"
        )
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
    Either way ``pi`` must have shape ``(S, A)`` with rows that are probability
    distributions (a tensor is checked on a detached copy); else ``ValueError``.
    """
    horizon = check_positive_int(horizon, "horizon")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the book
        torch = None
    if torch is not None and isinstance(pi, torch.Tensor):
        # the same checks as for a numpy policy (shape, finite, rows are distributions),
        # on a detached copy, so that a tensor policy is refused for the same reasons
        detached = pi.detach().cpu()
        if detached.dtype not in (torch.float32, torch.float64):
            detached = detached.to(torch.float64)
        check_policy(mdp, detached.numpy())
        P, R, mu = (torch.tensor(x, dtype=pi.dtype) for x in (mdp.P, mdp.R, mdp.mu))
        V = torch.zeros(mdp.n_states, dtype=pi.dtype)
    else:
        pi = check_policy(mdp, pi)
        P, R, mu = mdp.P, mdp.R, mdp.mu
        V = np.zeros(mdp.n_states)
    for _ in range(horizon):
        V = (pi * (R + mdp.gamma * (P @ V))).sum(1)
    return (mu * V).sum()


def enumerate_trajectories(
    mdp: TabularMDP, pi: Any, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every trajectory :math:`(s_0, a_0, \\ldots, s_{H-1}, a_{H-1})` of length ``horizon`` with its probability.

    Returns ``(states, actions, probs)`` with shapes ``(N, H)``, ``(N, H)``, ``(N,)`` where
    ``N = (S A)^H``; ``probs`` (eq. ``trajectory-probability``) sums to one. Meant for
    exact expectations on tiny MDPs: ``N`` grows exponentially with ``horizon``.
    """
    pi = check_policy(mdp, pi)
    horizon = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    if (S * A) ** horizon > 2_000_000:
        raise ValueError(
            f"(S*A)^horizon = {(S * A) ** horizon} trajectories is too many to enumerate"
        )
    grid = np.array(
        list(itertools.product(range(S), range(A), repeat=horizon)), dtype=np.int64
    )
    states, actions = grid[:, 0::2], grid[:, 1::2]
    probs = mdp.mu[states[:, 0]] * np.prod(pi[states, actions], axis=1)
    if horizon > 1:
        probs = probs * np.prod(
            mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]], axis=1
        )
    return states, actions, probs


def step_weights(
    rewards: Any,
    gamma: float,
    estimator: str = "reward_to_go",
    baseline: Any | None = None,
) -> np.ndarray:
    """The weights :math:`w_t` that multiply :math:`\\nabla \\log \\pi(a_t|s_t)` in each estimator (module docstring).

    ``rewards`` and ``baseline`` have shape ``(T,)``; returns shape ``(T,)``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
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
    s = _index_array(states, "states")
    a = _index_array(actions, "actions")
    r = as_array(rewards, "rewards", ndim=1)
    T = r.shape[0]
    if s.shape != (T,) or a.shape != (T,):
        raise ValueError(
            f"states and actions must have shape ({T},) like rewards, got {s.shape} and {a.shape}"
        )
    if T and (s.min() < 0 or s.max() >= S or a.min() < 0 or a.max() >= A):
        raise ValueError(f"states must lie in [0, {S}) and actions in [0, {A})")
    w = step_weights(r, gamma, estimator, baseline)
    pi = softmax_policy(theta)
    grad = np.zeros((S, A))
    np.add.at(grad, (s, a), w)  # sum_t w_t e_{s_t a_t}
    np.add.at(grad, s, -w[:, None] * pi[s])  # sum_t w_t (-pi(. | s_t)) in row s_t
    return grad


# ----------------------------------------------------------------------------- Q and the theorem


def finite_horizon_q(mdp: TabularMDP, pi: Any, horizon: int) -> np.ndarray:
    """Action values of the steps left: ``Q[t, s, a]`` = :math:`Q^{(H-t)}_\\pi(s, a)`, shape ``(H, S, A)``.

    :math:`Q^{(k)}_\\pi(s, a) = r(s, a) + \\gamma \\sum_{s'} P(s'|s, a) V^{(k-1)}_\\pi(s')` is the
    expected discounted reward of the ``k`` steps that remain after taking ``a`` in ``s``,
    with :math:`V^{(0)} = 0` and :math:`V^{(k)}(s) = \\sum_a \\pi(a|s) Q^{(k)}(s, a)`
    (backward induction). Chapter 2 shows :math:`\\mathbb E[\\hat R_t | s_t, a_t] = Q^{(H-t)}_\\pi(s_t, a_t)`.
    """
    pi = check_policy(mdp, pi)
    horizon = check_positive_int(horizon, "horizon")
    Q = np.zeros((horizon, mdp.n_states, mdp.n_actions))
    V = np.zeros(mdp.n_states)
    for t in reversed(range(horizon)):
        Q[t] = mdp.R + mdp.gamma * (mdp.P @ V)
        V = (pi * Q[t]).sum(axis=1)
    return Q


def _enumerated_reward_to_go_sums(
    mdp: TabularMDP, pi: Any, horizon: int, gamma: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(num, den)``, shape ``(H, S, A)``: sums over every trajectory with
    :math:`(s_t, a_t) = (s, a)` of its probability times :math:`\\hat R_t`, and of its probability."""
    pi = check_policy(mdp, pi)
    g = mdp.gamma if gamma is None else check_gamma(gamma, allow_one=True)
    states, actions, probs = enumerate_trajectories(mdp, pi, horizon)
    R_hat = reward_to_go(mdp.R[states, actions].T, g).T  # (N, H)
    num = np.zeros((horizon, mdp.n_states, mdp.n_actions))
    den = np.zeros_like(num)
    for t in range(horizon):
        np.add.at(num[t], (states[:, t], actions[:, t]), probs * R_hat[:, t])
        np.add.at(den[t], (states[:, t], actions[:, t]), probs)
    return num, den


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def conditional_reward_to_go(
    mdp: TabularMDP, pi: Any, horizon: int, gamma: float | None = None
) -> np.ndarray:
    """:math:`\\mathbb E[\\hat R_t \\mid s_t = s, a_t = a]` by enumerating every trajectory, shape ``(H, S, A)``.

    Sums the reward-to-go :math:`\\hat R_t = \\sum_{t \\le j < H} \\gamma^{j-t} r_j` of every
    trajectory with :math:`(s_t, a_t) = (s, a)`, weighted by its probability, and divides
    by :math:`P(s_t = s, a_t = a)`; entries with probability zero are NaN. ``gamma``
    defaults to the MDP's discount. Shares no code with :func:`finite_horizon_q`.
    """
    return _ratio(*_enumerated_reward_to_go_sums(mdp, pi, horizon, gamma))


def conditional_state_reward_to_go(
    mdp: TabularMDP, pi: Any, horizon: int, gamma: float | None = None
) -> np.ndarray:
    """:math:`\\mathbb E[\\hat R_t \\mid s_t = s]` by enumerating every trajectory, shape ``(H, S)``.

    As :func:`conditional_reward_to_go`, conditioning on the state only; entries with
    :math:`P(s_t = s) = 0` are NaN. Shares no code with :func:`finite_horizon_v`.
    """
    num, den = _enumerated_reward_to_go_sums(mdp, pi, horizon, gamma)
    return _ratio(num.sum(axis=2), den.sum(axis=2))


def finite_horizon_v(mdp: TabularMDP, pi: Any, horizon: int) -> np.ndarray:
    """State values of the steps left: ``V[t, s]`` = :math:`V^{(H-t)}_\\pi(s)`, shape ``(H, S)``.

    :math:`V^{(0)} = 0` and :math:`V^{(k)} = T^\\pi V^{(k-1)}` (the Bellman expectation
    backup of Chapter 1, ``companion.mdp.bellman_expectation_backup``): the expected
    discounted reward of the ``k`` steps that remain. Chapter 2 uses
    :math:`b_t = V^{(H-t)}_\\pi(s_t) = \\mathbb E[\\hat R_t \\mid s_t]` as the baseline
    of eq. ``pg-baseline``.
    """
    from companion.mdp import bellman_expectation_backup

    pi = check_policy(mdp, pi)
    horizon = check_positive_int(horizon, "horizon")
    V = [np.zeros(mdp.n_states)]  # V[k]: k steps left
    for _ in range(horizon):
        V.append(bellman_expectation_backup(mdp, pi, V[-1]))
    return np.stack([V[horizon - t] for t in range(horizon)])


def value_baseline(mdp: TabularMDP, pi: Any, states: Any) -> tuple[np.ndarray, float]:
    """The value baseline of each enumerated trajectory and :math:`J_H`.

    ``states`` has shape ``(N, H)`` (from :func:`enumerate_trajectories`); returns
    ``(b, J_H)`` with ``b[n, t]`` :math:`= V^{(H-t)}_\\pi(s^n_t)` (:func:`finite_horizon_v`)
    and :math:`J_H = \\mu^\\top V^{(H)}_\\pi`.
    """
    states = np.asarray(states)
    if states.ndim != 2 or states.dtype.kind not in "iu":
        raise ValueError(
            f"states must be an (N, H) integer array, got shape {states.shape}"
        )
    if states.size and (states.min() < 0 or states.max() >= mdp.n_states):
        raise ValueError(f"states must lie in [0, {mdp.n_states})")
    V = finite_horizon_v(mdp, pi, states.shape[1])
    return V[np.arange(states.shape[1]), states], float(mdp.mu @ V[0])


def v_enumeration_gap(mdp: TabularMDP, pi: Any, v_table: Any) -> float:
    """Largest :math:`|V[t, s] - \\mathbb E[\\hat R_t | s_t = s]|` over reachable ``(t, s)``.

    ``v_table`` has shape ``(H, S)`` (for example :func:`finite_horizon_v`); the
    conditional expectation is computed by enumeration
    (:func:`conditional_state_reward_to_go`). Zero (to rounding) when ``v_table`` holds
    the values of the steps left, the baseline that centres the reward-to-go.
    """
    v = as_array(v_table, "v_table", ndim=2)
    if v.shape[1] != mdp.n_states:
        raise ValueError(f"v_table must have shape (H, {mdp.n_states}), got {v.shape}")
    cond = conditional_state_reward_to_go(mdp, pi, v.shape[0])
    reachable = np.isfinite(cond)
    return float(np.max(np.abs(v[reachable] - cond[reachable])))


def q_enumeration_gap(mdp: TabularMDP, pi: Any, q_table: Any) -> float:
    """Largest :math:`|Q[t, s, a] - \\mathbb E[\\hat R_t | s_t = s, a_t = a]|` over reachable ``(t, s, a)``.

    ``q_table`` has shape ``(H, S, A)`` (for example :func:`finite_horizon_q`); the
    conditional expectation is computed by enumeration (:func:`conditional_reward_to_go`).
    Zero (to rounding) when ``q_table`` holds the action values of the steps left.
    """
    q = as_array(q_table, "q_table", ndim=3)
    if q.shape[1:] != (mdp.n_states, mdp.n_actions):
        raise ValueError(
            f"q_table must have shape (H, {mdp.n_states}, {mdp.n_actions}), got {q.shape}"
        )
    cond = conditional_reward_to_go(mdp, pi, q.shape[0])
    reachable = np.isfinite(cond)
    return float(np.max(np.abs(q[reachable] - cond[reachable])))


# ----------------------------------------------------------------------------- estimator checks


def autograd_finite_horizon_gradient(
    mdp: TabularMDP, theta: Any, horizon: int
) -> np.ndarray:
    """:math:`\\nabla_\\theta J_H` of the tabular softmax by autograd, shape ``(S, A)``.

    Differentiates :func:`finite_horizon_return` (backward induction on torch tensors,
    float64); shares no code with the score-function estimators.
    """
    import torch

    theta = as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
    theta_t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    finite_horizon_return(mdp, torch.softmax(theta_t, dim=1), horizon).backward()
    return theta_t.grad.numpy().copy()


def enumerated_estimates(
    mdp: TabularMDP, theta: Any, horizon: int, estimate: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trajectory estimates on every trajectory of length ``horizon``.

    ``estimate(states, actions, rewards)`` returns an ``(S, A)`` array for one trajectory
    (integer arrays of length ``H``, rewards :math:`r(s_t, a_t)`). Returns
    ``(probs, g)``: the trajectory probabilities under :math:`\\pi_\\theta`, shape
    ``(N,)``, and the estimates, shape ``(N, S, A)``.
    """
    theta = as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
    if not callable(estimate):
        raise ValueError(f"estimate must be callable, got {type(estimate).__name__}")
    states, actions, probs = enumerate_trajectories(mdp, softmax_policy(theta), horizon)
    g = np.stack(
        [
            np.asarray(estimate(s, a, mdp.R[s, a]), dtype=float)
            for s, a in zip(states, actions)
        ]
    )
    if g.shape[1:] != (mdp.n_states, mdp.n_actions):
        raise ValueError(
            f"estimate must return shape ({mdp.n_states}, {mdp.n_actions}), "
            f"got {g.shape[1:]}"
        )
    return probs, g


def estimator_gap(mdp: TabularMDP, theta: Any, horizon: int, estimate: Any) -> float:
    """Largest :math:`|\\mathbb E[\\hat g] - \\nabla_\\theta J_H|` over the entries of the gradient.

    The expectation of the single-trajectory estimate ``estimate(states, actions,
    rewards)`` (see :func:`enumerated_estimates`) is exact, a probability-weighted sum
    over all :math:`(SA)^H` trajectories; the gradient is
    :func:`autograd_finite_horizon_gradient`. Zero (to rounding) for an unbiased
    estimator: eqs. ``pg-full``, ``pg-rtg``, ``pg-baseline``.
    """
    probs, g = enumerated_estimates(mdp, theta, horizon, estimate)
    mean = np.einsum("n,nsa->sa", probs, g)
    exact = autograd_finite_horizon_gradient(mdp, theta, horizon)
    return float(np.max(np.abs(mean - exact)))


def estimator_variance(
    mdp: TabularMDP, theta: Any, horizon: int, estimate: Any
) -> float:
    """Exact total variance :math:`\\mathbb E\\|\\hat g - \\mathbb E \\hat g\\|^2` of a single-trajectory estimate.

    The trace of its covariance matrix, summed over the :math:`S \\times A` entries, by
    enumeration (:func:`enumerated_estimates`).
    """
    probs, g = enumerated_estimates(mdp, theta, horizon, estimate)
    mean = np.einsum("n,nsa->sa", probs, g)
    return float(probs @ ((g - mean) ** 2).sum(axis=(1, 2)))


def discounted_return_torch(mdp: TabularMDP, theta: Any) -> Any:
    """:math:`J(\\theta) = \\mu^\\top (I - \\gamma P_\\pi)^{-1} r_\\pi` for a torch tensor of logits.

    A differentiable float64 scalar tensor (linear solve), for autograd checks of
    :func:`exact_gradient`.
    """
    import torch

    pi = torch.softmax(theta, dim=1)
    P_pi = torch.einsum("sa,sat->st", pi, torch.tensor(mdp.P, dtype=pi.dtype))
    r_pi = (pi * torch.tensor(mdp.R, dtype=pi.dtype)).sum(1)
    eye = torch.eye(mdp.n_states, dtype=pi.dtype)
    V = torch.linalg.solve(eye - mdp.gamma * P_pi, r_pi)
    return torch.tensor(mdp.mu, dtype=pi.dtype) @ V


def exact_gradient_gap(mdp: TabularMDP, theta: Any, grad: Any) -> float:
    """Largest :math:`|g_{sa} - \\partial J / \\partial \\theta_{sa}|` for a claimed gradient ``grad``.

    The reference is automatic differentiation through the linear solve
    :func:`discounted_return_torch`, which shares no code with :func:`exact_gradient`
    (eq. ``pg-softmax``). Zero (to rounding) for the right formula.
    """
    import torch

    theta = as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
    grad = as_array(grad, "grad", shape=theta.shape)
    theta_t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    discounted_return_torch(mdp, theta_t).backward()
    return float(np.max(np.abs(grad - theta_t.grad.numpy())))


def softmax_stability_gap(softmax: Any) -> float:
    """Largest error of ``softmax`` on logits that overflow a naive formula.

    Evaluates ``softmax`` on the rows :math:`(1000, 0, -1000)` and :math:`(3, 3, 3)`, and
    on the same rows plus 7, and returns the largest distance to the exact
    distributions :math:`(1, 0, 0)` and :math:`(1/3, 1/3, 1/3)`; ``inf`` when an entry is
    NaN or infinite. Zero (to rounding) for a stable softmax; the naive
    :math:`e^{\\theta} / \\sum e^{\\theta}` overflows.
    """
    if not callable(softmax):
        raise ValueError(f"softmax must be callable, got {type(softmax).__name__}")
    logits = np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]])
    exact = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    worst = 0.0
    for shift in (0.0, 7.0):
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            got = np.asarray(softmax(logits + shift), dtype=float)
        if got.shape != exact.shape or not np.all(np.isfinite(got)):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(got - exact))))
    return worst


def log_derivative_fd_gap(
    prob: Any, theta: Any, point: dict, form: Any = None, eps: float = 1e-5
) -> float:
    """Relative gap between :math:`\\partial_x p` and a claimed form built from a finite difference of :math:`\\log p`.

    At the numerical ``point`` (a dict giving every free symbol of ``prob`` a value),
    :math:`d_x = (\\log p(x + \\varepsilon) - \\log p(x - \\varepsilon)) / (2\\varepsilon)`
    is computed from numbers alone, and ``form(p, d_x)`` (default :math:`p\\, d_x`, eq.
    ``log-derivative``) is compared with SymPy's derivative of the product ``prob``
    (no logarithm involved). Returns the largest error over the symbols of ``theta``
    relative to the largest :math:`|\\partial_x p|`; about ``eps**2`` for the right form.
    """
    import sympy as sp

    if form is None:

        def form(p: float, d: float) -> float:
            return p * d

    missing = [x for x in sp.sympify(prob).free_symbols if x not in point]
    if missing:
        raise ValueError(f"point must give every symbol a value; missing {missing}")
    p0 = float(prob.subs(point))
    if not p0 > 0:
        raise ValueError(f"prob must be positive at point, got {p0}")
    errors, scale = [], 0.0
    for x in theta:
        exact = float(sp.diff(prob, x).subs(point))
        up = float(prob.subs({**point, x: point[x] + eps}))
        down = float(prob.subs({**point, x: point[x] - eps}))
        d = (np.log(up) - np.log(down)) / (2 * eps)
        errors.append(abs(form(p0, d) - exact))
        scale = max(scale, abs(exact))
    return float(max(errors) / max(scale, 1e-300))


def gradient_field(
    mdp: TabularMDP, theta: Any, horizon: int, drop_discount: bool = False
) -> Any:
    """Expected policy-gradient update of the tabular softmax over ``horizon`` steps, shape ``(S, A)``.

    .. math:: g(\\theta)_{sb} = \\sum_{t<H} w_t\\, P(s_t = s)\\, \\pi_\\theta(b|s)\\,
              \\bigl(Q^{(H-t)}_\\pi(s, b) - V^{(H-t)}_\\pi(s)\\bigr),

    the expectation of :math:`\\sum_t w_t \\hat R_t \\nabla_\\theta \\log \\pi_\\theta(a_t|s_t)`
    with :math:`w_t = \\gamma^t` (``drop_discount=False``: the gradient of
    :math:`J_H`, eq. ``pg-rtg``) or :math:`w_t = 1` (``drop_discount=True``: the update
    most implementations use, which is the gradient of no function; Chapter 2).
    ``theta`` may be a numpy array (returns numpy) or a float64 torch tensor (returns a
    differentiable tensor, so that :func:`jacobian_asymmetry` can differentiate it).
    """
    import torch

    horizon = check_positive_int(horizon, "horizon")
    as_numpy = not isinstance(theta, torch.Tensor)
    if as_numpy:
        theta = torch.as_tensor(
            as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
        )
    elif tuple(theta.shape) != (mdp.n_states, mdp.n_actions) or not bool(
        torch.isfinite(theta).all()
    ):
        raise ValueError(
            f"theta must be a finite tensor of shape ({mdp.n_states}, {mdp.n_actions})"
        )
    theta = theta.to(torch.float64)
    P, R, mu = (
        torch.tensor(np.array(x), dtype=torch.float64) for x in (mdp.P, mdp.R, mdp.mu)
    )
    pi = torch.softmax(theta, dim=1)
    P_pi = torch.einsum("sa,sat->st", pi, P)
    # backward: advantages of the steps left; forward: state distributions P(s_t = .)
    V = torch.zeros(mdp.n_states, dtype=torch.float64)
    adv = [None] * horizon
    for t in reversed(range(horizon)):
        Q = R + mdp.gamma * (P @ V)
        V = (pi * Q).sum(dim=1)
        adv[t] = Q - V[:, None]
    d, field = mu, torch.zeros_like(theta)
    for t in range(horizon):
        w = 1.0 if drop_discount else mdp.gamma**t
        field = field + w * d[:, None] * pi * adv[t]
        d = d @ P_pi
    return field.detach().numpy() if as_numpy else field


def jacobian_asymmetry(field: Any, theta: Any) -> float:
    """Relative asymmetry :math:`\\max|J - J^\\top| / \\max|J|` of the Jacobian of ``field`` at ``theta``.

    ``field`` maps a float64 torch tensor shaped like ``theta`` to a tensor of the same
    shape; its Jacobian (flattened, by automatic differentiation) is exact to rounding.
    A gradient field :math:`\\nabla f` has the Hessian of ``f`` as Jacobian, which is
    symmetric, so a value far above rounding (about 1e-12) proves that ``field`` is the
    gradient of no twice-differentiable function near ``theta``.
    """
    import torch

    theta = torch.as_tensor(as_array(theta, "theta"), dtype=torch.float64)
    n = theta.numel()
    jac = torch.autograd.functional.jacobian(
        lambda x: field(x.reshape(theta.shape)).reshape(-1), theta.reshape(-1)
    )
    jac = jac.detach().numpy().reshape(n, n)
    scale = np.max(np.abs(jac))
    if scale == 0:
        return 0.0
    return float(np.max(np.abs(jac - jac.T)) / scale)


# ----------------------------------------------------------------------------- symbolic checks


def symbolic_softmax(n_states: int, n_actions: int) -> tuple[Any, Any]:
    """SymPy tabular softmax: returns ``(theta, pi)``, two ``(S, A)`` matrices.

    ``theta[s, a]`` is the real symbol ``theta_sa`` and
    ``pi[s, a]`` :math:`= e^{\\theta_{sa}} / \\sum_b e^{\\theta_{sb}}` (eq. ``softmax-policy``).
    """
    import sympy as sp

    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    theta = sp.Matrix(S, A, lambda s, a: sp.Symbol(f"theta_{s}{a}", real=True))
    pi = sp.Matrix(
        S,
        A,
        lambda s, a: sp.exp(theta[s, a]) / sum(sp.exp(theta[s, b]) for b in range(A)),
    )
    return theta, pi


def symbolic_trajectory_probability(
    pi: Any, P: Any, mu: Any, states: Any, actions: Any
) -> Any:
    """:math:`P(\\tau) = \\mu(s_0) \\prod_{t<T} \\pi(a_t|s_t) P(s_{t+1}|s_t, a_t)` as a SymPy product.

    ``pi[s, a]`` and ``P[s][a][s']`` (nested sequences or arrays) and ``mu[s]`` hold SymPy
    expressions or numbers; ``states`` has length ``T + 1`` and ``actions`` length ``T``
    (eq. ``trajectory-probability``, Chapter 1).
    """
    states, actions = list(states), list(actions)
    if len(states) != len(actions) + 1:
        raise ValueError(
            f"states must have one more entry than actions, got {len(states)} and {len(actions)}"
        )
    prob = mu[states[0]]
    for t, a in enumerate(actions):
        prob = prob * pi[states[t], a] * P[states[t]][a][states[t + 1]]
    return prob


def symbolic_is_zero(expr: Any, n_points: int = 3, seed: int = 0) -> bool:
    """Decide whether a SymPy expression is identically zero.

    ``True`` when ``cancel``/``simplify`` reduce it to 0 (a proof); ``False`` when it is
    non-zero at a random numerical point (a counterexample). Raises ``RuntimeError``
    when neither happens, rather than guess.
    """
    import sympy as sp

    expr = sp.sympify(expr)
    if sp.cancel(sp.together(expr)) == 0 or sp.simplify(expr) == 0:
        return True
    rng = np.random.default_rng(seed)
    symbols = sorted(expr.free_symbols, key=lambda x: x.name)
    for _ in range(n_points):
        point = {x: sp.Rational(int(rng.integers(1, 9)), 10) for x in symbols}
        value = complex(sp.N(expr.subs(point), 30))
        if abs(value) > 1e-12:
            return False
    raise RuntimeError(f"could not decide whether {expr} is zero")


def log_derivative_residuals(
    prob: Any, theta: Any, log_derivative: Any = None
) -> list[Any]:
    """Residuals :math:`\\partial_{\\theta_i} p - \\ell(p, \\theta_i)` for each symbol in ``theta``.

    ``log_derivative(p, x)`` is the claimed form of the derivative; the default is the
    log-derivative trick :math:`p\\, \\partial_x \\log p` (eq. ``log-derivative``). ``prob``
    should be a product built from its parts (:func:`symbolic_trajectory_probability`),
    not an undefined function. Each residual is zero exactly when the claim holds.

    For the default form this is an illustration, not a check: SymPy differentiates
    :math:`\\log p` by the chain rule as :math:`p'/p`, so :math:`p \\cdot p'/p - p'`
    cancels for any ``p``. :func:`log_derivative_fd_gap` is the independent check.
    """
    import sympy as sp

    if log_derivative is None:

        def log_derivative(p: Any, x: Any) -> Any:
            return p * sp.diff(sp.log(p), x)

    return [sp.diff(prob, x) - log_derivative(prob, x) for x in theta]


def trajectory_gradient_residuals(
    theta: Any,
    pi: Any,
    P: Any,
    mu: Any,
    states: Any,
    actions: Any,
    score_sum: Any = None,
) -> list[Any]:
    """Residuals of :math:`\\nabla_\\theta P(\\tau) = P(\\tau) \\sum_{t<T} \\nabla_\\theta \\log \\pi_\\theta(a_t|s_t)`.

    Builds :math:`P(\\tau)` from the policy ``pi`` and the dynamics ``P``, ``mu``
    (:func:`symbolic_trajectory_probability`) and differentiates the product itself; the
    right-hand side is ``score_sum(x)``, by default :math:`\\sum_t \\partial_x \\log \\pi(a_t|s_t)`
    (eq. ``grad-log-trajectory`` times :math:`P(\\tau)`). Returns one residual per symbol
    of ``theta``; all are zero when the dynamics do not depend on :math:`\\theta`.
    """
    import sympy as sp

    states, actions = list(states), list(actions)
    prob = symbolic_trajectory_probability(pi, P, mu, states, actions)
    if score_sum is None:

        def score_sum(x: Any) -> Any:
            return sum(
                sp.diff(sp.log(pi[states[t], a]), x) for t, a in enumerate(actions)
            )

    return [sp.diff(prob, x) - prob * score_sum(x) for x in theta]


# ----------------------------------------------------------------------------- deep REINFORCE


@dataclass
class ReinforceConfig:
    """Settings of :func:`train_reinforce` (vanilla policy gradient, Chapter 2)."""

    env_id: str = "CartPole-v1"
    """gymnasium id of an environment with a Box observation and Discrete actions."""
    n_epochs: int = 40
    """Number of policy updates."""
    steps_per_epoch: int = 2000
    """Steps of complete episodes collected per update (the last episodes overshoot it)."""
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

    def __post_init__(self) -> None:
        # every field is checked here, so a bad setting fails when it is written
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        self.n_epochs = check_positive_int(self.n_epochs, "n_epochs")
        self.steps_per_epoch = check_positive_int(
            self.steps_per_epoch, "steps_per_epoch"
        )
        if isinstance(self.lr, bool) or not isinstance(
            self.lr, (int, float, np.floating, np.integer)
        ):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        self.lr = float(self.lr)
        self.gamma = check_gamma(self.gamma, allow_one=True)
        if self.estimator not in ESTIMATORS:
            raise ValueError(
                f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}"
            )
        self.num_envs = check_positive_int(self.num_envs, "num_envs")
        if isinstance(self.hidden, (str, bytes)) or not hasattr(
            self.hidden, "__iter__"
        ):
            raise ValueError(
                f"hidden must be a sequence of positive integers, got {self.hidden!r}"
            )
        self.hidden = tuple(
            check_positive_int(h, "hidden (each width)") for h in self.hidden
        )
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(
                f"device must be a non-empty string such as 'cpu', got {self.device!r}"
            )


@dataclass
class ReinforceHistory:
    """What :func:`train_reinforce` records, one entry per epoch."""

    env_steps: list[int] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def _collect_episodes(
    envs: Any,
    policy: Any,
    rng: np.random.Generator,
    min_steps: int,
    seed: int,
    device: str,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Complete episodes of ``policy`` on the vector env ``envs``, all begun at a reset.

    Resets every copy (``envs.reset(seed=seed)``, copy ``i`` seeded ``seed + i``), then
    steps all copies together until the episodes completed since that reset hold at
    least ``min_steps`` steps. Returns one ``(observations, actions, rewards)`` triple
    per completed episode. The step right after an episode ends only resets that copy
    (gymnasium's next-step autoreset: action ignored, reward 0) and is not recorded;
    episodes still running at the end are discarded (their return is not known yet).
    """
    import torch

    obs, _ = envs.reset(seed=seed)
    num_envs = obs.shape[0]
    n_actions = int(envs.single_action_space.n)
    running: list[list[tuple[Any, int, float]]] = [[] for _ in range(num_envs)]
    just_reset = np.zeros(num_envs, dtype=bool)
    episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_collected = 0
    while n_collected < min_steps:
        with torch.inference_mode():
            logits = policy(torch.as_tensor(obs, dtype=torch.float32, device=device))
            cum = torch.softmax(logits, -1).cumsum(-1).cpu().numpy()
        actions = np.minimum((rng.random((num_envs, 1)) >= cum).sum(1), n_actions - 1)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        for i in np.flatnonzero(~just_reset):  # a step right after an end only resets
            running[i].append((obs[i].copy(), int(actions[i]), float(rewards[i])))
            if terminated[i] or truncated[i]:
                ep_obs, ep_act, ep_rew = zip(*running[i])
                episodes.append(
                    (np.array(ep_obs), np.array(ep_act), np.array(ep_rew, dtype=float))
                )
                n_collected += len(ep_rew)
                running[i] = []
        just_reset = terminated | truncated
        obs = next_obs
    return episodes


def train_reinforce(
    config: ReinforceConfig, seed: int = 0, progress: bool = True
) -> tuple[Any, ReinforceHistory]:
    """Train a softmax MLP policy with REINFORCE; returns ``(policy_network, history)``.

    Each epoch resets the ``config.num_envs`` environment copies (seeded from ``seed``
    and the epoch number), runs them in parallel with the current policy until the
    episodes *completed since that reset* hold at least ``steps_per_epoch`` steps
    (:func:`_collect_episodes`; episodes still running are discarded, so every recorded
    episode is whole, from a reset to its end), then takes one Adam step on the
    surrogate loss :math:`-\\frac{1}{N} \\sum_{t} w_t \\log \\pi_\\theta(a_t|s_t)`, the sum
    running over the ``N`` recorded steps of all episodes. Minus its gradient is the sum
    of the per-episode estimates chosen by ``config.estimator`` divided by ``N`` (not
    by the number of episodes). ``history.mean_return`` is the mean undiscounted return
    of the epoch's completed episodes. Seeds numpy, torch and the environments.
    """
    import gymnasium as gym
    import torch
    from companion.progress import tqdm

    from companion.nets import mlp
    from companion.rollout import make_vector_env

    if not isinstance(config, ReinforceConfig):
        raise ValueError(
            f"config must be a ReinforceConfig, got {type(config).__name__}"
        )
    config.__post_init__()  # fields may have been changed after construction
    if (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    gamma = config.gamma

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    envs = make_vector_env(config.env_id, config.num_envs, seed)
    if not isinstance(envs.single_action_space, gym.spaces.Discrete):
        raise ValueError(
            f"{config.env_id} must have a Discrete action space for this learner"
        )
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    n_actions = int(envs.single_action_space.n)
    policy = mlp([obs_dim, *config.hidden, n_actions]).to(
        config.device, dtype=torch.float32
    )
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    history = ReinforceHistory()
    total_steps = 0
    bar = tqdm(
        range(config.n_epochs),
        desc=f"REINFORCE ({config.estimator})",
        disable=not progress,
    )
    for epoch in bar:
        # every copy starts a fresh episode, seeded from the run's seed and the epoch, so
        # that no recorded episode is the tail of one begun in the previous epoch
        epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
        episodes = _collect_episodes(
            envs, policy, rng, config.steps_per_epoch, epoch_seed, config.device
        )
        batch_obs = np.concatenate([ep[0] for ep in episodes])
        batch_act = np.concatenate([ep[1] for ep in episodes])
        batch_w = [step_weights(ep[2], gamma, config.estimator) for ep in episodes]
        ep_returns = [float(ep[2].sum()) for ep in episodes]
        n_collected = len(batch_act)
        obs_t = torch.as_tensor(batch_obs, dtype=torch.float32, device=config.device)
        act_t = torch.as_tensor(batch_act, device=config.device)
        w_t = torch.as_tensor(
            np.concatenate(batch_w), dtype=torch.float32, device=config.device
        )
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
