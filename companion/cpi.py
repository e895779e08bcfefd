"""Approximate policy iteration with mixture policies (Chapter 3, ``book/03_cpi.md``; Kakade & Langford 2002).

Notation: :math:`\\rho_\\pi` is the unnormalised discounted visitation
(:func:`companion.mdp.visitation`, summing to :math:`1/(1-\\gamma)`) and
:math:`d_\\pi = (1-\\gamma)\\rho_\\pi` the normalised one. All advantages are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from companion._validate import (
    as_array,
    check_distribution,
    check_gamma,
    check_positive_int,
    check_unit_interval,
)
from companion.mdp import (
    TabularMDP,
    advantage_function,
    check_policy,
    expected_return,
    greedy_policy,
    uniform_policy,
    visitation,
)

__all__ = [
    "mixture",
    "policy_advantage",
    "surrogate",
    "advantage_gap",
    "first_order_gap",
    "performance_difference_terms",
    "lemma_violations",
    "kl_penalty",
    "kakade_langford_bound",
    "cpi_step_size",
    "cpi_guaranteed_gain",
    "BoundCase",
    "bound_cases",
    "bound_violations",
    "bound_equality_error",
    "coupling_series_gap",
    "step_violations",
    "tight_case",
    "worst_case_ratio",
    "coupling_distances",
    "coupling_violations",
    "one_state_counterexample",
    "guarantee_violations",
    "concentrability",
    "suboptimality_bound",
    "coverage_violations",
    "CPIHistory",
    "conservative_policy_iteration",
]


def mixture(pi: Any, pi_new: Any, alpha: float) -> np.ndarray:
    """The mixture policy :math:`\\pi_\\alpha = (1 - \\alpha)\\pi + \\alpha \\pi'` (Chapter 3, eq. ``mixture``).

    Both policies must be row-stochastic arrays of the same shape and ``alpha`` must lie
    in [0, 1]; the result is then row-stochastic too.
    """
    p = check_distribution(pi, "pi")
    q = check_distribution(pi_new, "pi_new")
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(
            f"pi and pi_new must be (S, A) arrays of the same shape, got {p.shape} and {q.shape}"
        )
    a = check_unit_interval(alpha, "alpha")
    return (1.0 - a) * p + a * q


def policy_advantage(mdp: TabularMDP, pi: Any, pi_new: Any) -> float:
    """Policy advantage :math:`\\mathbb A_\\pi(\\pi') = \\mathbb E_{s \\sim d_\\pi}\\, \\mathbb E_{a \\sim \\pi'(\\cdot|s)}[A_\\pi(s, a)]`.

    With :math:`d_\\pi = (1-\\gamma)\\rho_\\pi` the normalised discounted visitation of
    :math:`\\pi` from :math:`\\mu` (Chapter 3, eq. ``policy-advantage``).
    """
    pi = check_policy(mdp, pi)
    pi_new = check_policy(mdp, pi_new)
    d = (1.0 - mdp.gamma) * visitation(mdp, pi)
    return float(d @ (pi_new * advantage_function(mdp, pi)).sum(axis=1))


def surrogate(mdp: TabularMDP, pi_old: Any, pi_new: Any) -> float:
    """The local approximation :math:`L_{\\pi}(\\tilde\\pi) = J(\\pi) + \\sum_s \\rho_\\pi(s) \\sum_a \\tilde\\pi(a|s) A_\\pi(s,a)`.

    Equal to :math:`J(\\pi) + \\mathbb A_\\pi(\\tilde\\pi)/(1-\\gamma)`; it uses the
    visitation of the *old* policy, which is what makes it computable from old samples,
    and it agrees with :math:`J(\\tilde\\pi)` to first order at :math:`\\tilde\\pi =
    \\pi` (Chapter 3, eq. ``surrogate``).
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    rho = visitation(mdp, pi_old)
    return expected_return(mdp, pi_old) + float(
        rho @ (pi_new * advantage_function(mdp, pi_old)).sum(axis=1)
    )


def performance_difference_terms(mdp: TabularMDP, pi: Any, pi_new: Any) -> np.ndarray:
    """Per-state terms of the performance difference lemma, shape ``(S,)``.

    :math:`c(s) = \\rho_{\\tilde\\pi}(s) \\sum_a \\tilde\\pi(a|s) A_\\pi(s, a)` with
    :math:`\\tilde\\pi` = ``pi_new``; their sum is :math:`J(\\tilde\\pi) - J(\\pi)`
    (Chapter 3, lemma ``lem-performance-difference``).
    """
    pi = check_policy(mdp, pi)
    pi_new = check_policy(mdp, pi_new)
    return visitation(mdp, pi_new) * (pi_new * advantage_function(mdp, pi)).sum(axis=1)


