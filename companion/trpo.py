"""Trust region policy optimisation (Chapter 4, ``book/04_trpo.md``; Schulman et al. 2015).

Exact tabular pieces (divergences between policies, the surrogate and the lower bound of
the monotonic-improvement theorem), the numerical tools of the practical algorithm
(conjugate gradient, Fisher-vector products by double backpropagation, a backtracking
line search) and a TRPO learner for gymnasium environments with discrete or continuous (Box) actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import warnings

import numpy as np

from companion._validate import check_distribution, check_gamma, check_positive_int
from companion.cpi import surrogate
from companion.mdp import (
    TabularMDP,
    advantage_function,
    check_policy,
    expected_return,
    visitation,
)

__all__ = [
    "tv_distance",
    "kl_divergence",
    "max_tv",
    "max_kl",
    "pinsker_violations",
    "importance_sampled_gain",
    "surrogate",
    "trpo_lower_bound",
    "trpo_kl_lower_bound",
    "penalty_coefficient",
    "bound_violations",
    "mean_advantage",
    "mean_advantage_violations",
    "disagreement_series",
    "series_bound_violations",
    "empirical_constant",
    "worst_case_search",
    "near_tight_case",
    "two_state_case",
    "two_state_constant",
    "bad_mean_advantage_states",
    "exact_trpo_step",
    "full_step",
    "quadratic_kl_error",
    "conjugate_gradient",
    "flat_grad",
    "fisher_vector_product",
    "policy_fisher_matrix",
    "mean_kl_hessian",
    "cg_solve_error",
    "backtracking_line_search",
    "categorical_kl",
    "diagonal_gaussian_kl",
    "make_trpo_policy",
    "TRPOPolicy",
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


def pinsker_violations(
    p: Any, q: Any, constant: float = 0.5, tol: float = 1e-12
) -> int:
    """Number of rows with :math:`D_{TV}(p, q)^2 >` ``constant`` :math:`\\cdot D_{KL}(p \\| q)` + ``tol``.

    Pinsker's inequality (Chapter 4, eq. ``pinsker``) is the statement that ``constant``
    = 1/2 gives 0 on every pair of distributions; ``p`` and ``q`` are arrays of
    distributions along the last axis (same shape).
    """
    c = _check_constant(constant)
    tol = _check_constant(tol, "tol")
    tv, kl = tv_distance(p, q), kl_divergence(p, q)
    return int(np.sum(tv**2 > c * kl + tol))


def importance_sampled_gain(
    mdp: TabularMDP,
    pi_old: Any,
    pi_new: Any,
    q: Any,
    n_samples: int,
    seed: int = 0,
    use_ratio: bool = True,
) -> tuple[float, float]:
    """Monte Carlo estimate of :math:`\\sum_s \\rho_{old}(s) \\sum_a \\pi_{new}(a|s) Q_{old}(s,a)` and its standard error.

    Samples :math:`s \\sim d_{old} = (1-\\gamma)\\rho_{old}` and :math:`a \\sim q(\\cdot|s)`
    and averages :math:`\\frac{\\pi_{new}(a|s)}{q(a|s)} Q_{old}(s,a) / (1-\\gamma)` (Chapter 4,
    eq. ``sampled-surrogate``). ``use_ratio=False`` drops the ratio (a common slip), so
    that a check can show it is rejected. Returns ``(mean, standard error)``.
    """
    from companion.mdp import q_function

    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    q = check_policy(mdp, q)
    n = check_positive_int(n_samples, "n_samples")
    rho = visitation(mdp, pi_old)
    Q = q_function(mdp, pi_old)
    rng = np.random.default_rng(seed)
    s_idx = rng.choice(mdp.n_states, size=n, p=rho / rho.sum())
    a_idx = (rng.random((n, 1)) > np.cumsum(q[s_idx], axis=1)).sum(1)
    a_idx = np.minimum(a_idx, mdp.n_actions - 1)
    w = pi_new[s_idx, a_idx] / q[s_idx, a_idx] if use_ratio else 1.0
    samples = w * Q[s_idx, a_idx] / (1 - mdp.gamma)
    return float(samples.mean()), float(samples.std() / np.sqrt(n))


def max_tv(pi: Any, pi_new: Any) -> float:
    """:math:`D_{TV}^{\\max}(\\pi, \\tilde\\pi) = \\max_s D_{TV}(\\pi(\\cdot|s), \\tilde\\pi(\\cdot|s))`."""
    return float(np.max(tv_distance(pi, pi_new)))


def max_kl(pi: Any, pi_new: Any) -> float:
    """:math:`D_{KL}^{\\max}(\\pi, \\tilde\\pi) = \\max_s D_{KL}(\\pi(\\cdot|s) \\| \\tilde\\pi(\\cdot|s))`."""
    return float(np.max(kl_divergence(pi, pi_new)))


def _check_constant(constant: Any, name: str = "constant") -> float:
    try:
        c = float(constant)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {constant!r}") from None
    if not (np.isfinite(c) and c >= 0):
        raise ValueError(
            f"{name} must be a finite non-negative number, got {constant!r}"
        )
    return c


def penalty_coefficient(mdp: TabularMDP, pi_old: Any, constant: float = 4.0) -> float:
    """:math:`C = \\frac{c\\,\\varepsilon\\gamma}{(1-\\gamma)^2}` with :math:`\\varepsilon = \\max_{s,a}|A_{\\pi_{old}}(s,a)|`.

    The theorem (Chapter 4, ``thm-trpo``) has ``constant`` :math:`c = 4`; other values
    let the chapter and the tests probe how small the constant can be.
    """
    pi_old = check_policy(mdp, pi_old)
    c = _check_constant(constant)
    eps = float(np.abs(advantage_function(mdp, pi_old)).max())
    return c * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2


def trpo_lower_bound(
    mdp: TabularMDP, pi_old: Any, pi_new: Any, constant: float = 4.0
) -> float:
    """:math:`L_{\\pi_{old}}(\\pi_{new}) - \\frac{4 \\varepsilon\\gamma}{(1-\\gamma)^2}\\alpha^2` (Chapter 4, theorem ``thm-trpo``).

    With :math:`\\varepsilon = \\max_{s,a} |A_{\\pi_{old}}(s,a)|` and
    :math:`\\alpha = D_{TV}^{\\max}(\\pi_{old}, \\pi_{new})`; a lower bound on :math:`J(\\pi_{new})`.
    ``constant`` replaces the 4 (to test smaller constants).
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    C = penalty_coefficient(mdp, pi_old, constant)
    return surrogate(mdp, pi_old, pi_new) - C * max_tv(pi_old, pi_new) ** 2


