"""Temporal-difference learning of a value function (Chapter 1, section "TD learning").

TD(0) nudges a guess :math:`V` towards self-consistency with the Bellman equation using
one sampled transition at a time:

.. math::

    \\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t), \\qquad V(s_t) \\leftarrow V(s_t) + \\alpha_t \\delta_t,

which is the update :math:`V(s) := (1-\\alpha) V(s) + \\alpha (r + \\gamma V(s'))`
rewritten with the TD residual :math:`\\delta_t`.

In the tabular case the update of state :math:`s` moves :math:`V(s)` towards the
right-hand side of its own Bellman equation whatever law the updated states are drawn
from, so TD(0) converges to :math:`V_\\pi` both along a trajectory of :math:`\\pi`
(:func:`td0`, :func:`td0_runs` with ``sampling="trajectory"``) and on states drawn
independently from any distribution with full support (``sampling="random_states"``),
provided every state is updated infinitely often with Robbins-Monro step sizes
(Tsitsiklis 1994). With function approximation the state distribution matters
(Tsitsiklis and Van Roy 1997).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion._validate import as_array, check_gamma, check_positive_int
from companion.mdp import (
    MonteCarloEstimate,
    TabularMDP,
    _categorical,
    _check_distribution,
    _check_mdp,
    _check_seed,
    _draw,
    check_policy,
    monte_carlo_disagreement,
    value_function,
)

__all__ = [
    "td0",
    "td0_runs",
    "td_residual",
    "expected_td_residual",
    "td_advantage_disagreement",
    "linear_td_fixed_point",
]

StepSize = float | Callable[[int], float]


def _step_size(alpha: Any) -> Callable[[int], float]:
    """A step-size schedule from a constant in (0, 1] or a callable of the visit count."""
    if callable(alpha):
        return alpha
    try:
        constant = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in (0, 1] or a callable, got {alpha!r}") from None
    if not (0.0 < constant <= 1.0):
        raise ValueError(f"alpha must lie in (0, 1], got {alpha!r}")

    def step(n: int) -> float:
        return constant

    step.constant = constant  # type: ignore[attr-defined]
    return step


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
    step = _step_size(alpha)
    S = mdp.n_states
    V = np.zeros(S) if V0 is None else as_array(V0, "V0", shape=(S,)).copy()
    rng = np.random.default_rng(_check_seed(seed))
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


def td0_runs(
    mdp: TabularMDP,
    pi: Any,
    alpha: StepSize,
    n_steps: int,
    n_runs: int,
    sampling: str = "trajectory",
    state_dist: Any | None = None,
    checkpoints: Any | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """``n_runs`` independent TD(0) runs side by side, under one of two sampling schemes.

    * ``sampling="trajectory"``: each run follows one trajectory of ``pi`` from
      :math:`s_0 \\sim \\mu`, as :func:`td0` does: :math:`s_{t+1}` is the next state of
      the transition just used.
    * ``sampling="random_states"``: at every step each run draws a fresh state
      :math:`s \\sim` ``state_dist`` (uniform by default; it must give every state a
      positive probability), then :math:`a \\sim \\pi(\\cdot|s)`, :math:`s' \\sim P(\\cdot|s,a)`,
      and updates :math:`V(s)`. In the tabular case this also converges to
      :math:`V_\\pi` (Chapter 1, section "Temporal-difference learning"): the update of
      :math:`V(s)` targets :math:`\\mathbb E[r + \\gamma V(s') \\mid s] = (T^\\pi V)(s)`
      whatever law picked :math:`s`.

    ``alpha`` is a constant in ``(0, 1]`` or a function of the per-state visit count
    (1 on the first visit); it is called with an integer array of counts when it
    accepts one (``lambda n: n ** -0.7`` does), else entry by entry.

    Returns an array of shape ``(len(checkpoints), n_runs, S)``: the estimates after
    each number of updates in ``checkpoints`` (default: only ``n_steps``).
    """
    pi = check_policy(mdp, pi)
    n_steps = check_positive_int(n_steps, "n_steps")
    n_runs = check_positive_int(n_runs, "n_runs")
    if sampling not in ("trajectory", "random_states"):
        raise ValueError(f"sampling must be 'trajectory' or 'random_states', got {sampling!r}")
    S = mdp.n_states
    if state_dist is not None:
        if sampling != "random_states":
            raise ValueError("state_dist is only used with sampling='random_states'")
        state_dist = _check_distribution(state_dist, "state_dist", shape=(S,))
        if np.any(state_dist <= 0):
            raise ValueError("state_dist must give every state a positive probability")
    elif sampling == "random_states":
        state_dist = np.full(S, 1.0 / S)
    if checkpoints is None:
        marks = np.array([n_steps])
    else:
        marks = np.asarray(checkpoints)
        if (
            marks.ndim != 1
            or marks.size == 0
            or not np.issubdtype(marks.dtype, np.integer)
            or np.any(np.diff(marks) <= 0)
            or marks[0] < 1
            or marks[-1] > n_steps
        ):
            raise ValueError(
                f"checkpoints must be increasing integers in [1, n_steps={n_steps}], got {checkpoints!r}"
            )
    step = _step_size(alpha)
    rng = np.random.default_rng(_check_seed(seed))
    cum_pi, cum_P = np.cumsum(pi, axis=1), np.cumsum(mdp.P, axis=2)
    cum_mu = np.broadcast_to(np.cumsum(mdp.mu), (n_runs, S))
    cum_d = None if state_dist is None else np.broadcast_to(np.cumsum(state_dist), (n_runs, S))
    runs = np.arange(n_runs)
    V = np.zeros((n_runs, S))
    visits = np.zeros((n_runs, S), dtype=np.int64)
    out = np.empty((marks.size, n_runs, S))
    s = _draw(rng, cum_mu) if sampling == "trajectory" else None
    n_cols = cum_P.shape[2]
    k, block = 0, 4096
    for t0 in range(0, int(marks[-1]), block):
        # uniforms for the state (random_states only), action and next-state draws
        u = rng.random((min(block, int(marks[-1]) - t0), 3, n_runs, 1))
        for j in range(u.shape[0]):
            if sampling == "random_states":
                s = np.minimum((u[j, 0] >= cum_d).sum(axis=1), S - 1)
            a = np.minimum((u[j, 1] >= cum_pi[s]).sum(axis=1), cum_pi.shape[1] - 1)
            s_next = np.minimum((u[j, 2] >= cum_P[s, a]).sum(axis=1), n_cols - 1)
            visits[runs, s] += 1
            lr = _evaluate_steps(step, visits[runs, s])
            V[runs, s] += lr * (mdp.R[s, a] + mdp.gamma * V[runs, s_next] - V[runs, s])
            s = s_next
            if t0 + j + 1 == marks[k]:
                out[k] = V
                k += 1
    return out


def _evaluate_steps(step: Callable[..., Any], counts: np.ndarray) -> np.ndarray:
    constant = getattr(step, "constant", None)
    if constant is not None:
        return constant
    try:
        lr = np.asarray(step(counts), dtype=np.float64)
        if lr.shape != counts.shape:
            raise TypeError
    except Exception:
        lr = np.array([float(step(int(c))) for c in counts])
    if not np.all(np.isfinite(lr) & (lr > 0) & (lr <= 1)):
        bad = int(np.argmax(~(np.isfinite(lr) & (lr > 0) & (lr <= 1))))
        raise ValueError(f"alpha({counts[bad]}) returned {lr[bad]!r}; step sizes must lie in (0, 1]")
    return lr


def expected_td_residual(mdp: TabularMDP, V: Any) -> np.ndarray:
    """:math:`\\mathbb E_{s' \\sim P(\\cdot|s,a)}[\\delta^V(s, a, s')] = r(s,a) + \\gamma \\sum_{s'} P(s'|s,a) V(s') - V(s)`, shape ``(S, A)``.

    By Chapter 1's ``lem-td-advantage`` this equals :math:`A_\\pi` at :math:`V = V_\\pi`.
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return mdp.R + mdp.gamma * mdp.P @ V - V[:, None]