def lemma_violations(
    terms: Callable[[TabularMDP, np.ndarray, np.ndarray], Any],
    cases: Sequence[tuple[TabularMDP, Any, Any]],
    rtol: float = 1e-9,
) -> int:
    """Number of (case, start) pairs where ``sum(terms(...))`` misses the return difference.

    Each case ``(mdp, pi, pi_new)`` is tested with the MDP's start distribution and with
    every point mass :math:`\\delta_s` (the state-by-state form that the policy
    improvement theorem uses): the sum of ``terms(mdp_start, pi, pi_new)`` must equal
    :math:`J(\\tilde\\pi) - J(\\pi)` from exact policy evaluation, within ``rtol``
    times ``1 + |J(pi_new) - J(pi)|``.
    """
    rtol = _finite(rtol, "rtol")
    count = 0
    for mdp, pi, pi_new in cases:
        starts = [mdp.mu, *np.eye(mdp.n_states)]
        for start in starts:
            m = TabularMDP(mdp.P, mdp.R, mdp.gamma, start)
            diff = expected_return(m, pi_new) - expected_return(m, pi)
            got = float(np.sum(np.asarray(terms(m, pi, pi_new), dtype=np.float64)))
            if not abs(got - diff) <= rtol * (1 + abs(diff)):
                count += 1
    return count


def first_order_gap(
    mdp: TabularMDP,
    theta: Any,
    surrogate_fn: Callable[[TabularMDP, np.ndarray, np.ndarray], float],
    h: float = 1e-5,
) -> float:
    """Largest gap between the gradients of :math:`J` and of a surrogate at a softmax policy.

    With :math:`\\pi_\\theta(a|s) \\propto e^{\\theta_{sa}}` and :math:`\\pi = \\pi_{\\theta_0}`,
    returns :math:`\\max_{sa} |\\partial_{\\theta_{sa}} J(\\pi_\\theta) -
    \\partial_{\\theta_{sa}} L(\\pi_\\theta)|` at :math:`\\theta_0`, where
    ``L(pi_new) = surrogate_fn(mdp, pi, pi_new)`` (e.g. :func:`surrogate`). Both
    gradients are central differences of exact values with step ``h``; the true
    surrogate gives a gap of order ``h**2`` (Chapter 3, eq. ``first-order``).
    """
    th = as_array(theta, "theta", shape=(mdp.n_states, mdp.n_actions))
    h = _finite(h, "h")
    if h <= 0:
        raise ValueError(f"h must be positive, got {h!r}")
    pi0 = _softmax(th)
    gap = 0.0
    for idx in np.ndindex(th.shape):
        e = np.zeros_like(th)
        e[idx] = h
        up, down = _softmax(th + e), _softmax(th - e)
        dJ = (expected_return(mdp, up) - expected_return(mdp, down)) / (2 * h)
        dL = (
            float(surrogate_fn(mdp, pi0, up)) - float(surrogate_fn(mdp, pi0, down))
        ) / (2 * h)
        gap = max(gap, abs(dJ - dL))
    return gap


def advantage_gap(mdp: TabularMDP, pi: Any, pi_new: Any) -> float:
    """:math:`\\varepsilon = \\max_s |\\mathbb E_{a \\sim \\pi'(\\cdot|s)}[A_\\pi(s, a)]|`, the constant of the Kakade-Langford bound."""
    pi = check_policy(mdp, pi)
    pi_new = check_policy(mdp, pi_new)
    return float(np.abs((pi_new * advantage_function(mdp, pi)).sum(axis=1)).max())


