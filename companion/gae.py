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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from companion._validate import as_array, check_gamma, check_positive_int, check_unit_interval

__all__ = ["gae", "lambda_returns", "k_step_advantage"]


def _is_torch(x: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, torch.Tensor)


def _prepare(rewards: Any, values: Any, next_values: Any, terminated: Any, truncated: Any) -> tuple:
    """Validate shapes and values; return float arrays (numpy or torch, as given)."""
    names = ("rewards", "values", "next_values", "terminated", "truncated")
    arrays = (rewards, values, next_values, terminated, truncated)
    if _is_torch(rewards):
        import torch

        if not all(isinstance(a, torch.Tensor) for a in arrays):
            raise ValueError("with torch rewards, values, next_values, terminated and truncated must all be tensors")
        out = []
        for name, a in zip(names, arrays):
            a = a.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
            if a.shape != rewards.shape:
                raise ValueError(f"{name} must have the shape of rewards {tuple(rewards.shape)}, got {tuple(a.shape)}")
            if not torch.all(torch.isfinite(a)):
                raise ValueError(f"{name} contains NaN or inf")
            out.append(a)
        flags = out[3:]
        if any(torch.any((f != 0) & (f != 1)) for f in flags):
            raise ValueError("terminated and truncated must be 0/1 or bool")
    else:
        r = as_array(rewards, "rewards")
        out = [r] + [as_array(a, n, shape=r.shape) for n, a in zip(names[1:], arrays[1:])]
        if any(np.any((f != 0) & (f != 1)) for f in out[3:]):
            raise ValueError("terminated and truncated must be 0/1 or bool")
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
        ``gae-recursion``). Vectorised over ``N``; numpy in, numpy out; torch in, torch out.
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = check_unit_interval(lam, "lam")
    r, v, v_next, term, trunc = _prepare(rewards, values, next_values, terminated, truncated)
    not_terminal = 1 - term
    not_done = (1 - term) * (1 - trunc)
    delta = r + gamma * not_terminal * v_next - v
    decay = gamma * lam * not_done
    adv = delta * 0  # zeros of the right type, shape and device
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
    return sum(g**l * padded[l : l + T] for l in range(min(k, T)))