def trpo_kl_lower_bound(
    mdp: TabularMDP, pi_old: Any, pi_new: Any, constant: float = 4.0
) -> float:
    """The KL form :math:`L_{\\pi_{old}}(\\pi_{new}) - \\frac{4 \\varepsilon\\gamma}{(1-\\gamma)^2} D_{KL}^{\\max}(\\pi_{old}, \\pi_{new})`.

    Lower than :func:`trpo_lower_bound` because :math:`D_{TV}^2 \\le D_{KL}` (Pinsker).
    ``constant`` replaces the 4.
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    C = penalty_coefficient(mdp, pi_old, constant)
    return surrogate(mdp, pi_old, pi_new) - C * max_kl(pi_old, pi_new)


# ------------------------------------------------------------- checking the theorem

#: A test case of the theorem: an MDP, an old policy and a new policy.
Case = tuple[TabularMDP, np.ndarray, np.ndarray]


def _check_cases(cases: Sequence[Case]) -> list[Case]:
    cases = list(cases)
    if not cases:
        raise ValueError("cases must contain at least one (mdp, pi_old, pi_new) triple")
    out = []
    for i, case in enumerate(cases):
        if len(case) != 3 or not isinstance(case[0], TabularMDP):
            raise ValueError(f"cases[{i}] must be an (mdp, pi_old, pi_new) triple")
        m = case[0]
        out.append((m, check_policy(m, case[1]), check_policy(m, case[2])))
    return out


def bound_violations(
    bound_fn: Callable[[TabularMDP, np.ndarray, np.ndarray], float],
    cases: Sequence[Case],
    tol: float = 1e-10,
) -> int:
    """Number of cases where :math:`J(\\pi_{new})` < ``bound_fn(mdp, pi_old, pi_new)`` - ``tol``.

    :math:`J(\\pi_{new})` is the exact return (a linear solve under the new policy), a
    different computation from the bounds, which use only quantities of the old policy
    and the divergence. A valid lower bound gives 0.
    """
    cases = _check_cases(cases)
    if not callable(bound_fn):
        raise ValueError("bound_fn must be a function (mdp, pi_old, pi_new) -> float")
    tol = _check_constant(tol, "tol")
    return sum(
        int(expected_return(m, new) < float(bound_fn(m, old, new)) - tol)
        for m, old, new in cases
    )


def mean_advantage(mdp: TabularMDP, pi_old: Any, pi_new: Any) -> np.ndarray:
    """:math:`\\bar A(s) = \\sum_a \\pi_{new}(a|s) A_{\\pi_{old}}(s, a)`, shape ``(S,)`` (proof of ``thm-trpo``)."""
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    return (pi_new * advantage_function(mdp, pi_old)).sum(axis=1)


def mean_advantage_violations(
    factor: float, cases: Sequence[Case], tol: float = 1e-12
) -> int:
    """Number of cases where :math:`\\max_s |\\bar A(s)| >` ``factor`` :math:`\\cdot\\, \\alpha\\varepsilon`.

    The proof of ``thm-trpo`` uses ``factor`` = 2; a valid factor gives 0.
    """
    factor = _check_constant(factor, "factor")
    cases = _check_cases(cases)
    n = 0
    for m, old, new in cases:
        eps = float(np.abs(advantage_function(m, old)).max())
        lhs = float(np.abs(mean_advantage(m, old, new)).max())
        n += int(lhs > factor * max_tv(old, new) * eps + tol * max(eps, 1.0))
    return n


def disagreement_series(gamma: Any, alpha: Any, n_terms: int = 100_000) -> np.ndarray:
    """:math:`\\sum_{t \\ge 0} \\gamma^t \\bigl(1 - (1 - \\alpha)^t\\bigr)` summed term by term (first ``n_terms`` terms).

    The probability that coupled runs of the two policies have disagreed before time
    :math:`t`, discounted and summed (proof of ``thm-trpo``). Summed numerically, not
    in closed form, so that closed forms can be checked against it; the neglected tail
    is below :math:`\\gamma^{n}/(1-\\gamma)`.
    """
    g = np.asarray(gamma, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    if np.any(~np.isfinite(g)) or np.any((g < 0) | (g >= 1)):
        raise ValueError(f"gamma must lie in [0, 1), got {gamma!r}")
    if np.any(~np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    n_terms = check_positive_int(n_terms, "n_terms")
    g, a = np.broadcast_arrays(g, a)
    t = np.arange(n_terms)
    terms = g[..., None] ** t * (1.0 - (1.0 - a[..., None]) ** t)
    return terms.sum(axis=-1)


def series_bound_violations(
    bound_fn: Callable[[np.ndarray, np.ndarray], Any],
    gammas: Any,
    alphas: Any,
    rtol: float = 1e-9,
) -> int:
    """Number of ``(gamma, alpha)`` pairs where :func:`disagreement_series` exceeds ``bound_fn(gamma, alpha)``.

    The proof of ``thm-trpo`` uses the bound :math:`\\alpha\\gamma / (1-\\gamma)^2`; a valid bound
    gives 0. ``gammas`` (in [0, 1), at most 0.999 so that the sum converges quickly) and
    ``alphas`` (in [0, 1]) are all combined.
    """
    g, a = np.meshgrid(
        np.asarray(gammas, dtype=np.float64), np.asarray(alphas, dtype=np.float64)
    )
    if np.any(g > 0.999):
        raise ValueError(f"gammas must be at most 0.999, got {np.max(g)}")
    exact = disagreement_series(g, a)
    bound = np.asarray(bound_fn(g, a), dtype=np.float64)
    return int(np.sum(exact > bound + rtol * np.maximum(np.abs(bound), 1e-12)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _unpack_case(z: np.ndarray, S: int, A: int) -> tuple[np.ndarray, ...]:
    sizes = [S * A * S, S * A, S, S * A, S * A]
    P, R, mu, old, new = np.split(z, np.cumsum(sizes)[:-1])
    return (
        _softmax(P.reshape(S, A, S)),
        R.reshape(S, A),
        _softmax(mu),
        _softmax(old.reshape(S, A)),
        _softmax(new.reshape(S, A)),
    )


def _fast_ratio(z: np.ndarray, S: int, A: int, gamma: float, form: str) -> float:
    """(L - J) / (eps gamma D / (1 - gamma)^2), in plain numpy (the search's inner loop)."""
    P, R, mu, old, new = _unpack_case(z, S, A)
    eye = np.eye(S)

    def values(pi: np.ndarray) -> np.ndarray:
        return np.linalg.solve(
            eye - gamma * np.einsum("sa,sat->st", pi, P), (pi * R).sum(1)
        )

    v_old = values(old)
    adv = R + gamma * P @ v_old - v_old[:, None]
    rho = np.linalg.solve((eye - gamma * np.einsum("sa,sat->st", old, P)).T, mu)
    gap = mu @ v_old + rho @ (new * adv).sum(1) - mu @ values(new)
    eps = np.abs(adv).max()
    if form == "tv":
        d = (0.5 * np.abs(old - new).sum(1).max()) ** 2
    else:
        d = (old * (np.log(old) - np.log(new))).sum(1).max()
    if eps < 1e-9 or d < 1e-12:
        return 0.0
    return float(gap * (1 - gamma) ** 2 / (eps * gamma * d))


def empirical_constant(cases: Sequence[Case], form: str = "tv") -> float:
    """Smallest :math:`c` such that the bound of ``thm-trpo`` with :math:`c` in place of 4 holds on all ``cases``.

    That is :math:`\\max (L_{\\pi_{old}}(\\pi_{new}) - J(\\pi_{new}))\\,(1-\\gamma)^2 / (\\varepsilon\\gamma D)`
    with :math:`D = \\alpha^2` (``form="tv"``) or :math:`D^{\\max}_{KL}` (``form="kl"``), computed with
    the companion's exact functions; cases with :math:`D = 0` or :math:`\\gamma = 0` are skipped.
    """
    if form not in ("tv", "kl"):
        raise ValueError(f"form must be 'tv' or 'kl', got {form!r}")
    best = 0.0
    for m, old, new in _check_cases(cases):
        d = max_tv(old, new) ** 2 if form == "tv" else max_kl(old, new)
        unit = penalty_coefficient(m, old, constant=1.0) * d
        if unit > 0:
            best = max(best, (surrogate(m, old, new) - expected_return(m, new)) / unit)
    return float(best)


def near_tight_case(gamma: float, alpha: float) -> Case:
    """A hand-built case where :math:`L - J = 4\\varepsilon\\gamma\\alpha^2` exactly (Chapter 4, "how tight").

    States: a start state 0, states 1 and 2 reached from it by action 0 and 1, and an
    absorbing state 3 with zero reward. In states 1 and 2 the rewards are :math:`+1` (action 0)
    and :math:`-1` (action 1), so under the uniform old policy :math:`A = \\pm 1`,
    :math:`\\varepsilon = 1` and :math:`L_{\\pi_{old}}(\\pi_{new}) = J(\\pi_{old}) = 0`. The new policy
    moves probability ``alpha`` towards state 1 at the start, towards the bad action in
    state 1 and towards the good action in state 2: every state has
    :math:`D_{TV} = \\alpha`, and :math:`J(\\pi_{new}) = -4\\gamma\\alpha^2`. The ratio to the bound's
    penalty is :math:`4(1-\\gamma)^2`, which tends to 4 as :math:`\\gamma \\to 0`.
    """
    g = check_gamma(gamma)
    a = float(alpha)
    if not (np.isfinite(a) and 0 < a <= 0.5):
        raise ValueError(f"alpha must lie in (0, 0.5], got {alpha!r}")
    P = np.zeros((4, 2, 4))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1:, :, 3] = 1.0
    R = np.zeros((4, 2))
    R[1:3, 0], R[1:3, 1] = 1.0, -1.0
    mdp = TabularMDP(P, R, g, np.array([1.0, 0.0, 0.0, 0.0]))
    old = np.full((4, 2), 0.5)
    new = np.array(
        [[0.5 + a, 0.5 - a], [0.5 - a, 0.5 + a], [0.5 + a, 0.5 - a], [0.5, 0.5]]
    )
    return mdp, old, new