def _finite(x: Any, name: str) -> float:
    """Return ``x`` as a finite float, or raise ValueError naming ``name``."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def _check_adv_eps(policy_adv: Any, eps: Any) -> tuple[float, float]:
    """Validate (policy advantage, epsilon): finite, eps >= 0 and policy_adv <= eps.

    :math:`\\mathbb A \\le \\varepsilon` always holds, since :math:`\\mathbb A` is a
    :math:`d_\\pi`-average of values bounded by :math:`\\varepsilon` in absolute value;
    a larger ``policy_adv`` means the two were computed for different policies.
    """
    adv = _finite(policy_adv, "policy_adv")
    e = _finite(eps, "eps")
    if e < 0:
        raise ValueError(f"eps must be non-negative, got {eps!r}")
    if adv > e + 1e-9 * max(1.0, e):
        raise ValueError(
            f"policy_adv ({adv!r}) cannot exceed eps ({e!r}): the policy advantage "
            "is an average of values bounded by eps"
        )
    return adv, e


def _check_alpha_array(alpha: Any) -> np.ndarray:
    try:
        a = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"alpha must be a number or an array of numbers, got {alpha!r}"
        ) from None
    if np.any(~np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    return a


def kl_penalty(eps: float, alpha: Any, gamma: float) -> Any:
    """Penalty term of the Kakade-Langford bound (Chapter 3, ``thm-kakade-langford``).

    .. math::

        \\frac{2\\alpha^2\\gamma\\varepsilon}{(1-\\gamma)(1 - \\gamma(1-\\alpha))}

    so that the bound reads :math:`\\alpha\\mathbb A/(1-\\gamma)` minus this term.
    """
    g = check_gamma(gamma)
    e = _finite(eps, "eps")
    if e < 0:
        raise ValueError(f"eps must be non-negative, got {eps!r}")
    a = _check_alpha_array(alpha)
    out = 2 * a**2 * g * e / ((1 - g) * (1 - g * (1 - a)))
    return float(out) if out.ndim == 0 else out


def kakade_langford_bound(
    policy_adv: float, eps: float, alpha: Any, gamma: float
) -> Any:
    """Kakade-Langford lower bound on :math:`J(\\pi_\\alpha) - J(\\pi)` (Chapter 3, theorem ``thm-kakade-langford``).

    .. math::

        \\frac{\\alpha}{1-\\gamma}\\Bigl(\\mathbb A - \\frac{2\\alpha\\gamma\\varepsilon}{1 - \\gamma(1-\\alpha)}\\Bigr)

    ``alpha`` may be a scalar or an array of values in [0, 1]; the result has its shape.
    Raises ValueError for a ``gamma`` outside [0, 1), a negative or non-finite ``eps``,
    a non-finite ``policy_adv`` or an ``alpha`` outside [0, 1].
    """
    g = check_gamma(gamma)
    adv = _finite(policy_adv, "policy_adv")
    e = _finite(eps, "eps")
    if e < 0:
        raise ValueError(f"eps must be non-negative, got {eps!r}")
    a = _check_alpha_array(alpha)
    out = a / (1 - g) * (adv - 2 * a * g * e / (1 - g * (1 - a)))
    return float(out) if out.ndim == 0 else out


def cpi_step_size(policy_adv: float, eps: float, gamma: float) -> float:
    """Step size :math:`\\alpha^* = \\min\\bigl(1, (1-\\gamma)\\mathbb A / (4\\gamma\\varepsilon)\\bigr)` of conservative policy iteration.

    It maximises the simpler bound :math:`\\frac{\\alpha}{1-\\gamma}(\\mathbb A -
    \\frac{2\\alpha\\gamma\\varepsilon}{1-\\gamma})`, which lies below
    :func:`kakade_langford_bound` (Chapter 3, eq. ``cpi-alpha``). Returns 0 when the
    policy advantage is not positive and 1 when ``gamma == 0`` (the penalty vanishes).
    Raises ValueError for non-finite inputs, ``eps < 0``, ``policy_adv > eps``
    (impossible for a true pair) or ``gamma`` outside [0, 1).
    """
    adv, e = _check_adv_eps(policy_adv, eps)
    g = check_gamma(gamma)
    if adv <= 0:
        return 0.0
    if g == 0:
        return 1.0
    return float(min(1.0, (1 - g) * adv / (4 * g * e)))


def cpi_guaranteed_gain(policy_adv: float, eps: float, gamma: float) -> float:
    """Improvement guaranteed at :math:`\\alpha^*` (Chapter 3, eq. ``cpi-alpha``).

    With :math:`\\alpha^*` = :func:`cpi_step_size`,

    .. math::

        J(\\pi_{\\alpha^*}) - J(\\pi) \\ge
        \\begin{cases}
        \\mathbb A^2 / (8\\gamma\\varepsilon) & \\text{if } \\alpha^* < 1,\\\\
        \\bigl(\\mathbb A - 2\\gamma\\varepsilon/(1-\\gamma)\\bigr)/(1-\\gamma)
        \\;\\ge\\; \\mathbb A / (2(1-\\gamma)) & \\text{if } \\alpha^* = 1,
        \\end{cases}

    and 0 when :math:`\\mathbb A \\le 0`. The first case is *not* valid when the cap
    binds: for one state, two actions paying 0 and 1 and :math:`\\gamma = 0.1`, the
    true gain is 1/0.9 while :math:`\\mathbb A^2/(8\\gamma\\varepsilon) = 1.25`.
    """
    adv, e = _check_adv_eps(policy_adv, eps)
    g = check_gamma(gamma)
    alpha = cpi_step_size(adv, e, g)
    if alpha == 0.0:
        return 0.0
    if alpha < 1.0:
        return adv**2 / (8 * g * e)
    return (adv - 2 * g * e / (1 - g)) / (1 - g)


# ------------------------------------------------------------------ checks of the bound
@dataclass(frozen=True)
class BoundCase:
    """One exact instance of the Kakade-Langford bound: true gain and the bound's inputs.

    ``gain`` is :math:`J(\\pi_\\alpha) - J(\\pi)` computed by exact policy evaluation of
    the mixture; ``policy_adv``, ``eps`` are :math:`\\mathbb A_\\pi(\\pi')` and
    :math:`\\varepsilon`.
    """

    gain: float
    policy_adv: float
    eps: float
    alpha: float
    gamma: float

    def __post_init__(self) -> None:
        _finite(self.gain, "gain")
        _check_adv_eps(self.policy_adv, self.eps)
        check_unit_interval(self.alpha, "alpha")
        check_gamma(self.gamma)

    @property
    def penalty(self) -> float:
        """The bound's penalty term, :func:`kl_penalty`."""
        return kl_penalty(self.eps, self.alpha, self.gamma)

    @property
    def gap(self) -> float:
        """How far the true gain falls below the first-order term: :math:`\\alpha\\mathbb A/(1-\\gamma) - \\text{gain}`."""
        return self.alpha * self.policy_adv / (1 - self.gamma) - self.gain

    @property
    def ratio(self) -> float:
        """``gap / penalty``: at most 1 if the theorem holds; 1 means a tight bound."""
        pen = self.penalty
        return self.gap / pen if pen > 0 else 0.0


