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
    "river_swim",
]


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
        P = check_distribution(P, "P")
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
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    R = rng.uniform(-1.0, 1.0, size=(n_states, n_actions))
    mu = rng.dirichlet(np.ones(n_states))
    return TabularMDP(P, R, gamma, mu)


def random_policy(n_states: int, n_actions: int, seed: int | None = None, concentration: float = 1.0) -> np.ndarray:
    """A random stochastic policy: each row drawn from Dirichlet(``concentration``)."""
    n_states = check_positive_int(n_states, "n_states")
    n_actions = check_positive_int(n_actions, "n_actions")
    if not concentration > 0:
        raise ValueError(f"concentration must be positive, got {concentration!r}")
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(n_actions, float(concentration)), size=n_states)


def uniform_policy(mdp: TabularMDP) -> np.ndarray:
    """The policy that picks every action with probability ``1/A`` in every state."""
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def check_policy(mdp: TabularMDP, pi: Any) -> np.ndarray:
    """Validate a tabular policy for ``mdp``: shape ``(S, A)``, rows are distributions."""
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
    V = as_array(V, "V", shape=(mdp.n_states,))
    return policy_reward(mdp, pi) + mdp.gamma * policy_transition_matrix(mdp, pi) @ V


def bellman_optimality_backup(mdp: TabularMDP, V: Any) -> np.ndarray:
    """One application of the Bellman optimality operator: :math:`(T^* V)(s) = \\max_a [r(s,a) + \\gamma \\sum_{s'} P(s'|s,a) V(s')]`.

    :math:`V_*` is its unique fixed point (it is a :math:`\\gamma`-contraction in the sup norm).
    """
    V = as_array(V, "V", shape=(mdp.n_states,))
    return (mdp.R + mdp.gamma * mdp.P @ V).max(axis=1)


def greedy_policy(Q: Any, tol: float = 1e-12) -> np.ndarray:
    """The deterministic policy that picks :math:`\\arg\\max_a Q(s, a)`, as a one-hot ``(S, A)`` array.

    Ties (within ``tol``) go to the lowest action index, so the result is reproducible.
    """
    Q = as_array(Q, "Q", ndim=2)
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
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
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
    rng = np.random.default_rng(rng)
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
    if start_state is not None and not 0 <= start_state < S:
        raise ValueError(f"start_state must be in [0, {S}), got {start_state!r}")
    if start_action is not None:
        if start_state is None:
            raise ValueError("start_action needs a start_state")
        if not 0 <= start_action < A:
            raise ValueError(f"start_action must be in [0, {A}), got {start_action!r}")
    rng = np.random.default_rng(seed)
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


def river_swim(n_states: int = 6, gamma: float = 0.95) -> TabularMDP:
    """The RiverSwim chain (Strehl and Littman, 2008), a small MDP that is hard to explore.

    States ``0 .. n-1`` along a river; action 0 swims downstream (left, always succeeds),
    action 1 swims upstream (right: moves right with probability 0.35, stays with 0.6,
    drifts left with 0.05; at the right end it stays with 0.6 + 0.35). Taking action 0 in
    state 0 pays 5/1000; taking action 1 in the last state pays 1. Starts in state 0 or 1
    with equal probability. The myopic policy (always left) is a strong local trap.
    """
    n = check_positive_int(n_states, "n_states")
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