def two_state_case(
    gamma: float, alpha: float, alpha_bad: float | None = None, p: float = 0.0
) -> Case:
    """A 2-state, 2-action case that needs a constant near 3 at every ``gamma`` (Chapter 4, "how tight").

    State 0 (start, :math:`\\mu = (1, 0)`): action 0 stays with reward 0, action 1 moves
    to state 1 with reward 1. State 1 is absorbing, with rewards :math:`+1` (action 0) and
    :math:`-1` (action 1). The old policy plays action 1 with probability ``p`` in state 0
    (default 0: the worst case sits on the boundary of the softmax family, where a search
    over softmax parameters does not reach it) and is uniform in state 1. The new policy
    moves ``alpha`` towards state 1 in state 0 and ``alpha_bad`` (default ``alpha``)
    towards the bad action in state 1. With ``p = 0``, :math:`\\varepsilon = 1` and
    ``alpha_bad = alpha`` the constant the case needs is :func:`two_state_constant`,
    :math:`3(1-\\gamma)/(1-\\gamma+\\alpha\\gamma)`.
    """
    g = check_gamma(gamma)
    a = float(alpha)
    b = a if alpha_bad is None else float(alpha_bad)
    q = float(p)
    if not (np.isfinite(q) and 0 <= q < 1):
        raise ValueError(f"p must lie in [0, 1), got {p!r}")
    if not (np.isfinite(a) and 0 < a <= 1 - q):
        raise ValueError(f"alpha must lie in (0, 1 - p], got {alpha!r}")
    if not (np.isfinite(b) and 0 <= b <= 0.5):
        got = f"{alpha_bad!r}" if alpha_bad is not None else f"the default alpha = {alpha!r}"
        raise ValueError(f"alpha_bad must lie in [0, 0.5], got {got}")
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0
    R = np.array([[0.0, 1.0], [1.0, -1.0]])
    mdp = TabularMDP(P, R, g, np.array([1.0, 0.0]))
    old = np.array([[1 - q, q], [0.5, 0.5]])
    new = np.array([[1 - q - a, q + a], [0.5 - b, 0.5 + b]])
    return mdp, old, new