def bound_cases(mdp: TabularMDP, pi: Any, pi_new: Any, alphas: Any) -> list[BoundCase]:
    """Exact :class:`BoundCase` of the mixture of ``pi`` and ``pi_new`` at each alpha.

    The gain comes from solving the Bellman equation of each mixture; the bound's inputs
    from :func:`policy_advantage` and :func:`advantage_gap`: no shared code path with
    the bound itself.
    """
    pi = check_policy(mdp, pi)
    pi_new = check_policy(mdp, pi_new)
    a = np.atleast_1d(_check_alpha_array(alphas))
    J0 = expected_return(mdp, pi)
    adv, eps = policy_advantage(mdp, pi, pi_new), advantage_gap(mdp, pi, pi_new)
    eps = max(eps, adv)  # rounding only: adv <= eps holds exactly
    return [
        BoundCase(
            expected_return(mdp, mixture(pi, pi_new, x)) - J0,
            adv,
            eps,
            float(x),
            mdp.gamma,
        )
        for x in a
    ]


def bound_violations(
    bound: Callable[..., Any], cases: Sequence[BoundCase], tol: float = 1e-10
) -> int:
    """Number of cases with ``alpha > 0`` where the true gain is below ``bound``.

    ``bound(policy_adv, eps, alpha, gamma)`` is a candidate lower bound on
    :math:`J(\\pi_\\alpha) - J(\\pi)` (e.g. :func:`kakade_langford_bound`); a case is a
    violation when ``gain < bound - tol * (1 + |bound|)``. Cases with ``alpha == 0``
    are skipped: both sides are 0 there, whatever the constant.
    """
    tol = _finite(tol, "tol")
    count = 0
    for c in cases:
        if c.alpha == 0:
            continue
        b = float(bound(c.policy_adv, c.eps, c.alpha, c.gamma))
        if c.gain < b - tol * (1 + abs(b)):
            count += 1
    return count


def bound_equality_error(
    bound: Callable[..., Any], cases: Sequence[BoundCase]
) -> float:
    """Largest :math:`|\\text{gain} - \\text{bound}| / (1 + |\\text{gain}|)` over ``cases``.

    The two-sided companion of :func:`bound_violations`: on cases where the theorem is
    an equality (:func:`tight_case`), a candidate ``bound(policy_adv, eps, alpha,
    gamma)`` that is too *low* (a doubled penalty, :math:`\\alpha` in place of
    :math:`\\alpha^2`) is as wrong as one that is too high, and only this error (not a
    count of violations) sees it. Returns 0.0 for no cases.
    """
    err = 0.0
    for c in cases:
        b = float(bound(c.policy_adv, c.eps, c.alpha, c.gamma))
        err = max(err, abs(c.gain - b) / (1 + abs(c.gain)))
    return err


