"""Checkers for Chapter 2 (Policy gradient).

Numerical answers are compared with a tolerance relative to the answer's scale
(``_common.RTOL`` = 1e-5, see :func:`companion.exercises._common.tolerance`), so a
float32 answer passes; symbolic answers are compared exactly with SymPy. Messages say
which entry or component is off and give only a coarse size of the error (relative to
the reference's size), never the expected value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import (
    _call,
    _compare,
    _fail,
    _passed,
    _size_bucket,
)


def check_reward_to_go(reward_to_go: Callable[..., Any]) -> bool:
    """Check ``reward_to_go(rewards, gamma) -> R`` with :math:`R_t = \\sum_{j \\ge t} \\gamma^{j-t} r_j`.

    Tolerance: 1e-5 relative to the largest entry of the answer.
    """
    from companion.pg import reward_to_go as reference

    rng = np.random.default_rng(11)
    cases = [
        (np.array([1.0, 1.0, 1.0]), 1.0, "for rewards [1, 1, 1] with gamma=1"),
        (np.array([0.0, 0.0, 1.0]), 0.5, "for rewards [0, 0, 1] with gamma=0.5"),
        (
            np.array([1.0, 0.0, 0.0, 2.0]),
            0.9,
            "for rewards [1, 0, 0, 2] with gamma=0.9",
        ),
        (rng.normal(size=50), 0.97, "for 50 random rewards with gamma=0.97"),
        (np.array([2.0]), 0.9, "for a single reward"),
    ]
    for rewards, gamma, context in cases:
        got = _call(reward_to_go, "reward_to_go", rewards.copy(), gamma)
        _compare(got, reference(rewards, gamma), "your reward-to-go", ["t"], context)
    return _passed(
        "reward_to_go is right, including discounting and length-1 trajectories."
    )


def _reader_expression(expr: Any, name: str, symbols: dict[str, Any]) -> Any:
    """The reader's expression with its symbols replaced, by name, by the checker's."""
    import sympy as sp

    try:
        expr = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as exc:
        _fail(f"the {name} component is not a SymPy expression ({exc}).")
    if not isinstance(expr, sp.Expr):
        _fail(
            f"the {name} component must be a SymPy expression, got {type(expr).__name__}."
        )
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in symbols)
    if unknown:
        _fail(
            f"the {name} component uses the symbol(s) {', '.join(unknown)}; "
            f"write it in terms of {', '.join(symbols)} only."
        )
    # the reader may have made their own symbols (with other assumptions): match by name
    return expr.subs({s: symbols[s.name] for s in expr.free_symbols}, simultaneous=True)


def check_gaussian_score(gaussian_score: Callable[..., Any]) -> bool:
    """Check ``gaussian_score(a, mu, sigma) -> (d/dmu, d/dsigma)`` of :math:`\\log \\mathcal N(a; \\mu, \\sigma^2)`.

    Exact (SymPy): each component must equal the derivative of the log-density; the
    reader may build the expressions from the symbols passed in or from their own
    symbols named ``a``, ``mu``, ``sigma``. A failure names the component and a coarse
    size of its error at one point, relative to the derivative there
    (``_common._size_bucket``). The zero-mean integral printed on success demonstrates
    the lemma; it is not a check.
    """
    import sympy as sp

    a, mu = sp.symbols("a mu", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    symbols = {"a": a, "mu": mu, "sigma": sigma}
    got = _call(gaussian_score, "gaussian_score", a, mu, sigma)
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        _fail("gaussian_score must return a pair (d log p / d mu, d log p / d sigma).")
    log_p = -((a - mu) ** 2) / (2 * sigma**2) - sp.log(sigma) - sp.log(2 * sp.pi) / 2
    exprs = []
    for name, expr, var in [("d/dmu", got[0], mu), ("d/dsigma", got[1], sigma)]:
        expr = _reader_expression(expr, name, symbols)
        reference = sp.diff(log_p, var)
        diff = sp.simplify(expr - reference)
        if diff != 0:
            # points where both reference components are non-zero, so that the size of
            # the error can be given relative to the reference (never the error itself:
            # for an answer of 0 it would be the reference)
            points = [
                {a: 1, mu: 0, sigma: 2},
                {a: 2, mu: 0, sigma: 1},
                {a: 3, mu: 1, sigma: 3},
            ]
            for point in points:
                err = abs(float(diff.subs(point)))
                if err > 0:
                    where = ", ".join(f"{k}={v}" for k, v in point.items())
                    size = _size_bucket(err / abs(float(reference.subs(point))))
                    _fail(
                        f"the {name} component is not the derivative of log p: at "
                        f"{where} it is off by {size} of the derivative's size."
                    )
            _fail(f"the {name} component differs from the derivative of log p.")
        exprs.append(expr)
    # A demonstration of the zero-mean score lemma, not a further check: once both
    # components equal the reference, their integrals are zero.
    density = sp.exp(log_p)
    means = [
        sp.simplify(sp.integrate(expr * density, (a, -sp.oo, sp.oo))) for expr in exprs
    ]
    return _passed(
        "both components of the Gaussian score are right. As the zero-mean score "
        f"lemma says, each integrates to {means[0]} and {means[1]} against p."
    )


def check_action_baseline_estimator(estimator: Callable[..., Any]) -> bool:
    """Check ``estimator(theta, states, actions, rewards, b) -> (S, A)``: reward-to-go minus ``b[s_t, a_t]``.

    Tolerance: 1e-5 relative to the largest entry of the answer.
    """
    from companion.pg import reinforce_gradient

    rng = np.random.default_rng(5)
    for T, S, A in [(1, 2, 2), (6, 3, 2), (20, 4, 3)]:
        theta = rng.normal(size=(S, A))
        states, actions = rng.integers(S, size=T), rng.integers(A, size=T)
        rewards, b = rng.normal(size=T), rng.normal(size=(S, A))
        got = _call(
            estimator,
            "estimator",
            theta.copy(),
            states.copy(),
            actions.copy(),
            rewards.copy(),
            b.copy(),
        )
        expected = reinforce_gradient(
            theta, states, actions, rewards, gamma=1.0, baseline=b[states, actions]
        )
        _compare(
            got,
            expected,
            "your estimate",
            ["state", "action"],
            f"on a random trajectory of length {T}",
        )
    return _passed(
        "the action-dependent-baseline estimator is implemented as specified."
    )