def two_state_constant(gamma: Any, alpha: Any) -> Any:
    """Closed form :math:`3(1-\\gamma)/(1-\\gamma+\\alpha\\gamma)` of the constant :func:`two_state_case` needs.

    Derived in Chapter 4 ("how tight") and checked there with SymPy; it tends to 3 as
    :math:`\\alpha \\to 0`, at every :math:`\\gamma`.
    """
    g = np.asarray(gamma, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    return 3 * (1 - g) / (1 - g + a * g)


def bad_mean_advantage_states(
    mdp: TabularMDP, pi_old: Any, pi_new: Any, tol: float = 1e-9
) -> int:
    """Number of states with :math:`\\rho_{\\pi_{old}}(s) > 0` and :math:`\\bar A(s) < -`\\ ``tol``.

    :math:`\\bar A(s) = \\sum_a \\pi_{new}(a|s) A_{\\pi_{old}}(s,a)` (:func:`mean_advantage`).
    An exact tabular trust-region step has none (Chapter 4, ``prop-exact-step``), and
    then :math:`J(\\pi_{new}) \\ge J(\\pi_{old})`; ``tol`` is relative to
    :math:`\\max|A_{\\pi_{old}}|`.
    """
    tol = _check_constant(tol, "tol")
    abar = mean_advantage(mdp, pi_old, pi_new)
    rho = visitation(mdp, check_policy(mdp, pi_old))
    scale = max(float(np.abs(advantage_function(mdp, pi_old)).max()), 1e-300)
    return int(np.sum((rho > 0) & (abar < -tol * scale)))


def worst_case_search(
    gamma: float,
    n_states: int = 2,
    n_actions: int = 2,
    form: str = "tv",
    n_starts: int = 4,
    seed: int = 0,
    max_evals: int = 3000,
) -> list[Case]:
    """Search MDPs and policy pairs that make the bound of ``thm-trpo`` as tight as possible.

    Maximises :math:`(L - J)(1-\\gamma)^2 / (\\varepsilon\\gamma D)` over transition
    probabilities, rewards, initial law and both policies (all through softmax or free
    parameters) with Nelder-Mead from ``n_starts`` random starts, at a fixed ``gamma``.
    Returns the best case of each start; :func:`empirical_constant` evaluates them with
    the exact companion functions.
    """
    from scipy.optimize import minimize

    g = check_gamma(gamma)
    if g == 0:
        raise ValueError("gamma must be positive (the bound is trivial at gamma = 0)")
    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    if A < 2:
        raise ValueError(f"n_actions must be at least 2, got {A}")
    if form not in ("tv", "kl"):
        raise ValueError(f"form must be 'tv' or 'kl', got {form!r}")
    n_starts = check_positive_int(n_starts, "n_starts")
    max_evals = check_positive_int(max_evals, "max_evals")
    rng = np.random.default_rng(seed)
    n = S * A * S + 3 * S * A + S
    cases = []
    for _ in range(n_starts):
        res = minimize(
            lambda z: -_fast_ratio(z, S, A, g, form),
            2.0 * rng.normal(size=n),
            method="Nelder-Mead",
            options={"maxfev": max_evals, "xatol": 1e-10, "fatol": 1e-14},
        )
        P, R, mu, old, new = _unpack_case(res.x, S, A)
        P = P / P.sum(-1, keepdims=True)
        cases.append(
            (
                TabularMDP(P, R, g, mu / mu.sum()),
                old / old.sum(1, keepdims=True),
                new / new.sum(1, keepdims=True),
            )
        )
    return cases


def exact_trpo_step(
    mdp: TabularMDP, pi_old: Any, max_kl: float | None = None, constant: float = 4.0
) -> np.ndarray:
    """One exact step over tabular softmax policies (Chapter 4, ``trpo-penalty``, ``trpo-constraint``).

    With ``max_kl=None``, the penalty form: maximise
    :math:`L_{\\pi_{old}}(\\pi) - C\\, D^{\\max}_{KL}(\\pi_{old}, \\pi)` with
    :math:`C` = :func:`penalty_coefficient` (``constant`` in place of 4), written with an
    epigraph variable :math:`t \\ge D_{KL}(\\pi_{old}(\\cdot|s) \\| \\pi(\\cdot|s))`
    for every :math:`s`, in variables rescaled so that the optimum is of order one (the
    optimal step is of order :math:`|g|/C`, tiny). Otherwise the trust region form: maximise :math:`L` subject
    to :math:`D^{\\max}_{KL} \\le` ``max_kl``. Both are solved from :math:`\\pi_{old}` by
    SciPy's ``trust-constr`` with exact gradients; raises ``RuntimeError`` unless the
    solver reports success.
    """
    from scipy.optimize import BFGS, NonlinearConstraint, minimize

    pi_old = check_policy(mdp, pi_old)
    if np.any(pi_old <= 0):
        raise ValueError(
            "pi_old must put positive probability on every action (softmax parameters)"
        )
    if max_kl is not None and not (np.isfinite(max_kl) and max_kl > 0):
        raise ValueError(
            f"max_kl must be None or a finite positive number, got {max_kl!r}"
        )
    S, A = mdp.n_states, mdp.n_actions
    rho, adv = visitation(mdp, pi_old), advantage_function(mdp, pi_old)
    th0 = np.log(pi_old).ravel()

    def pol(th: np.ndarray) -> np.ndarray:
        return _softmax(th.reshape(S, A))

    def kls(th: np.ndarray) -> np.ndarray:
        p = pol(th)
        return (pi_old * (np.log(pi_old) - np.log(np.maximum(p, 1e-300)))).sum(1)

    def gain(th: np.ndarray) -> float:
        return float(rho @ (pol(th) * adv).sum(1))

    def gain_grad(
        th: np.ndarray,
    ) -> np.ndarray:  # d/dtheta[s, a] = rho(s) pi(a|s) (A(s,a) - Abar(s))
        p = pol(th)
        return (rho[:, None] * p * (adv - (p * adv).sum(1, keepdims=True))).ravel()

    def kls_jac(
        th: np.ndarray,
    ) -> np.ndarray:  # d KL_s / d theta[s, a] = pi(a|s) - pi_old(a|s)
        jac = np.zeros((S, S, A))
        jac[np.arange(S), np.arange(S)] = pol(th) - pi_old
        return jac.reshape(S, S * A)

    if max_kl is None:
        C = penalty_coefficient(mdp, pi_old, constant)
        if C == 0:
            raise ValueError(
                "the penalty coefficient is 0 (no advantage): nothing to trade off"
            )
        # Near the optimum the step d = theta - theta_old is of order |g| / C and the
        # objective of order |g|^2 / C^2 (in units of the KL): solve in the rescaled
        # variables u = d / sigma, tau = t / sigma^2 with sigma = |g| / C, whose optimum is
        # of order one.
        sigma = max(float(np.linalg.norm(gain_grad(th0))) / C, 1e-150)

        def th_of(z: np.ndarray) -> np.ndarray:
            return th0 + sigma * z[:-1]

        with (
            warnings.catch_warnings()
        ):  # trust-constr warns that the Hessian is approximate
            warnings.simplefilter("ignore")
            res = minimize(
                lambda z: z[-1] - gain(th_of(z)) / (C * sigma**2),
                np.zeros(S * A + 1),
                jac=lambda z: np.append(-gain_grad(th_of(z)) / (C * sigma), 1.0),
                hess=BFGS(),
                method="trust-constr",
                constraints=[
                    NonlinearConstraint(
                        lambda z: z[-1] - kls(th_of(z)) / sigma**2,
                        0.0,
                        np.inf,
                        jac=lambda z: np.hstack(
                            [-kls_jac(th_of(z)) / sigma, np.ones((S, 1))]
                        ),
                        hess=BFGS(),
                    )
                ],
                options={"gtol": 1e-9, "xtol": 1e-14, "maxiter": 2000},
            )
        theta = th_of(res.x)
    else:
        scale = max(float(rho @ np.abs(adv).max(1)), 1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(
                lambda th: -gain(th) / scale,
                th0,
                jac=lambda th: -gain_grad(th) / scale,
                hess=BFGS(),
                method="trust-constr",
                constraints=[
                    NonlinearConstraint(
                        lambda th: kls(th) / max_kl,
                        -np.inf,
                        1.0,
                        jac=lambda th: kls_jac(th) / max_kl,
                        hess=BFGS(),
                    )
                ],
                options={"gtol": 1e-9, "xtol": 1e-14, "maxiter": 2000},
            )
        theta = res.x
    if not res.success:
        raise RuntimeError(f"trust-constr failed: {res.message}")
    return pol(theta)


# ------------------------------------------------------------------ numerical tools


def conjugate_gradient(
    Avp: Callable[[Any], Any], b: Any, n_iters: int = 10, tol: float = 1e-10
) -> Any:
    """Approximately solve :math:`A x = b` for symmetric positive-definite :math:`A` given only ``Avp(v) = A v``.

    Conjugate gradient from :math:`x_0 = 0`: at most ``n_iters`` matrix-vector products,
    stopping early once the squared residual norm :math:`\\|b - Ax\\|^2` falls below
    ``tol``. In exact arithmetic it solves an :math:`n \\times n` system in :math:`n`
    iterations. ``b`` may be a numpy array or a torch tensor (1-D); ``x`` has its type.
    """
    n_iters = check_positive_int(n_iters, "n_iters")
    if not callable(Avp):
        raise ValueError("Avp must be a function v -> A v")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite non-negative number, got {tol!r}")
    if getattr(b, "ndim", None) != 1:
        raise ValueError(
            f"b must be a 1-D vector, got shape {getattr(b, 'shape', None)}"
        )
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
            raise ValueError(
                f"conjugate_gradient needs a positive-definite A, but p^T A p = {pAp:.3g}"
            )
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

    params = list(params)
    if not params:
        raise ValueError("params must contain at least one tensor")
    if not isinstance(output, torch.Tensor) or output.numel() != 1:
        raise ValueError("output must be a scalar tensor")
    grads = torch.autograd.grad(
        output, params, create_graph=create_graph, allow_unused=True
    )
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, params)
        ]
    )


def fisher_vector_product(
    kl_fn: Callable[[], Any], params: Sequence[Any], v: Any, damping: float = 0.0
) -> Any:
    """:math:`(F + \\text{damping}\\, I) v`, with :math:`F` the Hessian of the mean KL at the current parameters.

    ``kl_fn()`` must return the mean :math:`D_{KL}(\\pi_{old} \\| \\pi_\\theta)` over a batch of states,
    with :math:`\\pi_{old}` detached, evaluated at :math:`\\theta = \\theta_{old}`; there its
    Hessian equals the Fisher information matrix :math:`\\mathbb E[\\nabla\\log\\pi \\nabla\\log\\pi^\\top]`
    (Chapter 4, eq. ``fisher-hessian``). Computed by double backpropagation,
    :math:`\\nabla_\\theta (\\nabla_\\theta \\mathrm{KL} \\cdot v)`, without ever forming :math:`F`.
    """
    params = list(params)
    if not callable(kl_fn):
        raise ValueError("kl_fn must be a function returning the mean KL")
    if not hasattr(v, "numel"):
        raise ValueError(f"v must be a torch vector, got {type(v).__name__}")
    n = sum(p.numel() for p in params)
    if v.ndim != 1 or v.numel() != n:
        raise ValueError(
            f"v must be a vector of length {n} (the number of parameters), got shape {tuple(v.shape)}"
        )
    if damping < 0:
        raise ValueError(f"damping must be non-negative, got {damping}")
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)
    hvp = flat_grad((grad_kl * v.detach()).sum(), params)
    return hvp + damping * v if damping else hvp