def coupling_series_gap(term: Callable[[Any, Any, Any], Any]) -> Any:
    """SymPy difference between a summed series and the proof's closed form.

    ``term(t, alpha, gamma)`` is a SymPy expression in the integer symbol
    :math:`t \\ge 0`; it is summed by ``sympy.summation`` from :math:`t = 0` to
    :math:`\\infty` (each geometric series keeps its convergent branch, valid since
    :math:`0 \\le \\gamma(1-\\alpha) \\le \\gamma < 1`) and compared with
    :math:`\\alpha\\gamma/((1-\\gamma)(1-\\gamma(1-\\alpha)))`, the value of
    :math:`\\sum_t \\gamma^t(1 - (1-\\alpha)^t)` in the proof of the Kakade-Langford
    bound (Chapter 3). Returns the simplified difference: 0 for the right series.
    Symbols are positive ``alpha``, ``gamma`` and a non-negative integer ``t``.
    """
    import sympy as sp

    al, g = sp.symbols("alpha gamma", positive=True)
    t = sp.Symbol("t", integer=True, nonnegative=True)
    series = sp.summation(sp.sympify(term(t, al, g)), (t, 0, sp.oo))
    series = series.replace(
        lambda e: isinstance(e, sp.Piecewise), lambda e: e.args[0].expr
    )
    return sp.simplify(series - al * g / ((1 - g) * (1 - g * (1 - al))))


def step_violations(
    step_size: Callable[[float, float, float], float],
    bound: Callable[..., Any],
    cases: Sequence[tuple[TabularMDP, Any, Any]],
    tol: float = 1e-10,
) -> int:
    """Number of cases where a CPI step fails: not a mixture, or below its guarantees.

    For each ``(mdp, pi, pi_new)``, with :math:`\\mathbb A` = :func:`policy_advantage`
    and :math:`\\varepsilon` = :func:`advantage_gap`, the step is ``alpha =
    step_size(policy_adv, eps, gamma)``. A case counts as a violation when ``alpha``
    lies outside [0, 1] (the "mixture" is then not a policy: an uncapped step), or when
    the exact gain :math:`J(\\pi_\\alpha) - J(\\pi)` falls below ``bound(policy_adv,
    eps, alpha, gamma)`` (e.g. :func:`kakade_langford_bound`) or below the guarantee
    :func:`cpi_guaranteed_gain` of eq. ``cpi-alpha``, each by more than ``tol * (1 +
    |value|)``. A too-low ``bound`` (a lower bound that is valid but looser) is not
    rejected here: :func:`bound_equality_error` is the two-sided check.
    """
    tol = _finite(tol, "tol")
    count = 0
    for mdp, pi, pi_new in cases:
        pi = check_policy(mdp, pi)
        pi_new = check_policy(mdp, pi_new)
        adv = policy_advantage(mdp, pi, pi_new)
        eps = max(advantage_gap(mdp, pi, pi_new), adv)
        alpha = float(step_size(adv, eps, mdp.gamma))
        if not 0.0 <= alpha <= 1.0:
            count += 1
            continue
        gain = expected_return(mdp, mixture(pi, pi_new, alpha)) - expected_return(
            mdp, pi
        )
        b = float(bound(adv, eps, alpha, mdp.gamma))
        guarantee = cpi_guaranteed_gain(adv, eps, mdp.gamma)
        if gain < b - tol * (1 + abs(b)) or gain < guarantee - tol * (
            1 + abs(guarantee)
        ):
            count += 1
    return count


def tight_case(
    gamma: float = 0.9, eps: float = 1.0
) -> tuple[TabularMDP, np.ndarray, np.ndarray]:
    """A two-state MDP where the Kakade-Langford bound is an equality for every alpha.

    State 0 (the start) and state 1. In state 0, action 0 stays (reward 0) and action 1
    moves to state 1 for reward ``eps``; state 1 is absorbing, action 0 pays 0 and
    action 1 pays ``-eps``. With :math:`\\pi` = always action 0 and :math:`\\pi'` =
    always action 1, :math:`f(0) = \\varepsilon`, :math:`f(1) = -\\varepsilon`,
    :math:`\\mathbb A = \\varepsilon`, and every step of :math:`\\pi_\\alpha` away from
    the start moves mass from :math:`f = +\\varepsilon` to :math:`f = -\\varepsilon` for
    good: both inequalities of the proof (the coupling and :math:`|f| \\le
    \\varepsilon`) are equalities.
    """
    g = check_gamma(gamma)
    e = _finite(eps, "eps")
    if e <= 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, 0, 1] = P[1, 1, 1] = 1.0
    R = np.array([[0.0, e], [0.0, -e]])
    pi = np.array([[1.0, 0.0], [1.0, 0.0]])
    return TabularMDP(P, R, g, np.array([1.0, 0.0])), pi, pi[:, ::-1].copy()


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _case_from_params(theta: np.ndarray, S: int, A: int) -> BoundCase:
    sizes = [S * A * S, S * A, S * A, S * A, S, 1, 1]
    parts = np.split(theta, np.cumsum(sizes)[:-1])
    P = _softmax(parts[0].reshape(S, A, S))
    R = np.tanh(parts[1].reshape(S, A))
    pi, pi_new = _softmax(parts[2].reshape(S, A)), _softmax(parts[3].reshape(S, A))
    mu = _softmax(parts[4])
    gamma = 0.05 + 0.94 * float(expit(parts[5][0]))
    alpha = 0.02 + 0.98 * float(expit(parts[6][0]))
    return bound_cases(TabularMDP(P, R, gamma, mu), pi, pi_new, [alpha])[0]