def td_advantage_disagreement(
    candidate: Any, mdp: TabularMDP, pi: Any, q_estimate: MonteCarloEstimate, n_se: float = 4.0
) -> float:
    """Compare a claimed :math:`A_\\pi` (e.g. the expected TD residual) with Monte Carlo.

    The reference is :math:`\\hat Q(s,a) - V_\\pi(s)`, where :math:`\\hat Q` comes from
    rollouts started at :math:`(s, a)` (:func:`companion.mdp.monte_carlo_q`) and
    :math:`V_\\pi` from the linear solve; returns the largest deviation in units of the
    tolerance (``n_se`` standard errors plus the truncation bound), as
    :func:`companion.mdp.monte_carlo_disagreement` does. At most 1 means agreement.
    """
    pi = check_policy(mdp, pi)
    if not isinstance(q_estimate, MonteCarloEstimate):
        raise ValueError(f"q_estimate must be a MonteCarloEstimate, got {type(q_estimate).__name__}")
    if q_estimate.mean.shape != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"q_estimate must have shape {(mdp.n_states, mdp.n_actions)}, got {q_estimate.mean.shape}")
    V = value_function(mdp, pi)
    shifted = MonteCarloEstimate(
        q_estimate.mean - V[:, None], q_estimate.stderr, q_estimate.truncation, q_estimate.n, q_estimate.horizon
    )
    return monte_carlo_disagreement(candidate, shifted, n_se)


def linear_td_fixed_point(mdp: TabularMDP, pi: Any, features: Any, state_dist: Any) -> np.ndarray:
    """Fixed point of linear TD(0) with states drawn from ``state_dist``: the values :math:`\\Phi \\theta`.

    Expected linear TD(0) updates :math:`\\theta \\leftarrow \\theta + \\alpha\\, \\phi(s) \\delta`
    with :math:`s \\sim d`, :math:`a \\sim \\pi`, :math:`s' \\sim P` are at rest when
    :math:`\\Phi^\\top D (r_\\pi + \\gamma P_\\pi \\Phi \\theta - \\Phi \\theta) = 0`,
    :math:`D = \\mathrm{diag}(d)` (Tsitsiklis and Van Roy, 1997). Returns
    :math:`\\Phi \\theta`, shape ``(S,)``. With tabular features (:math:`\\Phi = I`) this
    is :math:`V_\\pi` for every ``state_dist`` with full support; with fewer features
    than states it depends on ``state_dist``.
    """
    pi = check_policy(mdp, pi)
    S = mdp.n_states
    Phi = as_array(features, "features", ndim=2)
    if Phi.shape[0] != S or Phi.shape[1] == 0:
        raise ValueError(f"features must have shape ({S}, k) with k >= 1, got {Phi.shape}")
    d = _check_distribution(state_dist, "state_dist", shape=(S,))
    if np.any(d <= 0):
        raise ValueError("state_dist must give every state a positive probability")
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.R).sum(axis=1)
    A = Phi.T @ (d[:, None] * (Phi - mdp.gamma * P_pi @ Phi))
    b = Phi.T @ (d * r_pi)
    try:
        theta = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        raise ValueError("the linear TD system is singular for these features and state_dist") from None
    return Phi @ theta