def policy_fisher_matrix(model: Any, states: Any, reduce: str = "mean") -> Any:
    """Fisher matrix of a categorical policy network from its definition (Chapter 4, eq. ``fisher-hessian``).

    :math:`F = \\mathbb E_s \\sum_a \\pi_\\theta(a|s)\\, \\nabla_\\theta\\log\\pi_\\theta(a|s)
    \\nabla_\\theta\\log\\pi_\\theta(a|s)^\\top`: outer products of score vectors, with the exact
    expectation over actions, averaged over the rows of ``states`` (``reduce="sum"``
    sums them instead, the wrong version a check must reject). ``model(states)`` returns
    logits; parameters are flattened in the order of ``model.parameters()``.
    """
    import torch

    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    with torch.no_grad():
        probs = torch.softmax(model(states), -1)
    F = torch.zeros(n_params, n_params, dtype=probs.dtype)
    for i in range(states.shape[0]):
        for a in range(probs.shape[1]):
            score = flat_grad(
                torch.log_softmax(model(states[i : i + 1]), -1)[0, a], params
            )
            F += probs[i, a] * torch.outer(score, score)
    return F / states.shape[0] if reduce == "mean" else F


def mean_kl_hessian(model: Any, states: Any, at: Any = None) -> Any:
    """Hessian of :math:`\\theta \\mapsto \\bar D_{KL}(\\pi_{\\theta_{old}} \\| \\pi_\\theta)` by autograd (Chapter 4, eq. ``fisher-hessian``).

    :math:`\\theta_{old}` is the model's current (flattened) parameters, and the mean is over
    the rows of ``states``. Evaluated at ``at`` (a flat parameter vector; default
    :math:`\\theta_{old}`, where it equals :func:`policy_fisher_matrix`).
    """
    import torch
    from torch.func import functional_call

    named = list(model.named_parameters())
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    theta_old = torch.cat([p.detach().reshape(-1) for _, p in named])
    point = theta_old if at is None else at
    if getattr(point, "shape", None) != theta_old.shape:
        raise ValueError(f"at must be a flat vector of {theta_old.numel()} parameters")
    with torch.no_grad():
        logp_old = torch.log_softmax(model(states), -1)

    def kl(theta: Any) -> Any:
        chunks = [c.view(s) for c, s in zip(torch.split(theta, sizes), shapes)]
        logits = functional_call(model, dict(zip(names, chunks)), (states,))
        logp = torch.log_softmax(logits, -1)
        return (logp_old.exp() * (logp_old - logp)).sum(-1).mean()

    return torch.autograd.functional.hessian(kl, point.detach())


def cg_solve_error(
    A: Any,
    b: Any,
    Avp: Callable[[Any], Any] | None = None,
    cg_fn: Callable[..., Any] | None = None,
) -> float:
    """Relative error :math:`\\|x - A^{-1}b\\| / \\|A^{-1}b\\|` of conjugate gradient run for ``len(b)`` iterations.

    ``cg_fn(Avp, b, n_iters)`` (default :func:`conjugate_gradient` with a tiny stopping
    tolerance) is given the products ``Avp`` (default ``v -> A @ v``; pass, e.g., a
    Fisher-vector product to compare it too) and compared with a direct solve of the
    explicit matrix ``A``. In exact arithmetic CG solves the system in ``len(b)``
    iterations, so a correct implementation gives an error near rounding.
    """
    if cg_fn is None:

        def cg_fn(Avp_: Any, b_: Any, n: int) -> Any:
            return conjugate_gradient(Avp_, b_, n, tol=1e-30)

    if Avp is None:

        def Avp(v: Any) -> Any:
            return A @ v

    if getattr(b, "ndim", None) != 1:
        raise ValueError(
            f"b must be a 1-D vector, got shape {getattr(b, 'shape', None)}"
        )
    if tuple(getattr(A, "shape", ())) != (b.shape[0], b.shape[0]):
        raise ValueError(
            f"A must be a square matrix matching b, got shape {getattr(A, 'shape', None)}"
        )
    if not callable(cg_fn) or not callable(Avp):
        raise ValueError("cg_fn and Avp must be functions")
    x = cg_fn(Avp, b, int(b.shape[0]))
    A_np = np.asarray(A.detach() if hasattr(A, "detach") else A, dtype=np.float64)
    b_np = np.asarray(b.detach() if hasattr(b, "detach") else b, dtype=np.float64)
    x_np = np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)
    exact = np.linalg.solve(A_np, b_np)
    return float(np.linalg.norm(x_np - exact) / np.linalg.norm(exact))


def full_step(x: Any, Fx: Any, max_kl: float) -> Any:
    """The TRPO full step :math:`s = \\sqrt{2\\delta / x^\\top F x}\\; x` (Chapter 4, eq. ``natural-step``).

    ``x`` is the search direction (approximately :math:`F^{-1} g`) and ``Fx`` the product
    :math:`F x`; the step is the largest multiple of :math:`x` whose quadratic model of
    the KL, :math:`\\frac12 s^\\top F s`, equals ``max_kl`` :math:`= \\delta`. Works on numpy
    arrays and torch tensors (1-D, same shape).
    """
    if (
        getattr(x, "ndim", None) != 1
        or getattr(Fx, "ndim", None) != 1
        or tuple(x.shape) != tuple(Fx.shape)
    ):
        raise ValueError(
            f"x and Fx must be 1-D vectors of the same shape, got "
            f"{getattr(x, 'shape', None)} and {getattr(Fx, 'shape', None)}"
        )
    delta = float(max_kl)
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"max_kl must be a finite positive number, got {max_kl!r}")
    xFx = float((x * Fx).sum())
    if not (np.isfinite(xFx) and xFx > 0):
        raise ValueError(
            f"x^T F x must be positive (F positive-definite, x non-zero), got {xFx:.3g}"
        )
    return float(np.sqrt(2.0 * delta / xFx)) * x


def quadratic_kl_error(
    step_fn: Callable[[Any, Any, float], Any], F: Any, x: Any, max_kl: float
) -> float:
    """Relative error :math:`|\\frac12 s^\\top F s - \\delta| / \\delta` of ``s = step_fn(x, F @ x, max_kl)``.

    The product :math:`F x` and the quadratic form are computed here with the explicit
    matrix ``F`` (a numpy array), so a step rule with a wrong factor (for example
    :math:`\\sqrt{\\delta / x^\\top F x}`) gives an error far from 0.
    """
    F = np.asarray(F, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] != F.shape[1] or x.shape != (F.shape[0],):
        raise ValueError(
            f"F must be square and x a matching vector, got {F.shape} and {x.shape}"
        )
    s = np.asarray(step_fn(x, F @ x, max_kl), dtype=np.float64)
    return float(abs(0.5 * s @ F @ s - max_kl) / max_kl)


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
    if not callable(objective) or not callable(constraint):
        raise ValueError("objective and constraint must be functions of x")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must lie in (0, 1), got {shrink}")
    if not (np.isfinite(max_constraint) and max_constraint >= 0):
        raise ValueError(
            f"max_constraint must be a finite non-negative number, got {max_constraint!r}"
        )
    max_backtracks = check_positive_int(max_backtracks, "max_backtracks")
    f0 = objective(x)
    fraction = 1.0
    for _ in range(max_backtracks):
        candidate = x + fraction * full_step
        if constraint(candidate) <= max_constraint and objective(candidate) > f0:
            return candidate, fraction
        fraction *= shrink
    return x, 0.0


# ---------------------------------------------------------------------- the learner


def categorical_kl(logp_p: Any, logp_q: Any) -> Any:
    """:math:`D_{KL}(p \\| q) = \\sum_a p_a (\\log p_a - \\log q_a)` from log-probabilities along the last axis (torch)."""
    return (logp_p.exp() * (logp_p - logp_q)).sum(-1)