def worst_case_ratio(
    n_states: int = 2,
    n_actions: int = 2,
    n_starts: int = 6,
    seed: int = 0,
    maxiter: int = 150,
    min_penalty: float = 1e-8,
) -> tuple[float, BoundCase]:
    """Largest ``gap / penalty`` (:attr:`BoundCase.ratio`) found by a worst-case search.

    Maximises over transitions, rewards, both policies, the start distribution,
    :math:`\\gamma \\in [0.05, 0.99]` and :math:`\\alpha \\in [0.02, 1]` (all through
    smooth reparametrisations) with L-BFGS-B from ``n_starts`` random starts. A ratio
    above 1 would refute the theorem; a ratio near 1 says the constant 2 of the penalty
    cannot be lowered; a ratio above 1/2 already refutes the bound with half the
    penalty. Returns the best ratio and its case.

    A case whose penalty is below ``min_penalty`` scores 0: with rewards in [-1, 1] its gap
    and penalty are both of the size of the rounding error of exact policy evaluation
    (about 1e-13), and their ratio is a ratio of rounding errors. Without this floor the
    search can drive :math:`\\pi'` to :math:`\\pi` and report such a ratio (1.67, on an AMD
    EPYC CPU, for ``n_starts=2, maxiter=60, seed=0``), which refutes nothing.
    """
    from scipy.optimize import minimize

    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    n_starts = check_positive_int(n_starts, "n_starts")
    maxiter = check_positive_int(maxiter, "maxiter")
    floor = _finite(min_penalty, "min_penalty")
    if floor < 0:
        raise ValueError(f"min_penalty must be non-negative, got {min_penalty!r}")
    dim = S * A * S + 3 * S * A + S + 2
    rng = np.random.default_rng(seed)

    def score(case: BoundCase) -> float:
        return case.ratio if case.penalty >= floor else 0.0

    def objective(theta: np.ndarray) -> float:
        return -score(_case_from_params(theta, S, A))

    best_val, best_case = -np.inf, None
    for _ in range(n_starts):
        x0 = rng.normal(scale=2.0, size=dim)
        res = minimize(objective, x0, method="L-BFGS-B", options={"maxiter": maxiter})
        case = _case_from_params(res.x, S, A)
        value = score(case)
        if value > best_val:
            best_val, best_case = value, case
    assert best_case is not None
    return float(best_val), best_case


def coupling_distances(
    mdp: TabularMDP, pi: Any, pi_new: Any, alpha: float, horizon: int
) -> np.ndarray:
    """Exact :math:`\\|P_{\\pi_\\alpha}(s_t) - P_\\pi(s_t)\\|_1` for ``t = 0 .. horizon``.

    The state distributions are :math:`\\mu^\\top P_\\pi^t` and :math:`\\mu^\\top
    P_{\\pi_\\alpha}^t`, computed by repeated matrix products (no sampling, no coupling
    argument).
    """
    pi = check_policy(mdp, pi)
    mix = mixture(pi, check_policy(mdp, pi_new), alpha)
    T = check_positive_int(horizon, "horizon")
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    P_mix = np.einsum("sa,sat->st", mix, mdp.P)
    p, q, out = mdp.mu.copy(), mdp.mu.copy(), []
    for _ in range(T + 1):
        out.append(np.abs(q - p).sum())
        p, q = p @ P_pi, q @ P_mix
    return np.array(out)


def coupling_violations(
    bound: Callable[[float, np.ndarray], Any],
    cases: Sequence[tuple[TabularMDP, Any, Any, float]],
    horizon: int = 30,
    tol: float = 1e-12,
) -> int:
    """Number of (case, t) where the exact distance exceeds ``bound(alpha, t)``.

    Each case is ``(mdp, pi, pi_new, alpha)``; ``bound(alpha, t)`` is a candidate upper
    bound on :func:`coupling_distances` at time ``t`` (the proof's
    :math:`2(1 - (1-\\alpha)^t)`), evaluated on the array ``t = 0 .. horizon``.
    """
    t = np.arange(check_positive_int(horizon, "horizon") + 1)
    count = 0
    for mdp, pi, pi_new, alpha in cases:
        dist = coupling_distances(mdp, pi, pi_new, alpha, horizon)
        b = np.broadcast_to(np.asarray(bound(alpha, t), dtype=np.float64), dist.shape)
        count += int(np.sum(dist > b + tol))
    return count


