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

from companion._validate import as_array, check_distribution, check_gamma, check_positive_int
from companion.mdp import (
    MonteCarloEstimate,
    TabularMDP,
    _categorical,
    _check_mdp,
    _check_seed,
    _draw,
    check_policy,
)

__all__ = [
    "td0",
    "td0_runs",
    "td_residual",
    "expected_td_residual",
    "sampled_td_residual",
    "stationary_distribution",
    "weighted_projection",
    "projected_bellman_gap",
    "linear_td_fixed_point",
    "linear_td_runs",
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
        state_dist = check_distribution(state_dist, "state_dist", shape=(S,))
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
        raise ValueError(f"alpha({counts[bad]}) returned {float(lr[bad])!r}; step sizes must lie in (0, 1]")
    return lr


def expected_td_residual(mdp: TabularMDP, V: Any) -> np.ndarray:
    """:math:`\\mathbb E_{s' \\sim P(\\cdot|s,a)}[\\delta^V(s, a, s')] = r(s,a) + \\gamma \\sum_{s'} P(s'|s,a) V(s') - V(s)`, shape ``(S, A)``.

    By Chapter 1's ``lem-td-advantage`` this equals :math:`A_\\pi` at :math:`V = V_\\pi`.
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return mdp.R + mdp.gamma * mdp.P @ V - V[:, None]


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
    d = check_distribution(state_dist, "state_dist", shape=(S,))
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


Residual = Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]


def sampled_td_residual(
    mdp: TabularMDP,
    V: Any,
    n_samples: int,
    seed: int | None = None,
    residual: Residual | None = None,
) -> MonteCarloEstimate:
    """Average of sampled TD residuals per state-action pair, with its standard error.

    For every pair :math:`(s, a)` it draws ``n_samples`` next states
    :math:`s' \\sim P(\\cdot \\mid s, a)` and averages
    :math:`\\delta = r(s, a) + \\gamma V(s') - V(s)` (Chapter 1, eq. ``td-residual``).
    By ``lem-td-advantage`` the mean estimates :math:`A_\\pi(s, a)` at :math:`V = V_\\pi`;
    compare with :func:`companion.mdp.monte_carlo_disagreement`.

    ``residual(r, v, v_next, gamma)`` replaces the TD residual (default
    :func:`td_residual`); the tests use it to feed wrong residuals to the same check.
    Returns a :class:`~companion.mdp.MonteCarloEstimate` of shape ``(S, A)``, with no
    truncation (each sample is one transition).
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    n = check_positive_int(n_samples, "n_samples")
    if n < 2:
        raise ValueError(f"n_samples must be at least 2 (for a standard error), got {n}")
    residual = td_residual if residual is None else residual
    if not callable(residual):
        raise ValueError(f"residual must be callable, got {residual!r}")
    rng = np.random.default_rng(_check_seed(seed))
    S, A = mdp.n_states, mdp.n_actions
    cum_P = np.cumsum(mdp.P, axis=2).reshape(S * A, S)
    u = rng.random((n, S * A, 1))
    s_next = np.minimum((u >= cum_P[None]).sum(axis=2), S - 1).reshape(n, S, A)
    r = np.broadcast_to(mdp.R, (n, S, A))
    v = np.broadcast_to(V[:, None], (n, S, A))
    deltas = np.asarray(residual(r, v, V[s_next], mdp.gamma), dtype=np.float64)
    if deltas.shape != (n, S, A):
        raise ValueError(f"residual must return shape {(n, S, A)}, got {deltas.shape}")
    return MonteCarloEstimate(
        mean=deltas.mean(axis=0),
        stderr=deltas.std(axis=0, ddof=1) / np.sqrt(n),
        truncation=0.0,
        n=n,
        horizon=1,
    )


def stationary_distribution(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Stationary law of the state chain of ``pi``: :math:`d^\\top P_\\pi = d^\\top`, :math:`\\sum_s d(s) = 1`.

    This is the long-run frequency of states along one trajectory of :math:`\\pi`, the
    weighting of linear TD(0) run on-trajectory (Tsitsiklis and Van Roy, 1997). Solved
    as a least-squares system; a chain with several stationary laws is refused.
    """
    pi = check_policy(mdp, pi)
    S = mdp.n_states
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    system = np.vstack([P_pi.T - np.eye(S), np.ones((1, S))])
    rhs = np.concatenate([np.zeros(S), [1.0]])
    d, _, rank, _ = np.linalg.lstsq(system, rhs, rcond=None)
    if rank < S:
        raise ValueError("the chain of pi has several stationary distributions")
    return np.clip(d, 0.0, None) / np.clip(d, 0.0, None).sum()


def weighted_projection(values: Any, features: Any, state_dist: Any) -> np.ndarray:
    """:math:`\\Pi_D v`: the closest point to ``values`` in the span of the features, in the norm :math:`\\|x\\|_D^2 = \\sum_s d(s) x(s)^2`.

    Weighted least squares, :math:`\\Phi (\\Phi^\\top D \\Phi)^{-1} \\Phi^\\top D v`,
    computed by ``lstsq`` on the rows scaled by :math:`\\sqrt{d}`.
    """
    d = check_distribution(state_dist, "state_dist")
    S = d.shape[0]
    v = as_array(values, "values", shape=(S,))
    Phi = as_array(features, "features", ndim=2)
    if Phi.shape[0] != S or Phi.shape[1] == 0:
        raise ValueError(f"features must have shape ({S}, k) with k >= 1, got {Phi.shape}")
    w = np.sqrt(d)
    theta = np.linalg.lstsq(w[:, None] * Phi, w * v, rcond=None)[0]
    return Phi @ theta


def projected_bellman_gap(mdp: TabularMDP, pi: Any, features: Any, state_dist: Any, values: Any) -> float:
    """:math:`\\|\\Pi_D T^\\pi v - v\\|_\\infty`: how far ``values`` is from the projected Bellman equation.

    Linear TD(0) with states drawn from :math:`d` converges to the :math:`v = \\Phi\\theta`
    with :math:`v = \\Pi_D T^\\pi v` (Tsitsiklis and Van Roy, 1997), where
    :math:`T^\\pi v = r_\\pi + \\gamma P_\\pi v`. The gap is zero there; it is not zero,
    in general, at the projection :math:`\\Pi_D V_\\pi` of the true value. Computed with
    :func:`weighted_projection`, independently of :func:`linear_td_fixed_point`.
    """
    pi = check_policy(mdp, pi)
    v = as_array(values, "values", shape=(mdp.n_states,))
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.R).sum(axis=1)
    backed_up = r_pi + mdp.gamma * P_pi @ v
    return float(np.max(np.abs(weighted_projection(backed_up, features, state_dist) - v)))


def linear_td_runs(
    mdp: TabularMDP,
    pi: Any,
    features: Any,
    n_steps: int,
    n_runs: int,
    sampling: str = "trajectory",
    state_dist: Any | None = None,
    alpha0: float = 1.0,
    power: float = 0.7,
    seed: int | None = None,
) -> np.ndarray:
    """``n_runs`` independent linear TD(0) runs side by side; returns their averaged values :math:`\\Phi \\bar\\theta`.

    Each step draws :math:`s` (the next state of the previous transition with
    ``sampling="trajectory"``, from :math:`\\mu` at the start; a fresh
    :math:`s \\sim` ``state_dist``, uniform by default, with ``"random_states"``),
    :math:`a \\sim \\pi(\\cdot|s)`, :math:`s' \\sim P(\\cdot|s,a)`, and updates
    :math:`\\theta \\leftarrow \\theta + \\alpha_t \\phi(s) (r + \\gamma \\phi(s')^\\top\\theta - \\phi(s)^\\top\\theta)`
    with :math:`\\alpha_t = \\alpha_0 (1 + t/100)^{-p}`. The iterates of the second half
    of the run are averaged (Polyak-Ruppert), which reduces the noise. Returns an
    array of shape ``(n_runs, S)``.
    """
    pi = check_policy(mdp, pi)
    S = mdp.n_states
    Phi = as_array(features, "features", ndim=2)
    if Phi.shape[0] != S or Phi.shape[1] == 0:
        raise ValueError(f"features must have shape ({S}, k) with k >= 1, got {Phi.shape}")
    n_steps = check_positive_int(n_steps, "n_steps")
    if n_steps < 2:
        raise ValueError(f"n_steps must be at least 2, got {n_steps}")
    n_runs = check_positive_int(n_runs, "n_runs")
    if sampling not in ("trajectory", "random_states"):
        raise ValueError(f"sampling must be 'trajectory' or 'random_states', got {sampling!r}")
    if state_dist is not None:
        if sampling != "random_states":
            raise ValueError("state_dist is only used with sampling='random_states'")
        state_dist = check_distribution(state_dist, "state_dist", shape=(S,))
    elif sampling == "random_states":
        state_dist = np.full(S, 1.0 / S)
    alpha0 = float(alpha0)
    if not (0.0 < alpha0 <= 1.0):
        raise ValueError(f"alpha0 must lie in (0, 1], got {alpha0!r}")
    power = float(power)
    if not (0.5 < power <= 1.0):
        raise ValueError(f"power must lie in (0.5, 1] (Robbins-Monro), got {power!r}")
    rng = np.random.default_rng(_check_seed(seed))
    cum_pi, cum_P = np.cumsum(pi, axis=1), np.cumsum(mdp.P, axis=2)
    cum_d = None if state_dist is None else np.cumsum(state_dist)
    theta = np.zeros((n_runs, Phi.shape[1]))
    total = np.zeros_like(theta)
    s = _draw(rng, np.broadcast_to(np.cumsum(mdp.mu), (n_runs, S)))
    half = n_steps // 2
    for t0 in range(0, n_steps, 4096):
        u = rng.random((min(4096, n_steps - t0), 3, n_runs, 1))
        for j in range(u.shape[0]):
            t = t0 + j
            if cum_d is not None:
                s = np.minimum((u[j, 0] >= cum_d).sum(axis=1), S - 1)
            a = np.minimum((u[j, 1] >= cum_pi[s]).sum(axis=1), cum_pi.shape[1] - 1)
            s_next = np.minimum((u[j, 2] >= cum_P[s, a]).sum(axis=1), S - 1)
            phi, phi_next = Phi[s], Phi[s_next]
            delta = mdp.R[s, a] + mdp.gamma * (phi_next * theta).sum(axis=1) - (phi * theta).sum(axis=1)
            theta += alpha0 * (1.0 + t / 100.0) ** -power * delta[:, None] * phi
            if t >= half:
                total += theta
            s = s_next
    return (total / (n_steps - half)) @ Phi.T