def diagonal_gaussian_kl(mu_p: Any, log_std_p: Any, mu_q: Any, log_std_q: Any) -> Any:
    """Closed-form :math:`D_{KL}(\\mathcal N(\\mu_p, \\Sigma_p) \\| \\mathcal N(\\mu_q, \\Sigma_q))` of diagonal Gaussians (torch).

    With :math:`\\Sigma = \\operatorname{diag}(\\sigma^2)`, summed over the last axis:

    .. math::
        D_{KL} = \\sum_i \\Bigl[\\log\\frac{\\sigma_{q,i}}{\\sigma_{p,i}}
        + \\frac{\\sigma_{p,i}^2 + (\\mu_{p,i} - \\mu_{q,i})^2}{2\\sigma_{q,i}^2} - \\frac12\\Bigr].

    The arguments broadcast against each other (a state-independent ``log_std`` of
    shape ``(d,)`` with means of shape ``(n, d)``); the result has the broadcast shape
    without its last axis.
    """
    import torch

    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    terms = log_std_q - log_std_p + (var_p + (mu_p - mu_q) ** 2) / (2 * var_q) - 0.5
    return terms.sum(-1)


def _policy_module_class() -> Any:
    import torch

    class TRPOPolicy(torch.nn.Module):
        """The policy :func:`train_trpo` returns: categorical (Discrete actions) or diagonal Gaussian (Box).

        ``net`` is a tanh MLP from observations to logits (categorical) or to the mean
        :math:`\\mu_\\theta(s)` (Gaussian); the Gaussian's log standard deviation ``log_std``
        is a separate parameter that does not depend on the state (as in SB3's default
        ``MlpPolicy`` without gSDE, and :class:`companion.ppo.Agent`). ``policy(obs)`` is
        ``net(obs)``. Its parameters, in the order of ``parameters()``, are ``net``'s then
        ``log_std``; TRPO flattens them into :math:`\\theta`.

        - :meth:`sample` draws actions and their log-probabilities (of the *unclipped*
          Gaussian sample; :func:`train_trpo` clips only what reaches the environment);
        - :meth:`log_prob` gives :math:`\\log\\pi_\\theta(a|s)`;
        - :meth:`dist_params` and :meth:`kl` give :math:`D_{KL}(\\pi_{p}(\\cdot|s) \\| \\pi_\\theta(\\cdot|s))`
          per state in closed form (:func:`categorical_kl`, :func:`diagonal_gaussian_kl`);
        - :meth:`greedy` is the deterministic policy used for evaluation: the most likely
          action, or the Gaussian mean clipped to the action bounds (as
          :meth:`companion.ppo.Agent.greedy`).
        """

        def __init__(
            self, obs_dim: int, action_space: Any, config: "TRPOConfig"
        ) -> None:
            import gymnasium as gym

            from companion.nets import mlp

            super().__init__()
            self.discrete = isinstance(action_space, gym.spaces.Discrete)
            if not self.discrete and not isinstance(action_space, gym.spaces.Box):
                raise ValueError(
                    f"{config.env_id} must have a Discrete or Box action space, got {action_space}"
                )
            n_out = (
                int(action_space.n)
                if self.discrete
                else int(np.prod(action_space.shape))
            )
            if config.ortho_init:
                self.net = mlp([obs_dim, *config.hidden, n_out], True, out_gain=0.01)
            else:
                self.net = mlp([obs_dim, *config.hidden, n_out])
            if not self.discrete:
                self.log_std = torch.nn.Parameter(
                    torch.full((n_out,), float(config.log_std_init))
                )
                self.register_buffer(
                    "low", torch.as_tensor(action_space.low, dtype=torch.float32)
                )
                self.register_buffer(
                    "high", torch.as_tensor(action_space.high, dtype=torch.float32)
                )

        def forward(self, obs: Any) -> Any:
            return self.net(obs)

        def sample(self, obs: Any, generator: Any) -> tuple[Any, Any]:
            """Actions :math:`a \\sim \\pi_\\theta(\\cdot|s)` and :math:`\\log\\pi_\\theta(a|s)` (of the unclipped sample)."""
            out = self.net(obs)
            if self.discrete:
                logp_all = torch.log_softmax(out, -1)
                a = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
                return a, logp_all.gather(1, a[:, None]).squeeze(1)
            noise = torch.randn(out.shape, generator=generator, device=out.device)
            a = out + self.log_std.exp() * noise
            return a, self._gaussian_logp(a, out)

        def _gaussian_logp(self, actions: Any, mean: Any) -> Any:
            """:math:`\\sum_i \\log \\mathcal N(a_i; \\mu_i, \\sigma_i^2)`."""
            z = (actions - mean) / self.log_std.exp()
            return (-0.5 * z**2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

        def log_prob(self, obs: Any, actions: Any) -> Any:
            """:math:`\\log\\pi_\\theta(a|s)` of the given (sampled, unclipped) actions, one per row."""
            out = self.net(obs)
            if self.discrete:
                return (
                    torch.log_softmax(out, -1)
                    .gather(1, actions.long()[:, None])
                    .squeeze(1)
                )
            return self._gaussian_logp(actions, out)

        def dist_params(self, obs: Any) -> tuple[Any, ...]:
            """The distribution's parameters on ``obs``: ``(log-probabilities,)`` or ``(mean, log_std)``."""
            out = self.net(obs)
            if self.discrete:
                return (torch.log_softmax(out, -1),)
            return out, self.log_std

        def kl(self, params_p: tuple[Any, ...], obs: Any) -> Any:
            """Per-state :math:`D_{KL}(p \\| \\pi_\\theta)`, ``p`` given by ``params_p`` from :meth:`dist_params`."""
            params_q = self.dist_params(obs)
            if self.discrete:
                return categorical_kl(params_p[0], params_q[0])
            return diagonal_gaussian_kl(*params_p, *params_q)

        def greedy(self, obs: Any) -> Any:
            """Deterministic action: argmax of the logits, or the mean clipped to ``[low, high]`` (no gradient)."""
            with torch.no_grad():
                out = self.net(obs)
                if self.discrete:
                    return out.argmax(-1)
                return torch.clamp(out, self.low, self.high)

    return TRPOPolicy


_POLICY_CLASS: Any = None


def _trpo_policy_class() -> Any:
    global _POLICY_CLASS
    if _POLICY_CLASS is None:
        cls = _policy_module_class()
        cls.__module__, cls.__qualname__ = __name__, "TRPOPolicy"
        _POLICY_CLASS = cls
    return _POLICY_CLASS


def __getattr__(name: str) -> Any:
    """``companion.trpo.TRPOPolicy`` is built on first access, so that importing this module does not import torch."""
    if name == "TRPOPolicy":
        return _trpo_policy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_trpo_policy(obs_dim: int, action_space: Any, config: TRPOConfig) -> Any:
    """A :class:`TRPOPolicy` (see :func:`train_trpo`) for ``action_space`` with ``config``'s network settings.

    ``companion.trpo.TRPOPolicy`` is a ``torch.nn.Module`` subclass created on first use
    (so that importing :mod:`companion.trpo` does not import torch); its instances pickle.
    """
    return _trpo_policy_class()(obs_dim, action_space, config)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(
        v, (int, float, np.integer, np.floating)
    )


@dataclass
class TRPOConfig:
    """Settings of :func:`train_trpo`; defaults suit CartPole-v1.

    Every field is validated when the config is built; a bad value raises ``ValueError``
    naming the field. Names of sb3-contrib's ``TRPO`` arguments (and the RL Zoo's) map as
    ``learning_rate`` -> ``vf_lr``, ``n_critic_updates`` -> ``vf_epochs``, ``batch_size`` ->
    ``vf_batch_size``, ``cg_damping`` -> ``damping``, ``cg_max_steps`` -> ``cg_iters``,
    ``target_kl`` -> ``max_kl``, ``line_search_shrinking_factor`` -> ``line_search_shrink``,
    ``line_search_max_iter`` -> ``line_search_max_iter``, ``n_envs`` -> ``num_envs``,
    ``n_timesteps`` -> ``total_timesteps``; SB3's ``MlpPolicy`` has ``ortho_init=True`` and
    ``adam_eps=1e-5``. Differences that remain: SB3 constrains :math:`D_{KL}(\\pi_{new}\\|\\pi_{old})`
    (this learner :math:`D_{KL}(\\pi_{old}\\|\\pi_{new})`, equal to second order), and gSDE is
    not available.
    """

    env_id: str = "CartPole-v1"
    """gymnasium id of an environment with a Box observation and Discrete or Box actions."""
    num_envs: int = 8
    """Environments stepped together."""
    n_steps: int = 256
    """Steps per environment per update (the batch has ``num_envs * n_steps`` steps)."""
    n_updates: int = 60
    """Number of policy updates (ignored when ``total_timesteps`` is set)."""
    total_timesteps: int | None = None
    """Budget in environment steps (summed over environments); when set, training runs
    ``ceil(total_timesteps / (num_envs * n_steps))`` updates, the number of rollouts
    SB3's ``learn(total_timesteps)`` collects. See :attr:`updates`."""
    max_kl: float = 0.01
    """Trust-region size :math:`\\delta` on the mean KL (typical: 0.001 to 0.05)."""
    gamma: float = 0.99
    """Discount :math:`\\gamma`."""
    gae_lambda: float = 0.97
    """GAE :math:`\\lambda` (Chapter 6)."""
    normalize_advantage: bool = True
    """Normalise the batch's advantages to zero mean and unit standard deviation."""
    cg_iters: int = 10
    """Conjugate-gradient iterations (Fisher-vector products) per update."""
    damping: float = 0.1
    """Damping added to the Fisher matrix, :math:`F + \\text{damping}\\, I`, for stability."""
    line_search_shrink: float = 0.5
    """Backtracking factor :math:`\\beta \\in (0, 1)`: the line search tries :math:`\\beta^k` times the full step."""
    line_search_max_iter: int = 10
    """Points the line search tries (:math:`k = 0, \\ldots,` ``line_search_max_iter - 1``)."""
    vf_lr: float = 1e-3
    """Adam learning rate of the separate value network."""
    adam_eps: float = 1e-8
    """Adam's :math:`\\epsilon` for the value network (PyTorch's default; SB3 uses 1e-5)."""
    vf_epochs: int = 5
    """Passes over the batch to fit the value network."""
    vf_minibatches: int = 8
    """Minibatches per value-network pass (ignored when ``vf_batch_size`` is set)."""
    vf_batch_size: int | None = None
    """Minibatch size of the value-network passes (SB3's ``batch_size``; the last
    minibatch of a pass may be smaller); ``None`` uses ``vf_minibatches`` instead."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden tanh layers of the policy and of the value network."""
    ortho_init: bool = False
    """Orthogonal initialisation as SB3's policies (gain :math:`\\sqrt 2` hidden, 0.01 policy
    output, 1 value output, zero biases); ``False``: PyTorch's default initialisation."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (Box actions only)."""
    device: str = "cpu"
    """torch device."""

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        for name in (
            "num_envs",
            "n_steps",
            "n_updates",
            "cg_iters",
            "line_search_max_iter",
            "vf_epochs",
            "vf_minibatches",
        ):
            check_positive_int(getattr(self, name), name)
        for name in ("total_timesteps", "vf_batch_size"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        for name in ("max_kl", "vf_lr", "adam_eps"):
            v = getattr(self, name)
            if not _is_number(v) or not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite positive number, got {v!r}")
        check_gamma(self.gamma)
        lam = self.gae_lambda
        if not _is_number(lam) or not 0 <= lam <= 1:
            raise ValueError(f"gae_lambda must lie in [0, 1], got {lam!r}")
        d = self.damping
        if not _is_number(d) or not (np.isfinite(d) and d >= 0):
            raise ValueError(f"damping must be a finite non-negative number, got {d!r}")
        b = self.line_search_shrink
        if not _is_number(b) or not 0 < b < 1:
            raise ValueError(f"line_search_shrink must lie in (0, 1), got {b!r}")
        for name in ("normalize_advantage", "ortho_init"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"{name} must be True or False, got {getattr(self, name)!r}"
                )
        s = self.log_std_init
        if not _is_number(s) or not np.isfinite(s):
            raise ValueError(f"log_std_init must be a finite number, got {s!r}")
        if not isinstance(self.hidden, tuple) or not self.hidden:
            raise ValueError(
                f"hidden must be a non-empty tuple of layer widths, got {self.hidden!r}"
            )
        for width in self.hidden:
            check_positive_int(width, "hidden")
        batch = self.num_envs * self.n_steps
        if self.vf_minibatches > batch:
            raise ValueError(
                f"vf_minibatches must be at most num_envs * n_steps = "
                f"{batch}, got {self.vf_minibatches}"
            )
        if self.vf_batch_size is not None and self.vf_batch_size > batch:
            raise ValueError(
                f"vf_batch_size must be at most num_envs * n_steps = "
                f"{batch}, got {self.vf_batch_size}"
            )
        if self.normalize_advantage and batch < 2:
            raise ValueError(
                "normalize_advantage needs num_envs * n_steps >= 2 (a standard deviation)"
            )
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"device must be a torch device name, got {self.device!r}")

    @property
    def updates(self) -> int:
        """Number of updates :func:`train_trpo` runs: ``n_updates``, or ``ceil(total_timesteps / batch)``."""
        if self.total_timesteps is None:
            return int(self.n_updates)
        batch = self.num_envs * self.n_steps
        return -(-int(self.total_timesteps) // batch)


@dataclass
class TRPOHistory:
    """One entry per update (``fresh_kl``: one per update but the last)."""

    env_steps: list[int] = field(default_factory=list)
    """Valid environment steps so far (autoreset steps, whose action is ignored, are not counted)."""
    mean_return: list[float] = field(default_factory=list)
    """Mean return of the last 20 finished episodes (NaN before the first)."""
    kl: list[float] = field(default_factory=list)
    """Mean KL(old || new) on the batch the line search used (at most ``max_kl`` by construction)."""
    fresh_kl: list[float] = field(default_factory=list)
    """Mean KL(old || new) on the states of the *next* rollout, which the update never saw."""
    step_fraction: list[float] = field(default_factory=list)
    """Fraction :math:`\\beta^k` of the full step the line search accepted (0: none)."""
    surrogate_gain: list[float] = field(default_factory=list)
    """:math:`L(\\theta_{new}) - L(\\theta_{old})` of the sampled surrogate."""


def train_trpo(
    config: TRPOConfig,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[Any, int], bool] | None = None,
    wrap_env: Callable[[Any], Any] | None = None,
    on_rollout: Callable[[Any, Any], None] | None = None,
) -> tuple[Any, Any, TRPOHistory]:
    """Train an MLP policy with TRPO; returns ``(policy, value_net, history)``.

    Each update (Chapter 4, "TRPO, the algorithm"): collect ``num_envs * n_steps`` steps;
    GAE advantages (normalised if ``normalize_advantage``); the importance-sampled
    surrogate :math:`L(\\theta) = \\mathbb E[\\frac{\\pi_\\theta(a|s)}{\\pi_{old}(a|s)} \\hat A]` and
    its gradient :math:`g`; :math:`x \\approx F^{-1} g` by conjugate gradient with
    Fisher-vector products, :math:`F` the Hessian of the mean
    :math:`\\bar D_{KL}(\\pi_{old} \\| \\pi_\\theta)` at :math:`\\theta_{old}` (plus damping); the full step
    :math:`s = \\sqrt{2\\delta / x^\\top F x}\\, x` (:func:`full_step`), whose quadratic model
    :math:`\\frac12 s^\\top F s` of the KL equals :math:`\\delta`; a backtracking line search
    (:math:`\\beta^k s`) that requires the mean KL to stay at most :math:`\\delta` and :math:`L` to
    improve; then ``vf_epochs`` passes of Adam on the value network's squared error to the
    TD(:math:`\\lambda`) returns. ``history.fresh_kl`` records the mean KL between consecutive
    policies on the states of the next rollout, which the line search never saw.

    One loop serves both action spaces; only the distribution differs (see the returned
    ``policy``):

    - Discrete actions: a categorical policy over the MLP's logits,
      :math:`D_{KL}(p\\|q) = \\sum_a p_a \\log(p_a/q_a)` (:func:`categorical_kl`).
    - Box actions: a diagonal Gaussian :math:`\\mathcal N(\\mu_\\theta(s), \\operatorname{diag}\\sigma^2)`
      with a state-independent :math:`\\log\\sigma` (initially ``log_std_init``) and the
      closed-form KL :func:`diagonal_gaussian_kl`. The sampled action is clipped to the
      bounds only where it reaches the environment; the rollout keeps the unclipped
      sample and its log-probability, so the ratio is that of the distribution that drew it.

    ``policy`` is a ``TRPOPolicy`` (a ``torch.nn.Module``, see :func:`make_trpo_policy`):
    ``policy(obs)`` gives the logits or the mean, ``policy.greedy(obs)`` the deterministic
    action for evaluation (argmax, or the mean clipped to the action bounds) as a tensor,
    ``policy.sample``/``policy.log_prob``/``policy.kl`` the stochastic policy.
    ``value_net`` maps observations to values of shape ``(n, 1)``.

    ``callback(policy, env_steps)`` runs after every update (after ``history`` has its
    entries for it), with the valid environment steps so far; returning ``True`` stops
    training after that update (the benchmark uses it to evaluate the greedy policy
    outside its timed region). ``wrap_env`` maps the vector environment to a wrapper of
    it (e.g. :class:`companion.rollout.RecordActions`); ``on_rollout(policy, rollout)`` runs
    after each collection, before the update, while ``policy`` is still the one that
    sampled the rollout. With Discrete actions and the default new fields, the results
    are those of the categorical-only learner this function replaced (same seed, same numbers).
    """
    import torch
    from companion.progress import tqdm

    from companion.gae import gae
    from companion.nets import mlp
    from companion.rollout import RolloutCollector, make_vector_env

    if not isinstance(config, TRPOConfig):
        raise ValueError(f"config must be a TRPOConfig, got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, fn in (
        ("callback", callback),
        ("wrap_env", wrap_env),
        ("on_rollout", on_rollout),
    ):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a function or None")
    torch.manual_seed(seed)
    envs = make_vector_env(config.env_id, config.num_envs, seed)
    if wrap_env is not None:
        envs = wrap_env(envs)
    space = envs.single_action_space
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    dev = config.device
    policy = make_trpo_policy(obs_dim, space, config).to(dev, dtype=torch.float32)
    if config.ortho_init:
        value_net = mlp([obs_dim, *config.hidden, 1], True, out_gain=1.0)
    else:
        value_net = mlp([obs_dim, *config.hidden, 1])
    value_net = value_net.to(dev, dtype=torch.float32)
    vf_opt = torch.optim.Adam(
        value_net.parameters(), lr=config.vf_lr, eps=config.adam_eps
    )
    params = list(policy.parameters())
    gen = torch.Generator(device=dev).manual_seed(seed)

    def act(obs: Any) -> tuple[Any, Any]:
        return policy.sample(obs, gen)

    to_env = None
    if not policy.discrete:
        low, high = space.low, space.high

        def to_env(a: np.ndarray) -> np.ndarray:
            return np.clip(a, low, high)

    collector = RolloutCollector(
        envs, act, lambda o: value_net(o).squeeze(-1), seed, dev, to_env=to_env
    )
    history = TRPOHistory()
    recent: list[float] = []
    act_shape = () if policy.discrete else tuple(space.shape)

    def get_flat() -> Any:
        return torch.cat([p.data.reshape(-1) for p in params])

    def set_flat(x: Any) -> None:
        i = 0
        for p in params:
            p.data.copy_(x[i : i + p.numel()].view_as(p))
            i += p.numel()

    prev_theta: Any = None  # the previous policy, to measure the step on fresh states
    theta_current: Any = None
    for _ in tqdm(range(config.updates), desc="TRPO", disable=not progress):
        ro = collector.collect(config.n_steps)
        if on_rollout is not None:
            on_rollout(policy, ro)
        adv = gae(
            ro.rewards,
            ro.values,
            ro.next_values,
            ro.terminated,
            ro.truncated,
            config.gamma,
            config.gae_lambda,
        )
        returns = adv + ro.values
        m = ro.valid.reshape(-1)
        obs = ro.obs.reshape(-1, obs_dim)[m]
        actions = ro.actions.reshape(-1, *act_shape)[m]
        logp_old, adv, returns = (
            ro.logp.reshape(-1)[m],
            adv.reshape(-1)[m],
            returns.reshape(-1)[m],
        )
        if config.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        with torch.no_grad():
            dist_old = tuple(t.detach().clone() for t in policy.dist_params(obs))
            if prev_theta is not None:  # KL(previous || current) on states it never saw
                set_flat(prev_theta)
                dist_prev = tuple(t.detach().clone() for t in policy.dist_params(obs))
                set_flat(theta_current)
                kl_fresh = policy.kl(dist_prev, obs).mean()
                history.fresh_kl.append(float(kl_fresh))

        def surrogate_loss() -> Any:
            logp = policy.log_prob(obs, actions)
            return (torch.exp(logp - logp_old) * adv).mean()

        def mean_kl() -> Any:
            return policy.kl(dist_old, obs).mean()

        g = flat_grad(surrogate_loss(), params)
        x = conjugate_gradient(
            lambda v: fisher_vector_product(mean_kl, params, v, config.damping),
            g,
            config.cg_iters,
        )
        Fx = fisher_vector_product(mean_kl, params, x, config.damping)
        step = full_step(x, Fx, config.max_kl) if float((x * Fx).sum()) > 0 else x * 0
        theta_old = get_flat()
        prev_theta = theta_old
        with torch.no_grad():
            L_old = float(surrogate_loss())

        def evaluate(theta: Any, fn: Callable[[], Any]) -> float:
            set_flat(theta)
            with torch.no_grad():
                return float(fn())

        theta_new, fraction = backtracking_line_search(
            lambda th: evaluate(th, surrogate_loss),
            lambda th: evaluate(th, mean_kl),
            theta_old,
            step,
            config.max_kl,
            shrink=config.line_search_shrink,
            max_backtracks=config.line_search_max_iter,
        )
        set_flat(theta_new)
        theta_current = theta_new
        with torch.no_grad():
            kl_now, L_new = float(mean_kl()), float(surrogate_loss())

        n = obs.shape[0]
        for _ in range(config.vf_epochs):
            perm = torch.randperm(n, generator=gen, device=dev)
            chunks = (
                perm.chunk(config.vf_minibatches)
                if config.vf_batch_size is None
                else perm.split(config.vf_batch_size)
            )
            for idx in chunks:
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
        if callback is not None and callback(policy, collector.total_steps):
            break
    envs.close()
    return policy, value_net, history
