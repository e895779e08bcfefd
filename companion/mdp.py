"""Finite Markov decision processes and their exact value functions.

Everything in this module is exact linear algebra on a tabular MDP, the ground truth
that the sampled estimators of later chapters are measured against. Notation follows
Chapter 1 ("Foundations", ``book/01_foundations.md``):

* ``P[s, a, s']`` is the transition law :math:`P(s' \\mid s, a)`, shape ``(S, A, S)``;
* ``R[s, a]`` is the expected reward :math:`r(s, a)`, shape ``(S, A)``;
* ``gamma`` is the discount :math:`\\gamma \\in [0, 1)`;
* ``mu[s]`` is the initial-state distribution :math:`\\mu(s)`, shape ``(S,)``;
* a policy ``pi[s, a]`` = :math:`\\pi(a \\mid s)` is a row-stochastic ``(S, A)`` array.
"""

from __future__ import annotations

import itertools

from dataclasses import dataclass
from typing import Any

import numpy as np

from companion._validate import as_array, check_distribution, check_gamma, check_positive_int

__all__ = [
    "TabularMDP",
    "random_mdp",
    "random_policy",
    "uniform_policy",
    "check_policy",
    "policy_transition_matrix",
    "policy_reward",
    "value_function",
    "q_function",
    "advantage_function",
    "visitation",
    "expected_return",
    "bellman_expectation_backup",
    "bellman_optimality_backup",
    "greedy_policy",
    "policy_iteration",
    "value_iteration",
    "sample_trajectory",
    "sample_batch",
    "monte_carlo_returns",
    "monte_carlo_q",
    "monte_carlo_v",
    "monte_carlo_visitation",
    "MonteCarloEstimate",
    "monte_carlo_disagreement",
    "neumann_value",
    "neumann_q",
    "bellman_expectation_gaps",
    "symbolic_two_state_neumann",
    "symbolic_value_mismatch",
    "river_swim",
    "transition_frequency_disagreement",
    "average_reward",
    "enumerated_discounted_reward",
    "optimality_violations",
]


# ---------------------------------------------------------------- input validation
def _check_mdp(mdp: Any) -> "TabularMDP":
    if not isinstance(mdp, TabularMDP):
        raise ValueError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    return mdp


def _check_seed(seed: Any, name: str = "seed") -> Any:
    """``None``, a non-negative integer or a ``numpy.random.Generator``."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be None, a non-negative integer or a numpy Generator, got {seed!r}")
    return int(seed)


def _check_index(i: Any, name: str, n: int) -> int:
    """An integer index in ``[0, n)``; floats (even 1.0) and booleans are refused."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
        raise ValueError(f"{name} must be an integer in [0, {n}), got {i!r}")
    return int(i)