# ------------------------------------------------------------ the guarantee at alpha*
def one_state_counterexample(
    gamma: float = 0.1,
) -> tuple[TabularMDP, np.ndarray, np.ndarray]:
    """One state, actions paying 0 and 1; :math:`\\pi` takes the first, :math:`\\pi'` the second.

    Here :math:`\\mathbb A = \\varepsilon = 1` and the mixture's gain is exactly
    :math:`\\alpha/(1-\\gamma)`. For :math:`\\gamma \\le 1/5` the cap
    :math:`\\alpha^* = 1` binds (:math:`(1-\\gamma)/(4\\gamma) \\ge 1`), and for
    :math:`\\gamma < 1/9` the true gain :math:`1/(1-\\gamma)` is moreover below
    :math:`\\mathbb A^2/(8\\gamma\\varepsilon) = 1/(8\\gamma)` (the two are equal at
    :math:`\\gamma = 1/9`; for :math:`1/9 < \\gamma \\le 1/5` the cap binds but
    :math:`1/(8\\gamma)` stays below the gain).
    """
    g = check_gamma(gamma)
    m = TabularMDP(np.ones((1, 2, 1)), np.array([[0.0, 1.0]]), g, np.array([1.0]))
    return m, np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])


def guarantee_violations(
    guarantee: Callable[[float, float, float], float],
    cases: Sequence[tuple[TabularMDP, Any, Any]],
    tol: float = 1e-10,
) -> int:
    """Number of cases where the exact gain at :math:`\\alpha^*` is below ``guarantee``.

    Each case is ``(mdp, pi, pi_new)``. The step is :math:`\\alpha^*` =
    :func:`cpi_step_size`, the gain :math:`J(\\pi_{\\alpha^*}) - J(\\pi)` is computed by
    exact policy evaluation, and ``guarantee(policy_adv, eps, gamma)`` is a candidate
    lower bound on it (e.g. :func:`cpi_guaranteed_gain`).
    """
    count = 0
    for mdp, pi, pi_new in cases:
        adv, eps = policy_advantage(mdp, pi, pi_new), advantage_gap(mdp, pi, pi_new)
        eps = max(eps, adv)
        alpha = cpi_step_size(adv, eps, mdp.gamma)
        gain = expected_return(mdp, mixture(pi, pi_new, alpha)) - expected_return(
            mdp, pi
        )
        g = float(guarantee(adv, eps, mdp.gamma))
        if gain < g - tol * (1 + abs(g)):
            count += 1
    return count


# ---------------------------------------------------------- coverage at a fixed point
def concentrability(mdp: TabularMDP, pi_star: Any, restart: Any) -> float:
    """:math:`C = \\|d_{\\pi^*} / \\mu\\|_\\infty`, the coverage factor of Kakade and Langford.

    :math:`d_{\\pi^*}` is the normalised discounted visitation of ``pi_star`` from the
    MDP's own start distribution; ``restart`` is the distribution :math:`\\mu` that CPI
    uses to compute advantages. Infinite when :math:`\\mu` misses a state that
    :math:`\\pi^*` visits.
    """
    mu = check_distribution(restart, "restart", shape=(mdp.n_states,))
    d_star = (1 - mdp.gamma) * visitation(mdp, pi_star)
    if np.any((mu == 0) & (d_star > 0)):
        return float("inf")
    pos = mu > 0
    return float(np.max(d_star[pos] / mu[pos]))


def suboptimality_bound(
    policy_adv: float, concentrability_factor: float, gamma: float
) -> float:
    """Upper bound :math:`C\\,\\mathbb A_{\\pi,\\mu} / (1-\\gamma)^2` on :math:`J(\\pi^*) - J(\\pi)`.

    Chapter 3, eq. ``cpi-coverage``.

    ``policy_adv`` is the greedy policy's policy advantage :math:`\\mathbb
    A_{\\pi,\\mu}` under the restart distribution :math:`\\mu`,
    ``concentrability_factor`` is :math:`C` of :func:`concentrability` (``inf``
    allowed), and :math:`J` uses the MDP's own start distribution. With :math:`C =
    \\infty` the bound is vacuous (``inf``), even at a fixed point where :math:`\\mathbb
    A_{\\pi,\\mu} = 0`.
    """
    adv = _finite(policy_adv, "policy_adv")
    if adv < 0:
        raise ValueError(
            f"policy_adv of the greedy policy is never negative, got {policy_adv!r}"
        )
    try:
        C = float(concentrability_factor)
    except (TypeError, ValueError):
        raise ValueError(
            f"concentrability_factor must be a number, got {concentrability_factor!r}"
        ) from None
    if np.isnan(C) or C < 0:
        raise ValueError(
            "concentrability_factor must be non-negative, "
            f"got {concentrability_factor!r}"
        )
    g = check_gamma(gamma)
    if np.isinf(C):
        return float("inf")
    return C * adv / (1 - g) ** 2


