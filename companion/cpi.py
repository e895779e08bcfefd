"""Approximate policy iteration with mixture policies (Chapter 3, ``book/03_cpi.md``; Kakade & Langford 2002).

Notation: :math:`\\rho_\\pi` is the unnormalised discounted visitation
(:func:`companion.mdp.visitation`, summing to :math:`1/(1-\\gamma)`) and
:math:`d_\\pi = (1-\\gamma)\\rho_\\pi` the normalised one. All advantages are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion._validate import check_distribution, check_gamma, check_positive_int, check_unit_interval
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
    "kakade_langford_bound",
    "cpi_step_size",
    "CPIHistory",
    "conservative_policy_iteration",
]


def mixture(pi: Any, pi_new: Any, alpha: float) -> np.ndarray:
    """The mixture policy :math:`\\pi_\\alpha = (1 - \\alpha)\\pi + \\alpha \\pi'` (Chapter 3, eq. ``mixture``).

    Both policies must be row-stochastic arrays of the same shape and ``alpha`` must lie in
    [0, 1]; the result is then row-stochastic too.
    """
    p = check_distribution(pi, "pi")
    q = check_distribution(pi_new, "pi_new")
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"pi and pi_new must be (S, A) arrays of the same shape, got {p.shape} and {q.shape}")
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

    Equal to :math:`J(\\pi) + \\mathbb A_\\pi(\\tilde\\pi)/(1-\\gamma)`; it uses the visitation of the
    *old* policy, which is what makes it computable from old samples, and it agrees with
    :math:`J(\\tilde\\pi)` to first order at :math:`\\tilde\\pi = \\pi` (Chapter 3, eq. ``surrogate``).
    """
    pi_old = check_policy(mdp, pi_old)
    pi_new = check_policy(mdp, pi_new)
    rho = visitation(mdp, pi_old)
    return expected_return(mdp, pi_old) + float(rho @ (pi_new * advantage_function(mdp, pi_old)).sum(axis=1))


def advantage_gap(mdp: TabularMDP, pi: Any, pi_new: Any) -> float:
    """:math:`\\varepsilon = \\max_s |\\mathbb E_{a \\sim \\pi'(\\cdot|s)}[A_\\pi(s, a)]|`, the constant of the Kakade-Langford bound."""
    pi = check_policy(mdp, pi)
    pi_new = check_policy(mdp, pi_new)
    return float(np.abs((pi_new * advantage_function(mdp, pi)).sum(axis=1)).max())


def kakade_langford_bound(policy_adv: float, eps: float, alpha: Any, gamma: float) -> Any:
    """Kakade-Langford lower bound on :math:`J(\\pi_\\alpha) - J(\\pi)` (Chapter 3, theorem ``thm-kakade-langford``).

    .. math::

        \\frac{\\alpha}{1-\\gamma}\\Bigl(\\mathbb A - \\frac{2\\alpha\\gamma\\varepsilon}{1 - \\gamma(1-\\alpha)}\\Bigr)

    ``alpha`` may be a scalar or an array of values in [0, 1]; the result has its shape.
    """
    g = check_gamma(gamma)
    if not np.isfinite(policy_adv):
        raise ValueError(f"policy_adv must be finite, got {policy_adv!r}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite non-negative number, got {eps!r}")
    a = np.asarray(alpha, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any((a < 0) | (a > 1)):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    out = a / (1 - g) * (policy_adv - 2 * a * g * eps / (1 - g * (1 - a)))
    return float(out) if out.ndim == 0 else out


def cpi_step_size(policy_adv: float, eps: float, gamma: float) -> float:
    """Step size :math:`\\alpha^* = \\min\\bigl(1, (1-\\gamma)\\mathbb A / (4\\gamma\\varepsilon)\\bigr)` of conservative policy iteration.

    It maximises the simpler bound :math:`\\frac{\\alpha}{1-\\gamma}(\\mathbb A - \\frac{2\\alpha\\gamma\\varepsilon}{1-\\gamma})`,
    which lies below :func:`kakade_langford_bound`, and guarantees an improvement of at
    least :math:`\\mathbb A^2 / (8\\gamma\\varepsilon)` when :math:`\\alpha^* < 1` (Chapter 3,
    eq. ``cpi-alpha``). Returns 0 when the policy advantage is not positive.
    """
    if policy_adv <= 0:
        return 0.0
    if gamma == 0 or eps == 0:
        return 1.0
    return float(min(1.0, (1 - gamma) * policy_adv / (4 * gamma * eps)))


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
) -> tuple[np.ndarray, CPIHistory]:
    """Conservative policy iteration with exact advantages.

    Each iteration: take the greedy policy :math:`\\pi' = \\arg\\max_a A_\\pi(s, a)`, its policy
    advantage :math:`\\mathbb A` and :math:`\\varepsilon`; stop if :math:`\\mathbb A \\le` ``tol``;
    otherwise move to :math:`(1-\\alpha)\\pi + \\alpha\\pi'` with :func:`cpi_step_size`, which
    guarantees :math:`J` increases by at least the Kakade-Langford bound. Returns the final
    policy and a :class:`CPIHistory` (``J`` has one more entry than the other lists).
    """
    n_iters = check_positive_int(n_iters, "n_iters")
    pi = uniform_policy(mdp) if pi0 is None else check_policy(mdp, pi0)
    history = CPIHistory(J=[expected_return(mdp, pi)])
    for _ in range(n_iters):
        pi_new = greedy_policy(advantage_function(mdp, pi))
        adv = policy_advantage(mdp, pi, pi_new)
        if adv <= tol:
            break
        eps = advantage_gap(mdp, pi, pi_new)
        alpha = cpi_step_size(adv, eps, mdp.gamma)
        pi = mixture(pi, pi_new, alpha)
        history.alpha.append(alpha)
        history.policy_advantage.append(adv)
        history.bound.append(kakade_langford_bound(adv, eps, alpha, mdp.gamma))
        history.J.append(expected_return(mdp, pi))
    return pi, history
