"""Temporal-difference learning of a value function (Chapter 1, section "TD learning").

TD(0) nudges a guess :math:`V` towards self-consistency with the Bellman equation using
one sampled transition at a time:

.. math::

    \\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t), \\qquad V(s_t) \\leftarrow V(s_t) + \\alpha_t \\delta_t,

which is the notes' update :math:`V(s) := (1-\\alpha) V(s) + \\alpha (r + \\gamma V(s'))`
rewritten with the TD residual :math:`\\delta_t`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion._validate import as_array, check_gamma, check_positive_int
from companion.mdp import TabularMDP, _categorical, check_policy

__all__ = ["td0", "td_residual"]

StepSize = float | Callable[[int], float]


def td_residual(rewards: Any, values: Any, next_values: Any, gamma: float) -> np.ndarray:
    """TD residual :math:`\\delta = r + \\gamma V(s') - V(s)`, elementwise (Chapter 1, eq. ``td-residual``).

    All three arrays must have the same shape. ``gamma`` may equal 1 here (episodic
    settings), unlike in :class:`~companion.mdp.TabularMDP`.
    """
    r = as_array(rewards, "rewards")
    v = as_array(values, "values", shape=r.shape)
    v_next = as_array(next_values, "next_values", shape=r.shape)
    gamma = check_gamma(gamma, allow_one=True)
    return r + gamma * v_next - v


def td0(
    mdp: TabularMDP,
    pi: Any,
    alpha: StepSize,
    n_steps: int,
    seed: int | None = None,
    V0: Any | None = None,
) -> np.ndarray:
    """Estimate :math:`V_\\pi` by TD(0) along a single trajectory started from :math:`\\mu`.

    Parameters
    ----------
    mdp, pi
        The MDP and the ``(S, A)`` policy whose value is estimated.
    alpha
        Step size :math:`\\alpha`: a constant in ``(0, 1]``, or a function of the number
        of times the updated state has been visited so far (1 on the first visit), for
        example ``lambda n: n ** -0.7``. A constant step leaves a noise floor; a step
        size with :math:`\\sum \\alpha = \\infty, \\sum \\alpha^2 < \\infty` per state
        converges to :math:`V_\\pi` (Robbins-Monro conditions).
    n_steps
        Number of transitions (updates).
    seed
        Seed of the random generator that samples the trajectory.
    V0
        Initial guess, shape ``(S,)``; zeros by default.

    Returns
    -------
    V : array, shape (S,)
        The estimate after ``n_steps`` updates.
    """
    pi = check_policy(mdp, pi)
    n_steps = check_positive_int(n_steps, "n_steps")
    if callable(alpha):
        step = alpha
    else:
        constant = float(alpha)
        if not (0.0 < constant <= 1.0):
            raise ValueError(f"alpha must lie in (0, 1], got {alpha!r}")

        def step(n: int) -> float:
            return constant
    S = mdp.n_states
    V = np.zeros(S) if V0 is None else as_array(V0, "V0", shape=(S,)).copy()
    rng = np.random.default_rng(seed)
    cum_pi = np.cumsum(pi, axis=1)
    cum_P = np.cumsum(mdp.P, axis=2)
    # the same draws, in the same order, as companion.mdp.sample_trajectory with this seed
    s = _categorical(np.cumsum(mdp.mu), rng.random())
    u = rng.random((n_steps, 2))
    visits = np.zeros(S, dtype=np.int64)
    gamma, R = mdp.gamma, mdp.R
    for t in range(n_steps):
        a = _categorical(cum_pi[s], u[t, 0])
        s_next = _categorical(cum_P[s, a], u[t, 1])
        visits[s] += 1
        lr = float(step(int(visits[s])))
        if not (0.0 < lr <= 1.0) or not np.isfinite(lr):
            raise ValueError(f"alpha({visits[s]}) returned {lr!r}; step sizes must lie in (0, 1]")
        delta = R[s, a] + gamma * V[s_next] - V[s]
        V[s] += lr * delta
        s = s_next
    return V