def _check_positive_float(x: Any, name: str, allow_zero: bool = False) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not (np.isfinite(v) and ok):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {x!r}")
    return v


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite, discounted MDP :math:`(\\mathcal S, \\mathcal A, P, r, \\gamma, \\mu)`.

    Parameters
    ----------
    P : array, shape (S, A, S)
        ``P[s, a, s']`` = probability of moving to ``s'`` after action ``a`` in ``s``.
    R : array, shape (S, A)
        Expected immediate reward :math:`r(s, a)` (the "reward depends on state and
        action" convention; the other conventions reduce to it by averaging over ``s'``).
    gamma : float
        Discount factor in ``[0, 1)``.
    mu : array, shape (S,)
        Initial-state distribution.

    Raises
    ------
    ValueError
        On wrong shapes, NaN or inf, negative or non-normalised probabilities, a
        ``gamma`` outside ``[0, 1)`` or a ``mu`` that is not a distribution.
    """

    P: np.ndarray
    R: np.ndarray
    gamma: float
    mu: np.ndarray

    def __post_init__(self) -> None:
        P = as_array(self.P, "P", ndim=3)
        S, A, S2 = P.shape
        if S != S2 or S == 0 or A == 0:
            raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
        P = check_distribution(self.P, "P")
        R = as_array(self.R, "R", shape=(S, A))
        mu = check_distribution(self.mu, "mu", shape=(S,))
        gamma = check_gamma(self.gamma)
        for arr in (P, R, mu):
            arr.setflags(write=False)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "gamma", gamma)

    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return self.P.shape[1]

    def __repr__(self) -> str:
        return f"TabularMDP(n_states={self.n_states}, n_actions={self.n_actions}, gamma={self.gamma})"


def random_mdp(n_states: int, n_actions: int, gamma: float = 0.9, seed: int | None = None) -> TabularMDP:
    """A random MDP: Dirichlet(1) transitions and initial law, rewards uniform on [-1, 1].

    Every transition probability is positive almost surely, so every policy reaches
    every state, which keeps sampled experiments well behaved.
    """
    n_states = check_positive_int(n_states, "n_states")
    n_actions = check_positive_int(n_actions, "n_actions")
    gamma = check_gamma(gamma)
    rng = np.random.default_rng(_check_seed(seed))
    P = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    R = rng.uniform(-1.0, 1.0, size=(n_states, n_actions))
    mu = rng.dirichlet(np.ones(n_states))
    return TabularMDP(P, R, gamma, mu)


def random_policy(n_states: int, n_actions: int, seed: int | None = None, concentration: float = 1.0) -> np.ndarray:
    """A random stochastic policy: each row drawn from Dirichlet(``concentration``)."""
    n_states = check_positive_int(n_states, "n_states")
    n_actions = check_positive_int(n_actions, "n_actions")
    concentration = _check_positive_float(concentration, "concentration")
    rng = np.random.default_rng(_check_seed(seed))
    return rng.dirichlet(np.full(n_actions, float(concentration)), size=n_states)


def uniform_policy(mdp: TabularMDP) -> np.ndarray:
    """The policy that picks every action with probability ``1/A`` in every state."""
    mdp = _check_mdp(mdp)
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def check_policy(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Validate a tabular policy for ``mdp``: shape ``(S, A)``, rows are distributions.

    Rows must sum to one within a tolerance that depends on the input's dtype (a
    float32 policy is accepted up to float32 rounding); returns a float64 array.
    """
    mdp = _check_mdp(mdp)
    return check_distribution(pi, "pi", shape=(mdp.n_states, mdp.n_actions))


def policy_transition_matrix(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """State-to-state transition matrix under ``pi``: :math:`P_\\pi[s, s'] = \\sum_a \\pi(a|s) P(s'|s,a)`."""
    pi = check_policy(mdp, pi)
    return np.einsum("sa,sat->st", pi, mdp.P)


def policy_reward(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Expected one-step reward under ``pi``: :math:`r_\\pi(s) = \\sum_a \\pi(a|s) r(s,a)`."""
    pi = check_policy(mdp, pi)
    return np.einsum("sa,sa->s", pi, mdp.R)


def value_function(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Exact on-policy value :math:`V_\\pi`, shape ``(S,)``.

    Solves the Bellman expectation equation (Chapter 1, eq. ``bellman-v``) in matrix
    form, :math:`(I - \\gamma P_\\pi) V_\\pi = r_\\pi`; the matrix is invertible because
    :math:`\\gamma < 1` and :math:`P_\\pi` is stochastic.
    """
    P_pi = policy_transition_matrix(mdp, pi)
    r_pi = policy_reward(mdp, pi)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, r_pi)


def q_function(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Exact action value :math:`Q_\\pi(s,a) = r(s,a) + \\gamma \\sum_{s'} P(s'|s,a) V_\\pi(s')`, shape ``(S, A)``.

    This is the Bellman equation for :math:`Q_\\pi` (Chapter 1, eq. ``bellman-q``).
    """
    V = value_function(mdp, pi)
    return mdp.R + mdp.gamma * mdp.P @ V


def advantage_function(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Exact advantage :math:`A_\\pi(s,a) = Q_\\pi(s,a) - V_\\pi(s)`, shape ``(S, A)``."""
    V = value_function(mdp, pi)
    Q = mdp.R + mdp.gamma * mdp.P @ V
    return Q - V[:, None]


def visitation(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Unnormalised discounted visitation :math:`\\rho_\\pi(s) = \\sum_t \\gamma^t P(s_t = s)`, shape ``(S,)``.

    Chapter 1, definition ``def-visitation`` and eq. ``visitation``; checked against
    :func:`monte_carlo_visitation`.

    With :math:`s_0 \\sim \\mu`, :math:`\\rho_\\pi^\\top = \\mu^\\top (I - \\gamma P_\\pi)^{-1}`.
    It sums to :math:`1/(1-\\gamma)`; :math:`(1-\\gamma)\\rho_\\pi` is a distribution,
    written :math:`d_\\pi` in later chapters.
    """
    P_pi = policy_transition_matrix(mdp, pi)
    return np.linalg.solve((np.eye(mdp.n_states) - mdp.gamma * P_pi).T, mdp.mu)


def expected_return(mdp: TabularMDP, pi: Any) -> float:
    """The RL objective :math:`J(\\pi) = \\mathbb E_{s_0 \\sim \\mu}[V_\\pi(s_0)] = \\mu^\\top V_\\pi`."""
    return float(mdp.mu @ value_function(mdp, pi))


def bellman_expectation_backup(mdp: TabularMDP, pi: Any, V: Any) -> np.ndarray:
    """One application of the Bellman expectation operator: :math:`(T^\\pi V)(s) = r_\\pi(s) + \\gamma (P_\\pi V)(s)`.

    :math:`V_\\pi` is its unique fixed point.
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return policy_reward(mdp, pi) + mdp.gamma * policy_transition_matrix(mdp, pi) @ V


def bellman_optimality_backup(mdp: TabularMDP, V: Any) -> np.ndarray:
    """One application of the Bellman optimality operator: :math:`(T^* V)(s) = \\max_a [r(s,a) + \\gamma \\sum_{s'} P(s'|s,a) V(s')]`.

    It is a :math:`\\gamma`-contraction in the sup norm, so it has a unique fixed point
    :math:`V_{T^*}`; for a finite MDP with :math:`\\gamma < 1` this fixed point equals the
    optimal value :math:`V_* = \\sup_\\pi V_\\pi` (Chapter 1, ``thm-bellman-optimality``).
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    return (mdp.R + mdp.gamma * mdp.P @ V).max(axis=1)


def greedy_policy(Q: Any, tol: float = 1e-12) -> np.ndarray:
    """The deterministic policy that picks :math:`\\arg\\max_a Q(s, a)`, as a one-hot ``(S, A)`` array.

    Ties (within ``tol``) go to the lowest action index, so the result is reproducible.
    """
    Q = as_array(Q, "Q", ndim=2)
    if Q.shape[0] == 0 or Q.shape[1] == 0:
        raise ValueError(f"Q must have at least one state and one action, got shape {Q.shape}")
    tol = _check_positive_float(tol, "tol", allow_zero=True)
    best = Q.max(axis=1, keepdims=True)
    actions = np.argmax(Q >= best - tol, axis=1)
    return np.eye(Q.shape[1])[actions]


def policy_iteration(mdp: TabularMDP, pi0: Any | None = None, max_iters: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Exact policy iteration: evaluate :math:`Q_\\pi`, act greedily, repeat until stable.

    Returns ``(pi_star, V_star)`` with ``pi_star`` one-hot ``(S, A)``. The loop stops
    when the greedy policy no longer changes; an action is only switched when it is
    strictly better (by more than 1e-12), so ties cannot make it cycle. Terminates in
    finitely many steps because each step does not decrease :math:`V` anywhere and there
    are finitely many deterministic policies.
    """
    mdp = _check_mdp(mdp)
    max_iters = check_positive_int(max_iters, "max_iters")
    pi = uniform_policy(mdp) if pi0 is None else check_policy(mdp, pi0)
    for _ in range(max_iters):
        Q = q_function(mdp, pi)
        new_pi = greedy_policy(Q)
        # keep the current action where it is still (numerically) a maximiser
        current = np.argmax(pi, axis=1)
        still_best = Q[np.arange(mdp.n_states), current] >= Q.max(axis=1) - 1e-12
        is_deterministic = np.isclose(pi.max(axis=1), 1.0)
        keep = still_best & is_deterministic
        new_pi[keep] = pi[keep]
        if np.array_equal(new_pi, pi):
            return new_pi, value_function(mdp, new_pi)
        pi = new_pi
    raise RuntimeError(f"policy_iteration did not converge in {max_iters} iterations")


def value_iteration(mdp: TabularMDP, tol: float = 1e-10, max_iters: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """Value iteration :math:`V_{k+1} = T^* V_k` from :math:`V_0 = 0`.

    Stops once :math:`\\|V_{k+1} - V_k\\|_\\infty < \\text{tol}\\,(1-\\gamma)/(2\\gamma)`, which
    guarantees :math:`\\|V_{k+1} - V_*\\|_\\infty < \\text{tol}/2`. Returns
    ``(greedy policy, V)`` in the same format as :func:`policy_iteration`.
    """
    mdp = _check_mdp(mdp)
    tol = _check_positive_float(tol, "tol")
    max_iters = check_positive_int(max_iters, "max_iters")
    g = mdp.gamma
    threshold = tol * (1 - g) / (2 * g) if g > 0 else np.inf
    V = np.zeros(mdp.n_states)
    for _ in range(max_iters):
        V_new = bellman_optimality_backup(mdp, V)
        done = np.max(np.abs(V_new - V)) < threshold
        V = V_new
        if done:
            return greedy_policy(mdp.R + g * mdp.P @ V), V
    raise RuntimeError(f"value_iteration did not reach tol={tol} in {max_iters} iterations")


def _categorical(cum: np.ndarray, u: float) -> int:
    """Index drawn by inverse-CDF sampling: ``cum`` is a cumulative distribution, ``u ~ U[0, 1)``."""
    return min(int(np.searchsorted(cum, u, side="right")), len(cum) - 1)


def sample_trajectory(
    mdp: TabularMDP, pi: Any, horizon: int, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample ``horizon`` steps :math:`s_0 \\sim \\mu, a_t \\sim \\pi(\\cdot|s_t), s_{t+1} \\sim P(\\cdot|s_t,a_t)`.

    Returns ``(states, actions, rewards)``: ``states`` has ``horizon + 1`` entries (the
    last is the state reached after the final action), ``actions`` and ``rewards``
    (``r_t = R[s_t, a_t]``) have ``horizon``.
    """
    pi = check_policy(mdp, pi)
    horizon = check_positive_int(horizon, "horizon")
    rng = np.random.default_rng(_check_seed(rng, "rng"))
    cum_pi = np.cumsum(pi, axis=1)
    cum_P = np.cumsum(mdp.P, axis=2)
    states = np.empty(horizon + 1, dtype=np.int64)
    actions = np.empty(horizon, dtype=np.int64)
    states[0] = _categorical(np.cumsum(mdp.mu), rng.random())
    u = rng.random((horizon, 2))  # drawn after s_0, so a longer horizon extends the same trajectory
    for t in range(horizon):
        s = states[t]
        a = actions[t] = _categorical(cum_pi[s], u[t, 0])
        states[t + 1] = _categorical(cum_P[s, a], u[t, 1])
    rewards = mdp.R[states[:-1], actions]
    return states, actions, rewards


def sample_batch(
    mdp: TabularMDP,
    pi: Any,
    n_episodes: int,
    horizon: int,
    start_state: int | None = None,
    start_action: int | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_episodes`` independent trajectories of ``horizon`` steps, sampled side by side.

    Returns ``(states, actions, rewards)`` of shapes ``(H + 1, N)``, ``(H, N)``, ``(H, N)``
    (time on axis 0, the layout of a vectorised environment). Episodes start from
    :math:`\\mu`, or from ``start_state`` if given; if ``start_action`` is given too, the
    first action is forced (as in the definition of :math:`Q_\\pi`), later actions
    follow ``pi``.
    """
    pi = check_policy(mdp, pi)
    n = check_positive_int(n_episodes, "n_episodes")
    horizon = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    if start_state is not None:
        start_state = _check_index(start_state, "start_state", S)
    if start_action is not None:
        if start_state is None:
            raise ValueError("start_action needs a start_state")
        start_action = _check_index(start_action, "start_action", A)
    rng = np.random.default_rng(_check_seed(seed))
    cum_pi, cum_P = np.cumsum(pi, axis=1), np.cumsum(mdp.P, axis=2)

    def draw(cum: np.ndarray) -> np.ndarray:  # rows of cumulative probabilities -> indices
        return np.minimum((rng.random((cum.shape[0], 1)) >= cum).sum(axis=1), cum.shape[1] - 1)

    states = np.empty((horizon + 1, n), dtype=np.int64)
    actions = np.empty((horizon, n), dtype=np.int64)
    states[0] = draw(np.broadcast_to(np.cumsum(mdp.mu), (n, S))) if start_state is None else start_state
    for t in range(horizon):
        s = states[t]
        actions[t] = start_action if (t == 0 and start_action is not None) else draw(cum_pi[s])
        states[t + 1] = draw(cum_P[s, actions[t]])
    return states, actions, mdp.R[states[:-1], actions]


def monte_carlo_returns(
    mdp: TabularMDP,
    pi: Any,
    n_episodes: int,
    horizon: int,
    start_state: int | None = None,
    start_action: int | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Sampled discounted returns :math:`\\sum_{t<H} \\gamma^t r_t` of ``n_episodes`` independent episodes.

    Episodes are drawn by :func:`sample_batch` (same arguments). The mean estimates
    :math:`J(\\pi)`, :math:`V_\\pi(s)` or :math:`Q_\\pi(s,a)` up to a truncation bias of at
    most :math:`\\gamma^H \\max|r| / (1-\\gamma)`.
    """
    _, _, rewards = sample_batch(mdp, pi, n_episodes, horizon, start_state, start_action, seed)
    return mdp.gamma ** np.arange(rewards.shape[0]) @ rewards

# ---------------------------------------------------------------- independent estimates
@dataclass(frozen=True, eq=False)
class MonteCarloEstimate:
    """A Monte Carlo estimate with its uncertainty.

    ``mean`` and ``stderr`` (standard error of the mean) have the shape of the estimated
    quantity; ``truncation`` bounds the bias from cutting the discounted sums at
    ``horizon`` steps; ``n`` is the number of independent rollouts per entry.
    """

    mean: np.ndarray
    stderr: np.ndarray
    truncation: float
    n: int
    horizon: int


def _draw(rng: np.random.Generator, cum: np.ndarray) -> np.ndarray:
    """One index per row of ``cum`` (rows of cumulative probabilities), by inverse CDF."""
    return np.minimum((rng.random((cum.shape[0], 1)) >= cum).sum(axis=1), cum.shape[1] - 1)


def _rollouts(
    mdp: TabularMDP,
    pi: np.ndarray,
    s0: np.ndarray,
    a0: np.ndarray | None,
    horizon: int,
    rng: np.random.Generator,
    visits: bool = False,
) -> np.ndarray:
    """Discounted returns (or discounted visit counts) of rollouts started at ``s0`` (``a0``)."""
    cum_pi, cum_P = np.cumsum(pi, axis=1), np.cumsum(mdp.P, axis=2)
    n = s0.shape[0]
    out = np.zeros((n, mdp.n_states)) if visits else np.zeros(n)
    rows = np.arange(n)
    s, discount = s0.copy(), 1.0
    for t in range(horizon):
        a = a0 if (t == 0 and a0 is not None) else _draw(rng, cum_pi[s])
        if visits:
            out[rows, s] += discount
        else:
            out += discount * mdp.R[s, a]
        s = _draw(rng, cum_P[s, a])
        discount *= mdp.gamma
    return out


def _monte_carlo_args(
    mdp: TabularMDP, pi: Any, n_rollouts: int, horizon: int, seed: int | None
) -> tuple[np.ndarray, int, int, np.random.Generator]:
    """Validated ``(pi, n_rollouts, horizon, rng)`` shared by the Monte Carlo estimators."""
    pi = check_policy(mdp, pi)
    n = check_positive_int(n_rollouts, "n_rollouts")
    if n < 2:
        raise ValueError(f"n_rollouts must be at least 2 (for a standard error), got {n}")
    horizon = check_positive_int(horizon, "horizon")
    return pi, n, horizon, np.random.default_rng(_check_seed(seed))


def _estimate(samples: np.ndarray, truncation: float, horizon: int) -> MonteCarloEstimate:
    """Mean and standard error over axis 0 of ``samples``."""
    n = samples.shape[0]
    return MonteCarloEstimate(
        mean=samples.mean(axis=0),
        stderr=samples.std(axis=0, ddof=1) / np.sqrt(n),
        truncation=float(truncation),
        n=n,
        horizon=horizon,
    )


def monte_carlo_q(
    mdp: TabularMDP, pi: Any, n_rollouts: int, horizon: int, seed: int | None = None
) -> MonteCarloEstimate:
    """Monte Carlo estimate of :math:`Q_\\pi(s, a)` for every pair, from its definition.

    For each ``(s, a)``, ``n_rollouts`` independent rollouts start at :math:`s_0 = s`,
    take :math:`a_0 = a`, then follow ``pi`` for ``horizon`` steps in all; the estimate is
    the mean of :math:`\\sum_{t < H} \\gamma^t r(s_t, a_t)` (Chapter 1, definition
    ``def-value-functions``). Nothing here uses a Bellman equation or a linear solve,
    so it is an independent check of :func:`q_function`. All pairs are simulated side
    by side (vectorised). The truncation bias is at most
    :math:`\\gamma^H \\max|r| / (1 - \\gamma)`; pick ``horizon`` so that it is negligible.
    """
    pi, n, horizon, rng = _monte_carlo_args(mdp, pi, n_rollouts, horizon, seed)
    S, A = mdp.n_states, mdp.n_actions
    s0 = np.repeat(np.arange(S), A * n)
    a0 = np.tile(np.repeat(np.arange(A), n), S)
    G = _rollouts(mdp, pi, s0, a0, horizon, rng).reshape(S, A, n)
    trunc = mdp.gamma**horizon * float(np.abs(mdp.R).max()) / (1 - mdp.gamma)
    return _estimate(np.moveaxis(G, 2, 0), trunc, horizon)


def monte_carlo_v(
    mdp: TabularMDP, pi: Any, n_rollouts: int, horizon: int, seed: int | None = None
) -> MonteCarloEstimate:
    """Monte Carlo estimate of :math:`V_\\pi(s)` for every state: rollouts of ``pi`` from :math:`s_0 = s`.

    Same conventions as :func:`monte_carlo_q`, with the first action drawn from ``pi``.
    """
    pi, n, horizon, rng = _monte_carlo_args(mdp, pi, n_rollouts, horizon, seed)
    S = mdp.n_states
    G = _rollouts(mdp, pi, np.repeat(np.arange(S), n), None, horizon, rng).reshape(S, n)
    trunc = mdp.gamma**horizon * float(np.abs(mdp.R).max()) / (1 - mdp.gamma)
    return _estimate(G.T, trunc, horizon)


def monte_carlo_visitation(
    mdp: TabularMDP, pi: Any, n_rollouts: int, horizon: int, seed: int | None = None
) -> MonteCarloEstimate:
    """Monte Carlo estimate of :math:`\\rho_\\pi(s) = \\sum_t \\gamma^t \\Pr(s_t = s)` (Chapter 1, ``def-visitation``).

    Each rollout starts at :math:`s_0 \\sim \\mu`, follows ``pi`` and adds
    :math:`\\gamma^t` to the entry of the state it is in at time :math:`t < H`; the
    estimate is the mean of these discounted visit counts. The truncation bias is at
    most :math:`\\gamma^H / (1 - \\gamma)`.
    """
    pi, n, horizon, rng = _monte_carlo_args(mdp, pi, n_rollouts, horizon, seed)
    s0 = _draw(rng, np.broadcast_to(np.cumsum(mdp.mu), (n, mdp.n_states)))
    counts = _rollouts(mdp, pi, s0, None, horizon, rng, visits=True)
    return _estimate(counts, mdp.gamma**horizon / (1 - mdp.gamma), horizon)


def monte_carlo_disagreement(candidate: Any, estimate: MonteCarloEstimate, n_se: float = 4.0) -> float:
    """How far ``candidate`` is from a Monte Carlo estimate, in units of its tolerance.

    Returns :math:`\\max_i |c_i - \\hat m_i| / (n_{se}\\, \\mathrm{se}_i + b + \\epsilon_i)`, with
    :math:`b` the truncation bound and :math:`\\epsilon_i = 10^{-12}\\max(1, |\\hat m_i|)`
    (for entries whose samples are all equal). The candidate agrees with the estimate
    when the result is at most 1; with ``n_se = 4`` a correct candidate fails an entry
    with probability about 6e-5 (normal approximation).
    """
    if not isinstance(estimate, MonteCarloEstimate):
        raise ValueError(f"estimate must be a MonteCarloEstimate, got {type(estimate).__name__}")
    c = as_array(candidate, "candidate", shape=estimate.mean.shape)
    n_se = _check_positive_float(n_se, "n_se")
    tol = n_se * estimate.stderr + estimate.truncation + 1e-12 * np.maximum(1.0, np.abs(estimate.mean))
    return float(np.max(np.abs(c - estimate.mean) / tol))


def neumann_value(mdp: TabularMDP, pi: Any, tol: float = 1e-13, max_terms: int = 100_000) -> np.ndarray:
    """:math:`V_\\pi = \\sum_{t \\ge 0} \\gamma^t P_\\pi^t r_\\pi`, summed term by term (Chapter 1, eq. ``v-matrix``).

    The :math:`t`-th term is the expected discounted reward at time :math:`t`,
    :math:`\\gamma^t \\mathbb E[r_t \\mid s_0 = s]`. Summation stops when the remaining
    tail, at most :math:`\\|\\text{term}\\|_\\infty / (1 - \\gamma)`, is below ``tol``. No
    linear system is solved, and :math:`P_\\pi`, :math:`r_\\pi` are built here from
    ``mdp.P`` and ``mdp.R`` (not with :func:`policy_transition_matrix` or
    :func:`policy_reward`), so this is an independent check of :func:`value_function`.
    """
    pi = check_policy(mdp, pi)
    # P_pi[s, s'] = sum_a pi(a|s) P(s'|s,a), written as an explicit loop-free sum
    P_pi = (pi[:, :, None] * mdp.P).sum(axis=1)
    r_pi = np.einsum("sa,sa->s", pi, mdp.R)
    tol = _check_positive_float(tol, "tol")
    max_terms = check_positive_int(max_terms, "max_terms")
    total, term = np.zeros(mdp.n_states), r_pi
    for _ in range(max_terms):
        total = total + term
        term = mdp.gamma * (P_pi @ term)
        if np.max(np.abs(term), initial=0.0) / (1 - mdp.gamma) < tol:
            return total + term
    raise RuntimeError(f"neumann_value did not reach tol={tol} in {max_terms} terms")


def neumann_q(mdp: TabularMDP, pi: Any, tol: float = 1e-13, max_terms: int = 100_000) -> np.ndarray:
    """:math:`Q_\\pi(s, a) = \\sum_{t \\ge 0} \\gamma^t \\mathbb E[r(s_t, a_t) \\mid s_0 = s, a_0 = a]`, term by term.

    The expected reward at time :math:`t` is propagated on the state-action chain
    :math:`(s, a) \\to (s', a')` with probability :math:`P(s' | s, a) \\pi(a' | s')`,
    starting from :math:`r(s, a)` at :math:`t = 0`. It uses neither :math:`V_\\pi` nor a
    linear solve, so it checks :func:`q_function` independently. Stops as
    :func:`neumann_value` does.
    """
    pi = check_policy(mdp, pi)
    tol = _check_positive_float(tol, "tol")
    max_terms = check_positive_int(max_terms, "max_terms")
    total, term = np.zeros_like(mdp.R), mdp.R.copy()
    for _ in range(max_terms):
        total = total + term
        term = mdp.gamma * np.einsum("sat,tb,tb->sa", mdp.P, pi, term)
        if np.max(np.abs(term), initial=0.0) / (1 - mdp.gamma) < tol:
            return total + term
    raise RuntimeError(f"neumann_q did not reach tol={tol} in {max_terms} terms")


def bellman_expectation_gaps(mdp: TabularMDP, pi: Any, V: Any, Q: Any) -> dict[str, float]:
    """Largest violation of each relation of Chapter 1's ``thm-bellman-expectation`` by ``(V, Q)``.

    Returns a dict of sup-norm gaps:

    * ``"bellman-v"``: :math:`V - (r_\\pi + \\gamma P_\\pi V)`;
    * ``"bellman-q"``: :math:`Q(s,a) - r(s,a) - \\gamma \\sum_{s'} P(s'|s,a) \\sum_{a'} \\pi(a'|s') Q(s',a')`;
    * ``"V = sum_a pi Q"`` and ``"Q = r + gamma P V"``: the two links;
    * ``"V vs Neumann series"`` and ``"Q vs Neumann series"``: distance to
      :func:`neumann_value` and :func:`neumann_q`, computed without a linear solve.

    All are (numerically) zero exactly when ``V`` and ``Q`` are :math:`V_\\pi` and :math:`Q_\\pi`.
    """
    pi = check_policy(mdp, pi)
    V = as_array(V, "V", shape=(mdp.n_states,))
    Q = as_array(Q, "Q", shape=(mdp.n_states, mdp.n_actions))
    g, P, R = mdp.gamma, mdp.P, mdp.R
    sup = lambda x: float(np.max(np.abs(x)))  # noqa: E731
    return {
        "bellman-v": sup(V - (pi * (R + g * P @ V)).sum(axis=1)),
        "bellman-q": sup(Q - (R + g * P @ (pi * Q).sum(axis=1))),
        "V = sum_a pi Q": sup(V - (pi * Q).sum(axis=1)),
        "Q = r + gamma P V": sup(Q - (R + g * P @ V)),
        "V vs Neumann series": sup(V - neumann_value(mdp, pi)),
        "Q vs Neumann series": sup(Q - neumann_q(mdp, pi)),
    }


def symbolic_two_state_neumann() -> tuple[dict[str, Any], Any]:
    """The Neumann series :math:`\\sum_t \\gamma^t P^t r` of a general two-state chain, in closed form.

    The chain is :math:`P = \\begin{pmatrix} 1-x & x \\\\ y & 1-y \\end{pmatrix}` with
    symbolic :math:`x, y > 0`, reward vector :math:`(u, w)` and discount :math:`\\gamma`.
    SymPy diagonalises :math:`P`, raises the eigenvalues to a symbolic power :math:`t`
    and sums each geometric series with ``sympy.summation``, keeping the branch that
    applies for :math:`0 < \\gamma < 1` and :math:`0 < x, y < 1` (checked at a sample
    point). No matrix inverse is used, so comparing with a linear solve is a check of
    eq. ``v-matrix`` (Chapter 1). Returns ``(symbols, V)`` with ``symbols`` keyed by
    ``"x", "y", "u", "w", "gamma"`` and ``V`` a 2x1 SymPy matrix.
    """
    import sympy as sp

    x, y, u, w = sp.symbols("x y u w", positive=True)
    gamma = sp.Symbol("gamma", positive=True)
    t = sp.Symbol("t", integer=True, nonnegative=True)
    P = sp.Matrix([[1 - x, x], [y, 1 - y]])
    eigvecs, D = P.diagonalize()
    P_t = eigvecs * sp.diag(*[D[i, i] ** t for i in range(2)]) * eigvecs.inv()
    sample = {x: sp.Rational(1, 3), y: sp.Rational(1, 4), gamma: sp.Rational(1, 2)}

    def convergent(pw: Any) -> Any:
        value, condition = pw.args[0]
        if condition.subs(sample) != sp.true:
            raise RuntimeError(f"unexpected convergence condition {condition}")
        return value

    def total(expr: Any) -> Any:
        summed = sp.summation(sp.expand(expr), (t, 0, sp.oo))
        return summed.replace(lambda e: isinstance(e, sp.Piecewise), convergent)

    V = (gamma**t * P_t * sp.Matrix([u, w])).applyfunc(total)
    return {"x": x, "y": y, "u": u, "w": w, "gamma": gamma}, V


def symbolic_value_mismatch(candidate: Any) -> list[Any]:
    """``candidate(P, r, gamma) -> V`` (SymPy) minus the closed-form Neumann series, entry by entry.

    ``candidate`` receives the general two-state chain of
    :func:`symbolic_two_state_neumann` (a 2x2 SymPy matrix, a 2x1 reward vector and the
    discount symbol). Each returned entry is the canonical form (``sympy.cancel``) of
    the difference: all zero means the candidate equals the series identically.
    """
    import sympy as sp

    sym, V_neumann = symbolic_two_state_neumann()
    x, y = sym["x"], sym["y"]
    P = sp.Matrix([[1 - x, x], [y, 1 - y]])
    V = sp.Matrix(candidate(P, sp.Matrix([sym["u"], sym["w"]]), sym["gamma"]))
    if V.shape != (2, 1):
        raise ValueError(f"candidate must return a 2x1 matrix, got shape {V.shape}")
    return [sp.cancel(sp.together(a - b)) for a, b in zip(V, V_neumann)]


def river_swim(n_states: int = 6, gamma: float = 0.95) -> TabularMDP:
    """The RiverSwim chain (Strehl and Littman, 2008), a small MDP that is hard to explore.

    States ``0 .. n-1`` along a river; action 0 swims downstream (left, always succeeds),
    action 1 swims upstream (right: moves right with probability 0.35, stays with 0.6,
    drifts left with 0.05; at the right end it stays with 0.6 + 0.35). Taking action 0 in
    state 0 pays 5/1000; taking action 1 in the last state pays 1. Starts in state 0 or 1
    with equal probability. The myopic policy (always left) is a strong local trap.
    """
    n = check_positive_int(n_states, "n_states")
    gamma = check_gamma(gamma)
    if n < 2:
        raise ValueError(f"n_states must be at least 2, got {n}")
    P = np.zeros((n, 2, n))
    for s in range(n):
        P[s, 0, max(s - 1, 0)] = 1.0
        P[s, 1, min(s + 1, n - 1)] += 0.35
        P[s, 1, s] += 0.6
        P[s, 1, max(s - 1, 0)] += 0.05
    R = np.zeros((n, 2))
    R[0, 0] = 0.005
    R[n - 1, 1] = 1.0
    mu = np.zeros(n)
    mu[:2] = 0.5
    return TabularMDP(P, R, gamma, mu)


# ---------------------------------------------------------------- checks called by Chapter 1
def transition_frequency_disagreement(mdp: TabularMDP, states: Any, actions: Any, n_se: float = 5.0) -> float:
    """How far the empirical transition frequencies of a trajectory are from ``mdp.P``.

    Counts each :math:`(s_t, a_t, s_{t+1})` of ``states`` (length :math:`T + 1`) and
    ``actions`` (length :math:`T`), and returns
    :math:`\\max |\\hat P(s'|s,a) - P(s'|s,a)| / (n_{se}\\,\\mathrm{se} + 10^{-12})` with the
    binomial standard error :math:`\\sqrt{P(1-P)/n(s,a)}`; pairs never visited are
    skipped. At most 1 means the sampler follows ``P`` (Chapter 1, section
    "Trajectories"); a sampler that read the table along the wrong axis or used the
    wrong action's row gives a large value.
    """
    mdp = _check_mdp(mdp)
    states = np.asarray(states)
    actions = np.asarray(actions)
    if states.ndim != 1 or actions.ndim != 1 or states.shape[0] != actions.shape[0] + 1:
        raise ValueError("states must have one entry more than actions (both 1-D)")
    if not (np.issubdtype(states.dtype, np.integer) and np.issubdtype(actions.dtype, np.integer)):
        raise ValueError("states and actions must be integer arrays")
    S, A = mdp.n_states, mdp.n_actions
    # np.any rather than min/max: a trajectory of one state has no action (nothing to count)
    if np.any(states < 0) or np.any(states >= S) or np.any(actions < 0) or np.any(actions >= A):
        raise ValueError("states or actions out of range")
    n_se = _check_positive_float(n_se, "n_se")
    counts = np.zeros((S, A, S))
    np.add.at(counts, (states[:-1], actions, states[1:]), 1)
    n_sa = counts.sum(axis=2, keepdims=True)
    seen = np.broadcast_to(n_sa > 0, counts.shape)
    freq = counts / np.maximum(n_sa, 1)
    stderr = np.sqrt(mdp.P * (1 - mdp.P) / np.maximum(n_sa, 1))
    ratio = np.abs(freq - mdp.P) / (n_se * stderr + 1e-12)
    return float(np.max(ratio[seen], initial=0.0))


def average_reward(P: Any, R3: Any) -> np.ndarray:
    """:math:`r(s, a) = \\sum_{s'} P(s'|s,a) R(s,a,s')` (Chapter 1, eq. ``reward-average``), shape ``(S, A)``."""
    P = as_array(P, "P", ndim=3)
    R3 = as_array(R3, "R3", shape=P.shape)
    return (P * R3).sum(axis=2)


def enumerated_discounted_reward(mdp: TabularMDP, pi: Any, reward: Any, horizon: int) -> float:
    """Exact :math:`\\mathbb E[\\sum_{t<H} \\gamma^t r_t]` by enumerating every trajectory of ``horizon`` steps.

    ``reward`` is either an ``(S, A, S)`` array :math:`R(s, a, s')` or an ``(S, A)`` array
    :math:`r(s, a)`. Each of the :math:`S (A S)^H` trajectories is weighted by its
    probability :math:`\\mu(s_0) \\prod_t \\pi(a_t|s_t) P(s_{t+1}|s_t,a_t)`; no Bellman
    equation or matrix power is used. Meant for tiny MDPs (``horizon`` at most 6).
    """
    pi = check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    if H > 6:
        raise ValueError(f"horizon must be at most 6 (enumeration), got {H}")
    S, A = mdp.n_states, mdp.n_actions
    reward = as_array(reward, "reward")
    if reward.shape == (S, A):
        reward = np.broadcast_to(reward[:, :, None], (S, A, S))
    elif reward.shape != (S, A, S):
        raise ValueError(f"reward must have shape {(S, A)} or {(S, A, S)}, got {reward.shape}")
    total = 0.0
    for s0 in range(S):
        for steps in itertools.product(range(A), range(S), repeat=H):
            prob, s, value = mdp.mu[s0], s0, 0.0
            for t in range(H):
                a, s_next = steps[2 * t], steps[2 * t + 1]
                prob *= pi[s, a] * mdp.P[s, a, s_next]
                value += mdp.gamma**t * reward[s, a, s_next]
                s = s_next
            total += prob * value
    return float(total)


def optimality_violations(
    mdp: TabularMDP, V: Any, pi: Any, n_random: int = 200, seed: int | None = 0
) -> dict[str, float]:
    """How far a claimed optimal value ``V`` and policy ``pi`` are from Chapter 1's ``thm-bellman-optimality``.

    Returns sup-norm violations (all about zero for :math:`V_*` and a greedy policy):

    * ``"bellman-opt"``: :math:`V - T^* V`, with the max over actions;
    * ``"pi attains V"``: :math:`V_\\pi - V` (evaluated by a linear solve);
    * ``"sup over deterministic"``: :math:`\\max_{\\pi\\ \\text{det.}} V_\\pi - V`, over all
      :math:`A^S` deterministic policies (the supremum is attained by one of them);
    * ``"random policy exceeds V"``: the largest excess of :math:`V_\\pi` over ``V`` for
      ``n_random`` random stochastic policies (clipped at zero).
    """
    mdp = _check_mdp(mdp)
    V = as_array(V, "V", shape=(mdp.n_states,))
    pi = check_policy(mdp, pi)
    n_random = check_positive_int(n_random, "n_random")
    S, A = mdp.n_states, mdp.n_actions
    if A**S > 100_000:
        raise ValueError(f"too many deterministic policies to enumerate ({A}^{S})")
    sup = lambda x: float(np.max(np.abs(x)))  # noqa: E731
    backed_up = (mdp.R + mdp.gamma * mdp.P @ V).max(axis=1)
    eye = np.eye(A)
    best = np.max(
        [value_function(mdp, eye[list(acts)]) for acts in itertools.product(range(A), repeat=S)], axis=0
    )
    rng = np.random.default_rng(_check_seed(seed))
    excess = 0.0
    for _ in range(n_random):
        random_pi = rng.dirichlet(np.ones(A), size=S)
        excess = max(excess, float(np.max(value_function(mdp, random_pi) - V)))
    return {
        "bellman-opt": sup(V - backed_up),
        "pi attains V": sup(value_function(mdp, pi) - V),
        "sup over deterministic": sup(best - V),
        "random policy exceeds V": max(excess, 0.0),
    }