def coverage_violations(
    bound: Callable[[float, float, float], float],
    mdp: TabularMDP,
    policies: Sequence[Any],
    restart: Any,
    tol: float = 1e-10,
) -> int:
    """Number of ``policies`` whose suboptimality exceeds ``bound(policy_adv, C, gamma)``.

    For each policy :math:`\\pi`: :math:`J(\\pi^*) - J(\\pi)` from exact policy
    iteration and evaluation (MDP's start distribution), :math:`\\mathbb A_{\\pi,\\mu}`
    of the greedy policy under ``restart``, and :math:`C` = :func:`concentrability`.
    ``bound`` is a candidate upper bound, e.g. :func:`suboptimality_bound`.
    """
    from companion.mdp import policy_iteration

    mu = check_distribution(restart, "restart", shape=(mdp.n_states,))
    m_mu = TabularMDP(mdp.P, mdp.R, mdp.gamma, mu)
    pi_star, V_star = policy_iteration(mdp)
    J_star = float(mdp.mu @ V_star)
    C = concentrability(mdp, pi_star, mu)
    count = 0
    for pi in policies:
        pi = check_policy(mdp, pi)
        adv = max(
            policy_advantage(m_mu, pi, greedy_policy(advantage_function(m_mu, pi))), 0.0
        )
        b = float(bound(adv, C, mdp.gamma))
        if J_star - expected_return(mdp, pi) > b + tol * (1 + abs(J_star)):
            count += 1
    return count


@dataclass
class CPIHistory:
    """Per-iteration record of :func:`conservative_policy_iteration`."""

    J: list[float] = field(default_factory=list)
    alpha: list[float] = field(default_factory=list)
    policy_advantage: list[float] = field(default_factory=list)
    bound: list[float] = field(default_factory=list)


def conservative_policy_iteration(
    mdp: TabularMDP,
    pi0: Any | None = None,
    n_iters: int = 1000,
    tol: float = 1e-8,
    restart: Any | None = None,
) -> tuple[np.ndarray, CPIHistory]:
    """Conservative policy iteration with exact advantages.

    Each iteration: take the greedy policy :math:`\\pi' = \\arg\\max_a A_\\pi(s, a)`,
    its policy advantage :math:`\\mathbb A` and :math:`\\varepsilon`; stop if
    :math:`\\mathbb A \\le` ``tol``; otherwise move to :math:`(1-\\alpha)\\pi +
    \\alpha\\pi'` with :func:`cpi_step_size`, which guarantees :math:`J` increases by at
    least the Kakade-Langford bound.

    ``restart`` is the distribution :math:`\\mu` from which visitations, policy
    advantages and the recorded ``J`` are computed (default: the MDP's own start
    distribution); Kakade and Langford take it exploratory, so that it covers the states
    an optimal policy visits. Returns the final policy and a :class:`CPIHistory` (``J``
    has one more entry than the other lists).
    """
    n_iters = check_positive_int(n_iters, "n_iters")
    tol = _finite(tol, "tol")
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol!r}")
    if restart is not None:
        mu = check_distribution(restart, "restart", shape=(mdp.n_states,))
        mdp = TabularMDP(mdp.P, mdp.R, mdp.gamma, mu)
    pi = (
        uniform_policy(mdp)
        if pi0 is None
        else check_distribution(pi0, "pi0", shape=(mdp.n_states, mdp.n_actions))
    )
    history = CPIHistory(J=[expected_return(mdp, pi)])
    for _ in range(n_iters):
        pi_new = greedy_policy(advantage_function(mdp, pi))
        adv = policy_advantage(mdp, pi, pi_new)
        if adv <= tol:
            break
        eps = max(advantage_gap(mdp, pi, pi_new), adv)  # adv <= eps up to rounding
        alpha = cpi_step_size(adv, eps, mdp.gamma)
        pi = mixture(pi, pi_new, alpha)
        history.alpha.append(alpha)
        history.policy_advantage.append(adv)
        history.bound.append(kakade_langford_bound(adv, eps, alpha, mdp.gamma))
        history.J.append(expected_return(mdp, pi))
    return pi, history
