"""Checkers for Chapter 4 (TRPO).

Answers are compared with the reference to a tolerance of ``RTOL`` = 1e-5 relative to the
answer's scale (:func:`companion.exercises._common.tolerance`), as the exercises state:
an iterative conjugate gradient that stops once its residual is tiny, or a float32
answer, passes. Failure messages name the entry and the size of the error, never the
reference value.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from companion.exercises._common import (
    _call,
    _compare,
    _fail,
    _passed,
)


def check_conjugate_gradient(cg: Callable[..., Any]) -> bool:
    """Check ``cg(Avp, b, n_iters)`` on SPD systems: exact after ``n`` iterations, and each product counted."""
    rng = np.random.default_rng(41)
    for n in (1, 4, 12):
        M_ = rng.normal(size=(n, n))
        A = M_ @ M_.T + n * np.eye(n)
        b = rng.normal(size=n)
        calls = []

        def Avp(v: np.ndarray) -> np.ndarray:
            calls.append(1)
            return A @ v

        got = _call(cg, "cg", Avp, b.copy(), n)
        _compare(
            got,
            np.linalg.solve(A, b),
            "your x",
            ["entry"],
            f"for a {n}x{n} system after {n} iterations",
        )
        if len(calls) > n + 1:
            _fail(
                f"cg called Avp {len(calls)} times for n_iters={n}; conjugate gradient needs one product per iteration."
            )
    A = np.diag([1.0, 10.0, 100.0])
    got = _call(cg, "cg", lambda v: A @ v, np.ones(3), 1)
    # after one iteration from 0, CG is one exact line search along b: x = (b.b / b.A.b) b
    _compare(
        got,
        np.ones(3) * 3 / 111,
        "your x",
        ["entry"],
        "after a single iteration on diag(1, 10, 100)",
    )
    return _passed(
        "cg solves SPD systems exactly in n iterations, one matrix-vector product each."
    )


def check_fisher_vector_product(fvp: Callable[..., Any]) -> bool:
    """Check ``fvp(W, X, v)`` for a linear softmax policy against the explicit Fisher matrix."""
    import torch

    gen = torch.Generator().manual_seed(42)
    for n, d, A in [(1, 2, 2), (16, 3, 4)]:
        W = torch.randn(A, d, generator=gen, dtype=torch.float64)
        X = torch.randn(n, d, generator=gen, dtype=torch.float64)
        v = torch.randn(A * d, generator=gen, dtype=torch.float64)
        probs = torch.softmax(X @ W.T, -1)
        fisher = torch.zeros(A * d, A * d, dtype=torch.float64)
        for i in range(n):  # score of action a w.r.t. W: (e_a - pi) outer x
            for a in range(A):
                score = torch.outer(
                    torch.eye(A, dtype=torch.float64)[a] - probs[i], X[i]
                ).reshape(-1)
                fisher += probs[i, a] * torch.outer(score, score) / n
        got = _call(fvp, "fvp", W.clone(), X.clone(), v.clone())
        if not isinstance(got, torch.Tensor):
            _fail(f"fvp must return a torch tensor, got {type(got).__name__}.")
        _compare(
            got.detach().numpy(),
            (fisher @ v).numpy(),
            "your F v",
            ["entry"],
            f"for n={n}, d={d}, A={A}",
        )
    return _passed(
        "fvp equals the explicit Fisher matrix times v, without forming the matrix."
    )
