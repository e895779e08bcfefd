"""Generalized advantage estimation (Chapter 6, ``book/06_gae.md``; Schulman et al. 2015).

With TD residuals :math:`\\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t)`, the GAE(:math:`\\gamma, \\lambda`)
advantage estimate is the exponentially weighted sum

.. math::

    \\hat A_t = \\sum_{l \\ge 0} (\\gamma \\lambda)^l \\delta_{t+l}
             = \\delta_t + \\gamma \\lambda \\hat A_{t+1},

cut at the end of each episode. Special cases: :math:`\\lambda = 0` gives the TD residual
:math:`\\delta_t`; :math:`\\lambda = 1` gives the discounted Monte Carlo return minus
:math:`V(s_t)`.

Episode ends come in two kinds, as gymnasium reports them:

* **terminated** (the MDP reached a terminal state): the value after it is 0, so
  :math:`\\delta_t = r_t - V(s_t)`;
* **truncated** (a time limit or the end of the rollout cut the episode short): the
  episode *would* have continued, so the value of the final observation is
  bootstrapped, :math:`\\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t)`.

In both cases the recursion does not look past the end: :math:`\\hat A_t = \\delta_t`.
On the reset steps of a vector environment's next-step autoreset, ``gae`` returns
meaningless values, which the learners mask (see :func:`gae`).

For the bias/variance analysis of the chapter, the module also computes exact
quantities on a tabular MDP: the :math:`k`-step bias (:func:`k_step_bias`, checked
against :func:`k_step_mean` by :func:`k_step_bias_gap`) and the exact moments of the
GAE estimate (:func:`gae_moments`, :func:`softmax_gradient_error`), with
:func:`moment_z_scores` to compare them with samples.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from companion._validate import (
    as_array,
    check_gamma,
    check_positive_int,
    check_unit_interval,
)

__all__ = [
    "gae",
    "lambda_returns",
    "k_step_advantage",
    "state_law",
    "k_step_mean",
    "k_step_bias",
    "k_step_bias_gap",
    "gae_moments",
    "softmax_gradient_error",
    "moment_z_scores",
]


_NAMES = ("rewards", "values", "next_values", "terminated", "truncated")


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def _prepare(rewards: Any, values: Any, next_values: Any, terminated: Any, truncated: Any) -> tuple:
    """Validate shapes and values; return float arrays (all numpy or all torch).

    If any argument is a torch tensor, all five must be (so the result can stay on the
    caller's device); otherwise anything :func:`numpy.asarray` accepts (lists included)
    is converted to float64. Raises ``ValueError`` naming the offending argument.
    """
    arrays = (rewards, values, next_values, terminated, truncated)
    tensors = [_is_torch(a) for a in arrays]
    if any(tensors):
        import torch

        for name, is_t in zip(_NAMES, tensors):
            if not is_t:
                raise ValueError(
                    f"{name} must be a torch tensor like the other arguments "
                    f"(pass all five as tensors or none), got {type(arrays[_NAMES.index(name)]).__name__}"
                )
        dtype = rewards.dtype if rewards.is_floating_point() else torch.float32
        out = []
        for name, a in zip(_NAMES, arrays):
            if a.shape != rewards.shape:
                raise ValueError(f"{name} must have the shape of rewards {tuple(rewards.shape)}, got {tuple(a.shape)}")
            a = a.to(dtype)
            if not bool(torch.all(torch.isfinite(a))):
                raise ValueError(f"{name} contains NaN or inf")
            out.append(a)
    else:
        r = as_array(rewards, "rewards")
        out = [r] + [as_array(a, n, shape=r.shape) for n, a in zip(_NAMES[1:], arrays[1:])]
    for name, f in zip(_NAMES[3:], out[3:]):
        if bool(((f != 0) & (f != 1)).any()):
            raise ValueError(f"{name} must hold 0/1 or bool flags")
    if out[0].ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (T,) or (T, N), got {tuple(out[0].shape)}")
    return tuple(out)


def gae(
    rewards: Any,
    values: Any,
    next_values: Any,
    terminated: Any,
    truncated: Any,
    gamma: float,
    lam: float,
) -> Any:
    """GAE(:math:`\\gamma, \\lambda`) advantages, same shape and type as ``rewards``.

    Parameters
    ----------
    rewards : (T,) or (T, N)
        :math:`r_t`; ``N`` environments side by side (time on axis 0).
    values : same shape
        :math:`V(s_t)`, the critic's value of the state in which the action was taken.
    next_values : same shape
        :math:`V(s_{t+1})`. For a truncated step, the value of the *final observation*
        of the episode (not of the reset observation a vector env returns); for a
        terminated step it is ignored.
    terminated, truncated : same shape, 0/1 or bool
        As gymnasium reports them for step ``t``.
    gamma, lam : floats in [0, 1]
        Discount :math:`\\gamma` and GAE parameter :math:`\\lambda`.

    Returns
    -------
    advantages
        :math:`\\hat A_t`, computed by the backward recursion
        :math:`\\delta_t = r_t + \\gamma (1 - \\text{terminated}_t) V(s_{t+1}) - V(s_t)`,
        :math:`\\hat A_t = \\delta_t + \\gamma\\lambda(1 - \\text{done}_t) \\hat A_{t+1}` with
        ``done = terminated or truncated`` and :math:`\\hat A_T = 0` (Chapter 6, eq.
        ``gae-recursion``). Vectorised over ``N``; numpy (or lists) in, float64 numpy
        out; torch in, torch out (same device; integer rewards give float32). ``T = 0``
        gives an empty result.

    Notes
    -----
    On a rollout of a vector environment with gymnasium's next-step autoreset
    (:class:`companion.rollout.Rollout`), the step after an episode end only resets the
    environment: its ``values`` is the value of the previous episode's final observation
    and its ``next_values`` that of the new first observation. ``gae`` returns a
    meaningless number there (it does not know about such steps); the learners leave
    those steps out of every loss through ``Rollout.valid``. The meaningless value does
    not leak into the steps before it, because the recursion stops at the episode end
    that precedes it.

    Raises
    ------
    ValueError
        If ``gamma`` or ``lam`` lies outside ``[0, 1]``, the arrays do not all have the
        shape of ``rewards`` (``(T,)`` or ``(T, N)``), an entry is NaN or inf, a flag is
        not 0/1, or torch tensors are mixed with other types; the message names the
        argument.
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = check_unit_interval(lam, "lam")
    r, v, v_next, term, trunc = _prepare(rewards, values, next_values, terminated, truncated)
    not_terminal = 1 - term
    not_done = (1 - term) * (1 - trunc)
    delta = r + gamma * not_terminal * v_next - v
    decay = gamma * lam * not_done
    adv = delta * 0  # zeros of the right type, shape and device
    if r.shape[0] == 0:
        return adv
    running = adv[0] * 0
    for t in range(r.shape[0] - 1, -1, -1):
        running = delta[t] + decay[t] * running
        adv[t] = running
    return adv


def lambda_returns(
    rewards: Any,
    values: Any,
    next_values: Any,
    terminated: Any,
    truncated: Any,
    gamma: float,
    lam: float,
) -> Any:
    """TD(:math:`\\lambda`) returns :math:`\\hat A_t + V(s_t)`: the regression targets of a critic trained with GAE."""
    return gae(rewards, values, next_values, terminated, truncated, gamma, lam) + values


def k_step_advantage(rewards: Any, values: Any, gamma: float, k: int) -> np.ndarray:
    """The :math:`k`-step advantage estimates :math:`\\hat A^{(k)}_t` along one trajectory segment.

    :math:`\\hat A^{(k)}_t = \\sum_{l=0}^{k-1} \\gamma^l r_{t+l} + \\gamma^k V(s_{t+k}) - V(s_t)
    = \\sum_{l=0}^{k-1} \\gamma^l \\delta_{t+l}` (Chapter 6, eq. ``k-step``). ``rewards`` has
    shape ``(T,)`` and ``values`` shape ``(T + 1,)`` (the last entry is the value of the
    state after the segment; 0 if it is terminal). Near the end of the segment, where
    :math:`t + k > T`, the sum stops at :math:`T` and bootstraps from ``values[T]``.
    """
    r = as_array(rewards, "rewards", ndim=1)
    T = r.shape[0]
    v = as_array(values, "values", shape=(T + 1,))
    k = check_positive_int(k, "k")
    g = check_gamma(gamma, allow_one=True)
    delta = r + g * v[1:] - v[:-1]
    # A^(k)_t = sum_{l<k} gamma^l delta_{t+l}, with delta = 0 past the end of the segment
    padded = np.concatenate([delta, np.zeros(min(k, T))])
    out = np.zeros(T)
    for l in range(min(k, T)):
        out += g**l * padded[l : l + T]
    return out


# --- exact moments on a tabular MDP (the bias/variance experiment of Chapter 6) ---------


def _tabular(mdp: Any, pi: Any, V: Any) -> tuple[np.ndarray, np.ndarray]:
    from companion import mdp as _mdp

    if not isinstance(mdp, _mdp.TabularMDP):
        raise ValueError(f"mdp must be a companion.mdp.TabularMDP, got {type(mdp).__name__}")
    pi = _mdp.check_policy(mdp, pi)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return pi, V


def state_law(mdp: Any, pi: Any, k: int) -> np.ndarray:
    """:math:`P(s_{t+k} = s' \\mid s_t = s, a_t = a)`, shape ``(S, A, S)``, for ``k >= 0``.

    ``k = 0`` is the indicator of :math:`s' = s`; for ``k >= 1`` it is
    :math:`P(\\cdot \\mid s, a)\\, P_\\pi^{k-1}`, with later actions drawn from ``pi``.
    """
    from companion import mdp as _mdp

    pi, _ = _tabular(mdp, pi, np.zeros(mdp.n_states))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    S, A = mdp.n_states, mdp.n_actions
    if k == 0:
        return np.broadcast_to(np.eye(S)[:, None, :], (S, A, S)).copy()
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    return mdp.P @ np.linalg.matrix_power(P_pi, k - 1)


def k_step_mean(mdp: Any, pi: Any, V: Any, k: int) -> np.ndarray:
    """:math:`\\mathbb E[\\hat A^{(k)}_t \\mid s_t = s, a_t = a]` exactly, shape ``(S, A)``.

    Computed backwards, without :math:`V_\\pi`: with :math:`W_0 = V` and
    :math:`W_j = T^\\pi W_{j-1}` (``k - 1`` Bellman expectation backups of the critic),
    :math:`\\mathbb E[\\hat A^{(k)}_t \\mid s, a] = r(s, a) + \\gamma \\sum_{s'} P(s' \\mid s, a)
    W_{k-1}(s') - V(s)`: the expected discounted rewards of the ``k`` steps, then the
    bootstrap :math:`\\gamma^k V(s_{t+k})` (Chapter 6, eq. ``k-step``).
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    k = check_positive_int(k, "k")
    W = V
    for _ in range(k - 1):
        W = _mdp.bellman_expectation_backup(mdp, pi, W)
    return mdp.R + mdp.gamma * mdp.P @ W - V[:, None]


def k_step_bias(mdp: Any, pi: Any, V: Any, k: int) -> np.ndarray:
    """Bias of the :math:`k`-step advantage estimator, shape ``(S, A)`` (Chapter 6, eq. ``k-step-bias``).

    With the critic's error :math:`e = V - V_\\pi`,

    .. math::

        \\mathbb E[\\hat A^{(k)}_t \\mid s_t, a_t] - A_\\pi(s_t, a_t)
        = \\gamma^k\\, \\mathbb E[e(s_{t+k}) \\mid s_t, a_t] - e(s_t).

    The first term depends on the action and vanishes as :math:`k \\to \\infty` (for
    :math:`\\gamma < 1`); the second, :math:`-e(s_t)`, does not, but depends on the state
    only, so its contribution to the expected policy gradient is zero.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    k = check_positive_int(k, "k")
    e = V - _mdp.value_function(mdp, pi)
    return mdp.gamma**k * state_law(mdp, pi, k) @ e - e[:, None]


def k_step_bias_gap(
    bias: Callable[[Any, np.ndarray, np.ndarray, int], Any],
    mdp: Any,
    pi: Any,
    V: Any,
    ks: Sequence[int],
) -> float:
    """Largest gap between a claimed bias formula and the exact bias of :math:`\\hat A^{(k)}`.

    ``bias(mdp, pi, V, k)`` returns an ``(S, A)`` array; it is compared with
    :func:`k_step_mean` minus the exact advantage :math:`A_\\pi` (a linear solve) for
    every ``k`` in ``ks``. Returns :math:`\\max_{k, s, a}` of the absolute difference; the
    correct formula (:func:`k_step_bias`) gives rounding error only.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    A_pi = _mdp.advantage_function(mdp, pi)
    gaps = []
    for k in ks:
        claimed = as_array(bias(mdp, pi, V, k), "bias(mdp, pi, V, k)", shape=A_pi.shape)
        gaps.append(np.max(np.abs(claimed - (k_step_mean(mdp, pi, V, k) - A_pi))))
    if not gaps:
        raise ValueError("ks must contain at least one k")
    return float(max(gaps))


def gae_moments(mdp: Any, pi: Any, V: Any, lams: Any, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and second moment of :math:`\\hat A_0` given :math:`(s_0, a_0) = (s, a)`.

    The estimator is what :func:`gae` returns at the first step of a segment of
    ``horizon`` steps that follows ``pi`` (rewards :math:`r(s, a)` of ``mdp``, critic
    ``V``), whose last step is marked truncated so that it bootstraps:
    :math:`\\hat A_0 = \\sum_{l < H} (\\gamma\\lambda)^l \\delta_l`. With
    :math:`X_l = \\delta_l + \\gamma\\lambda X_{l+1}`, :math:`X_H = 0`, the conditional
    moments :math:`m_l(s, a) = \\mathbb E[X_l \\mid s, a]` and
    :math:`M_l(s, a) = \\mathbb E[X_l^2 \\mid s, a]` follow backwards from the Markov
    property, since :math:`\\delta_l` is a function of :math:`(s_l, a_l, s_{l+1})`.

    Returns ``(mean, second)``, each of shape ``(len(lams), S, A)``.
    """
    pi, V = _tabular(mdp, pi, V)
    horizon = check_positive_int(horizon, "horizon")
    lams = np.atleast_1d(as_array(lams, "lams"))
    if lams.ndim != 1 or np.any((lams < 0) | (lams > 1)):
        raise ValueError(f"lams must be numbers in [0, 1], got {lams}")
    g = mdp.gamma
    delta = mdp.R[:, :, None] + g * V[None, None, :] - V[:, None, None]  # (S, A, S')
    c = (g * lams)[:, None, None, None]  # (L, 1, 1, 1)
    L, S = len(lams), mdp.n_states
    m_next, M_next = np.zeros((L, S)), np.zeros((L, S))  # state averages at step l + 1
    for _ in range(horizon):
        mean = np.sum(mdp.P * (delta + c * m_next[:, None, None, :]), axis=-1)
        second = np.sum(
            mdp.P * (delta**2 + 2 * c * delta * m_next[:, None, None, :] + c**2 * M_next[:, None, None, :]),
            axis=-1,
        )
        m_next, M_next = np.einsum("sa,lsa->ls", pi, mean), np.einsum("sa,lsa->ls", pi, second)
    return mean, second


def softmax_gradient_error(
    mdp: Any, pi: Any, V: Any, s0: int, lams: Any, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Squared bias and variance of the GAE policy-gradient estimate at a start state.

    For a tabular softmax policy the contribution of :math:`(s_0, a_0)` to the gradient
    with respect to the logits of :math:`s_0` is
    :math:`\\hat g = \\hat A_0 (\\mathbf e_{a_0} - \\pi(\\cdot \\mid s_0))`, with target
    :math:`g = \\pi(\\cdot \\mid s_0) \\odot A_\\pi(s_0, \\cdot)`. From the exact moments of
    :func:`gae_moments`: returns ``(bias2, var)`` with
    ``bias2`` :math:`= \\|\\mathbb E \\hat g - g\\|^2` and ``var`` :math:`= \\mathbb E\\|\\hat g -
    \\mathbb E \\hat g\\|^2`, per sample, each of shape ``(len(lams),)``.
    """
    from companion import mdp as _mdp

    pi, V = _tabular(mdp, pi, V)
    if not 0 <= s0 < mdp.n_states:
        raise ValueError(f"s0 must be in [0, {mdp.n_states}), got {s0!r}")
    mean, second = gae_moments(mdp, pi, V, lams, horizon)
    A = mdp.n_actions
    scores = np.eye(A) - pi[s0]  # row a: e_a - pi(.|s0)
    g_true = pi[s0] * _mdp.advantage_function(mdp, pi)[s0]
    g_mean = np.einsum("a,la,ab->lb", pi[s0], mean[:, s0], scores)
    g_second = np.einsum("a,la,a->l", pi[s0], second[:, s0], np.sum(scores**2, axis=1))
    bias2 = np.sum((g_mean - g_true) ** 2, axis=1)
    var = g_second - np.sum(g_mean**2, axis=1)
    return bias2, var


def moment_z_scores(samples: Any, mean: Any, var: Any) -> tuple[float, float]:
    """How far sampled vectors are from a claimed mean and total variance, in standard errors.

    ``samples`` has shape ``(n, d)`` (``n`` independent draws of a ``d``-vector), ``mean``
    shape ``(d,)`` and ``var`` is the claimed :math:`\\mathbb E\\|x - \\mathbb E x\\|^2`.
    Returns ``(z_mean, z_var)``: the largest :math:`|\\bar x_i - \\text{mean}_i|` over
    its standard error, and :math:`|\\hat v - \\text{var}|` over the standard error of the
    sample total variance :math:`\\hat v` (from the spread of
    :math:`\\|x - \\bar x\\|^2`). A claim is consistent with the samples when both are
    below a few units (the chapter uses 5).
    """
    x = as_array(samples, "samples", ndim=2)
    n, d = x.shape
    if n < 2:
        raise ValueError(f"samples needs at least 2 rows, got {n}")
    mean = as_array(mean, "mean", shape=(d,))
    var = float(as_array(var, "var", shape=()))
    xbar = x.mean(axis=0)
    se_mean = x.std(axis=0, ddof=1) / np.sqrt(n)
    z_mean = float(np.max(np.abs(xbar - mean) / np.maximum(se_mean, 1e-300)))
    sq = np.sum((x - xbar) ** 2, axis=1)
    v_hat = sq.sum() / (n - 1)
    z_var = float(abs(v_hat - var) / max(sq.std(ddof=1) / np.sqrt(n), 1e-300))
    return z_mean, z_var
