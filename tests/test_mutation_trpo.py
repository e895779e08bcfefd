"""Tests of ``companion.trpo`` that kill mutants the other tests let survive (tests/MUTATION.md).

The analysis functions of Chapter 4, the policy class and ``train_trpo``: each test names
what it pins down; MUTATION.md lists the mutants each session's tests were written for.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from companion import trpo
from companion.mdp import TabularMDP


# ---------------------------------------------------------------- _fast_ratio against empirical_constant
@pytest.mark.parametrize("form", ["tv", "kl"])
@pytest.mark.parametrize("S, A", [(2, 2), (3, 2), (2, 3)])
def test_fast_ratio_matches_the_exact_functions(form, S, A):
    rng = np.random.default_rng(S * 10 + A)
    n = S * A * S + 3 * S * A + S
    positive = 0
    for gamma in (0.5, 0.9):
        for _ in range(8):
            z = 2.0 * rng.normal(size=n)
            P, R, mu, old, new = trpo._unpack_case(z, S, A)
            case = (TabularMDP(P, R, gamma, mu), old, new)
            fast = trpo._fast_ratio(z, S, A, gamma, form)
            exact = trpo.empirical_constant([case], form)
            assert max(fast, 0.0) == pytest.approx(exact, rel=1e-7, abs=1e-12)
            positive += fast > 0
    assert positive >= 3  # the comparison is not only 0 == 0


@pytest.mark.parametrize("form", ["tv", "kl"])
def test_fast_ratio_is_zero_for_identical_policies(form):
    S, A = 2, 2
    z = np.random.default_rng(0).normal(size=S * A * S + 3 * S * A + S) * 3.0
    z[-S * A :] = z[-2 * S * A : -S * A]  # new = old
    assert trpo._fast_ratio(z, S, A, 0.9, form) == 0.0


def test_fast_ratio_is_zero_without_advantages():
    S, A = 2, 2
    z = np.random.default_rng(1).normal(size=S * A * S + 3 * S * A + S)
    z[S * A * S : S * A * S + S * A] = 1.0  # constant reward: every advantage is 0
    assert trpo._fast_ratio(z, S, A, 0.9, "tv") == 0.0


# ---------------------------------------------------------------- worst_case_search
def test_worst_case_search_defaults_and_reproducibility():
    a = trpo.worst_case_search(0.9, max_evals=40)
    b = trpo.worst_case_search(
        0.9, n_states=2, n_actions=2, form="tv", n_starts=4, seed=0, max_evals=40
    )
    assert len(a) == 4
    for (m1, o1, n1), (m2, o2, n2) in zip(a, b):
        assert m1.P.shape == (2, 2, 2) and o1.shape == (2, 2)
        np.testing.assert_array_equal(m1.P, m2.P)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(n1, n2)
        # every case is a valid MDP and pair of policies
        np.testing.assert_allclose(m1.P.sum(-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(o1.sum(-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(n1.sum(-1), 1.0, atol=1e-12)
        np.testing.assert_allclose(m1.mu.sum(), 1.0, atol=1e-12)
        assert m1.gamma == 0.9


def test_worst_case_search_full_default_budget():
    a = trpo.worst_case_search(0.9, n_starts=1)
    b = trpo.worst_case_search(0.9, n_starts=1, max_evals=3000)
    c = trpo.worst_case_search(0.9, n_starts=1, max_evals=100)
    np.testing.assert_array_equal(a[0][1], b[0][1])
    np.testing.assert_array_equal(a[0][2], b[0][2])
    # a larger budget finds a tighter case than a small one
    assert trpo.empirical_constant(a) > trpo.empirical_constant(c)


def test_worst_case_search_kl_form_runs():
    cases = trpo.worst_case_search(0.8, n_starts=1, form="kl", max_evals=30)
    assert len(cases) == 1
    assert trpo.empirical_constant(cases, "kl") >= 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(gamma=0.0),
            r"^gamma must be positive \(the bound is trivial at gamma = 0\)$",
        ),
        (dict(gamma=0.9, n_states=0), r"^n_states must be a positive integer"),
        (dict(gamma=0.9, n_actions=0), r"^n_actions must be a positive integer"),
        (dict(gamma=0.9, n_actions=1), r"^n_actions must be at least 2, got 1$"),
        (dict(gamma=0.9, form="KL"), r"^form must be 'tv' or 'kl', got 'KL'$"),
        (dict(gamma=0.9, n_starts=0), r"^n_starts must be a positive integer"),
        (dict(gamma=0.9, max_evals=0), r"^max_evals must be a positive integer"),
    ],
)
def test_worst_case_search_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        trpo.worst_case_search(**kwargs)


# ---------------------------------------------------------------- disagreement_series
def test_disagreement_series_is_the_sum():
    for gamma, alpha, n in [
        (0.5, 0.3, 7),
        (0.9, 1.0, 50),
        (0.0, 0.5, 5),
        (0.7, 0.0, 5),
    ]:
        ref = sum(gamma**t * (1 - (1 - alpha) ** t) for t in range(n))
        assert float(trpo.disagreement_series(gamma, alpha, n)) == pytest.approx(
            ref, rel=1e-13, abs=1e-15
        )
    out = trpo.disagreement_series([0.5, 0.9], 0.2, 30)
    assert out.shape == (2,)
    assert out[1] == pytest.approx(sum(0.9**t * (1 - 0.8**t) for t in range(30)))
    out2 = trpo.disagreement_series(0.5, [0.2, 0.4], 30)
    assert out2.shape == (2,)
    assert out2[1] == pytest.approx(sum(0.5**t * (1 - 0.6**t) for t in range(30)))
    # the default number of terms sums the series to its closed form
    assert float(trpo.disagreement_series(0.9, 0.1)) == pytest.approx(
        1 / 0.1 - 1 / (1 - 0.9 * 0.9), rel=1e-12
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.nan, 0.5), r"^gamma must lie in \[0, 1\)"),
        ((1.0, 0.5), r"^gamma must lie in \[0, 1\)"),
        ((-0.1, 0.5), r"^gamma must lie in \[0, 1\)"),
        ((0.5, np.nan), r"^alpha must lie in \[0, 1\]"),
        ((0.5, 1.1), r"^alpha must lie in \[0, 1\]"),
        ((0.5, -0.1), r"^alpha must lie in \[0, 1\]"),
        ((0.5, 0.5, 0), r"^n_terms must be a positive integer"),
    ],
)
def test_disagreement_series_messages(args, message):
    with pytest.raises(ValueError, match=message):
        trpo.disagreement_series(*args)


def test_series_bound_violations_counts():
    def bound(g, a):
        return a * g / (1 - g) ** 2

    assert trpo.series_bound_violations(bound, [0.5, 0.9], [0.1, 0.5]) == 0
    # half of the true sum is exceeded wherever the sum is positive
    assert (
        trpo.series_bound_violations(
            lambda g, a: 0.5 * trpo.disagreement_series(g, a),
            [0.0, 0.5, 0.9],
            [0.0, 0.3],
        )
        == 2
    )
    with pytest.raises(
        ValueError, match=r"^gammas must be at most 0\.999, got 0\.9995$"
    ):
        trpo.series_bound_violations(bound, [0.5, 0.9995], [0.1])


# ---------------------------------------------------------------- cg_solve_error
def spd(n, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(n, n))
    return M @ M.T + n * np.eye(n), rng.normal(size=n)


def test_cg_solve_error_numpy_and_torch_with_grad():
    A, b = spd(12)
    assert trpo.cg_solve_error(A, b) < 1e-10
    At = torch.tensor(A, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    assert trpo.cg_solve_error(At, bt) < 1e-10


def test_cg_solve_error_is_relative():
    A, b = spd(5, seed=1)
    assert trpo.cg_solve_error(
        A, b, cg_fn=lambda Avp, b_, n: np.zeros_like(b_)
    ) == pytest.approx(1.0)
    exact = np.linalg.solve(A, b)
    got = trpo.cg_solve_error(A, b, cg_fn=lambda Avp, b_, n: 1.5 * exact)
    assert got == pytest.approx(0.5)
    # the default solver is run for len(b) iterations, far below its default stopping tolerance
    seen = []

    def spy(Avp, b_, n):
        seen.append(n)
        return trpo.conjugate_gradient(Avp, b_, n, tol=1e-30)

    trpo.cg_solve_error(A, b, cg_fn=spy)
    assert seen == [5]


def test_cg_solve_error_default_solver_uses_len_b_iterations_and_tiny_tolerance():
    # a 30 x 30 system with condition number 10 and a small right-hand side: 10 iterations
    # (the default of conjugate_gradient) or the default tolerance 1e-10 on the squared
    # residual leave a visible error
    rng = np.random.default_rng(3)
    Q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    A = Q @ np.diag(np.logspace(0, 1, 30)) @ Q.T
    b = 1e-5 * rng.normal(size=30)
    err = trpo.cg_solve_error(A, b)
    x10 = trpo.conjugate_gradient(lambda v: A @ v, b, 10, tol=1e-30)
    x_tol = trpo.conjugate_gradient(lambda v: A @ v, b, 30)
    exact = np.linalg.solve(A, b)
    rel = lambda x: np.linalg.norm(x - exact) / np.linalg.norm(exact)  # noqa: E731
    assert err < 1e-10
    assert rel(x10) > 100 * err and rel(x_tol) > 100 * err


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda A, b: trpo.cg_solve_error(A, b[:, None]),
            r"^b must be a 1-D vector, got shape \(4, 1\)$",
        ),
        (
            lambda A, b: trpo.cg_solve_error(A, list(b)),
            r"^b must be a 1-D vector, got shape None$",
        ),
        (
            lambda A, b: trpo.cg_solve_error(A[:, :3], b),
            r"^A must be a square matrix matching b, got shape \(4, 3\)$",
        ),
        (
            lambda A, b: trpo.cg_solve_error(A.tolist(), b),
            r"^A must be a square matrix matching b, got shape None$",
        ),
        (
            lambda A, b: trpo.cg_solve_error(A, b, cg_fn=1),
            r"^cg_fn and Avp must be functions$",
        ),
        (
            lambda A, b: trpo.cg_solve_error(A, b, Avp=1),
            r"^cg_fn and Avp must be functions$",
        ),
    ],
)
def test_cg_solve_error_messages(call, message):
    A, b = spd(4)
    with pytest.raises(ValueError, match=message):
        call(A, b)


# ---------------------------------------------------------------- distances and Pinsker
def test_kl_divergence_values_and_messages():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    q = np.array([[0.25, 0.25, 0.5], [0.5, 0.0, 0.5]])
    kl = trpo.kl_divergence(p, q)
    assert kl[0] == pytest.approx(np.log(2.0))
    assert kl[1] == np.inf
    with np.errstate(
        all="raise"
    ):  # the 0 log 0 and log 0 of the rows are handled silently
        trpo.kl_divergence(p, q)
    with pytest.raises(ValueError, match=r"^q must have shape \(2, 3\), got \(3,\)$"):
        trpo.kl_divergence(p, q[0])
    with pytest.raises(ValueError, match=r"^q must sum to 1"):
        trpo.kl_divergence(p, q * 2)
    with pytest.raises(ValueError, match=r"^p must sum to 1"):
        trpo.tv_distance(p * 2, q)


def test_pinsker_violations_counts_rows_strictly_above():
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]])
    q = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    tv = 0.5 * np.abs(p - q).sum(1)
    kl = (p * np.log(p / q)).sum(1)
    assert trpo.pinsker_violations(p, q) == 0
    # with the constant set to tv^2 / kl of row 0 exactly, row 0 is not counted (strict >, tol 0)
    c0 = tv[0] ** 2 / kl[0]
    assert trpo.pinsker_violations(p, q, constant=c0 * (1 - 1e-9), tol=0.0) == int(
        np.sum(tv**2 > c0 * (1 - 1e-9) * kl)
    )
    assert (
        trpo.pinsker_violations(p, q, constant=0.0, tol=0.0) == 2
    )  # identical rows: 0 > 0 is false
    assert trpo.pinsker_violations(p, q, constant=0.0, tol=tv[0] ** 2) == 1
    with pytest.raises(
        ValueError, match=r"^tol must be a finite non-negative number, got -1\.0$"
    ):
        trpo.pinsker_violations(p, q, tol=-1.0)
    with pytest.raises(ValueError, match=r"^constant must be a number, got 'a'$"):
        trpo.pinsker_violations(p, q, constant="a")
    # the default constant is 1/2: a pair with tv^2 between kl/2 and 0.6 kl tells
    assert trpo.pinsker_violations(p, q) == trpo.pinsker_violations(p, q, constant=0.5)


# ---------------------------------------------------------------- two_state_case
def test_two_state_case_policies():
    m, old, new = trpo.two_state_case(0.9, 0.2, alpha_bad=0.1, p=0.3)
    np.testing.assert_allclose(old, [[0.7, 0.3], [0.5, 0.5]])
    np.testing.assert_allclose(new, [[0.5, 0.5], [0.4, 0.6]])
    np.testing.assert_allclose(m.R, [[0.0, 1.0], [1.0, -1.0]])
    assert trpo.two_state_case(0.9, 0.7, alpha_bad=0.1, p=0.3)[2][
        0, 1
    ] == pytest.approx(1.0)  # alpha = 1 - p is allowed
    assert trpo.two_state_case(0.9, 0.2, alpha_bad=0.0)[2][1, 1] == 0.5
    assert trpo.two_state_case(0.9, 0.2, alpha_bad=0.5)[2][1, 1] == 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(p=1.0), r"^p must lie in \[0, 1\), got 1\.0$"),
        (dict(p=np.nan), r"^p must lie in \[0, 1\)"),
        (dict(alpha=0.75, p=0.3), r"^alpha must lie in \(0, 1 - p\], got 0\.75$"),
        (dict(alpha=1.5), r"^alpha must lie in \(0, 1 - p\]"),
        (dict(alpha_bad=0.6), r"^alpha_bad must lie in \[0, 0\.5\], got 0\.6$"),
        (dict(alpha_bad=-0.1), r"^alpha_bad must lie in \[0, 0\.5\]"),
        # the default alpha_bad is alpha: the message says which value was checked
        (dict(alpha=0.7), r"^alpha_bad must lie in \[0, 0\.5\], got the default alpha = 0\.7$"),
    ],
)
def test_two_state_case_messages(kwargs, message):
    args = dict(gamma=0.9, alpha=0.2) | kwargs
    with pytest.raises(ValueError, match=message):
        trpo.two_state_case(**args)


# ---------------------------------------------------------------- importance_sampled_gain
def test_importance_sampled_gain_matches_a_direct_sampler():
    from companion import mdp as M

    m = M.random_mdp(3, 3, gamma=0.8, seed=2)
    old, new, q = (M.random_policy(3, 3, seed=s) for s in (3, 4, 5))
    n, seed = 200, 9
    mean, se = trpo.importance_sampled_gain(m, old, new, q, n, seed=seed)
    rho = M.visitation(m, old)
    Q = M.q_function(m, old)
    rng = np.random.default_rng(seed)
    s = rng.choice(3, size=n, p=rho / rho.sum())
    u = rng.random(n)
    a = np.array(
        [
            min(int(np.searchsorted(np.cumsum(q[si]), ui, side="left")), 2)
            for si, ui in zip(s, u)
        ]
    )
    x = new[s, a] / q[s, a] * Q[s, a] / (1 - m.gamma)
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert se == pytest.approx(x.std() / np.sqrt(n), rel=1e-12)
    assert trpo.importance_sampled_gain(
        m, old, new, q, n
    ) == trpo.importance_sampled_gain(m, old, new, q, n, seed=0)
    x1 = Q[s, a] / (1 - m.gamma)
    assert trpo.importance_sampled_gain(m, old, new, q, n, seed=seed, use_ratio=False)[
        0
    ] == pytest.approx(x1.mean(), rel=1e-12)
    with pytest.raises(ValueError, match=r"^n_samples must be a positive integer"):
        trpo.importance_sampled_gain(m, old, new, q, 0)


# ---------------------------------------------------------------- exact_trpo_step against an independent optimiser
def _independent_step(m, old, max_kl=None, constant=4.0):
    """The same problem solved by SLSQP over softmax logits, from many starts."""
    from scipy.optimize import minimize

    from companion.cpi import surrogate

    S, A = old.shape
    C = trpo.penalty_coefficient(m, old, constant)

    def pol(th):
        z = th.reshape(S, A)
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def kl_max(p):
        return float(np.max(np.sum(old * (np.log(old) - np.log(p)), axis=1)))

    th0 = np.log(old).ravel()
    if max_kl is None:
        res = minimize(
            lambda th: -(surrogate(m, old, pol(th)) - C * kl_max(pol(th))),
            th0,
            method="Nelder-Mead",
            options={"xatol": 1e-12, "fatol": 1e-15, "maxfev": 40000},
        )
    else:
        cons = [
            {
                "type": "ineq",
                "fun": lambda th, s=s: (
                    max_kl - np.sum(old[s] * (np.log(old[s]) - np.log(pol(th)[s])))
                ),
            }
            for s in range(S)
        ]
        res = minimize(
            lambda th: -surrogate(m, old, pol(th)),
            th0,
            method="SLSQP",
            constraints=cons,
            options={"ftol": 1e-14, "maxiter": 1000},
        )
    return pol(res.x)


def _objective(m, old, new, max_kl=None, constant=4.0):
    from companion.cpi import surrogate

    if max_kl is None:
        C = trpo.penalty_coefficient(m, old, constant)
        return surrogate(m, old, new) - C * float(np.max(trpo.kl_divergence(old, new)))
    return surrogate(m, old, new)


@pytest.mark.parametrize("max_kl", [0.05])
def test_exact_trpo_step_is_optimal(max_kl):
    """Against SLSQP. Measured: trust-constr stops with every state's KL 0.1-0.5 % below
    max_kl and the surrogate 1.3e-4 (relative) below SLSQP's optimum; the tolerances
    here are those of that accuracy (see tests/MUTATION.md)."""
    from companion import mdp as M

    m = M.random_mdp(3, 2, gamma=0.7, seed=4)
    old = M.random_policy(3, 2, seed=5)
    new = trpo.exact_trpo_step(m, old, max_kl=max_kl)
    ref = _independent_step(m, old, max_kl=max_kl)
    got, best = _objective(m, old, new, max_kl), _objective(m, old, ref, max_kl)
    scale = abs(_objective(m, old, old, max_kl)) + 1e-12
    assert best - 1e-3 * scale <= got <= best + 1e-9 * scale
    assert float(np.max(trpo.kl_divergence(old, new))) == pytest.approx(
        max_kl, rel=1e-2
    )  # the constraint is active
    np.testing.assert_allclose(new, ref, atol=1e-3)


def test_exact_trpo_step_default_constant_and_messages():
    from companion import mdp as M

    m = M.random_mdp(3, 2, gamma=0.7, seed=4)
    old = M.random_policy(3, 2, seed=5)
    np.testing.assert_array_equal(
        trpo.exact_trpo_step(m, old), trpo.exact_trpo_step(m, old, constant=4.0)
    )
    assert not np.allclose(
        trpo.exact_trpo_step(m, old, constant=1.0),
        trpo.exact_trpo_step(m, old, constant=4.0),
    )
    bad = old.copy()
    bad[0] = [1.0, 0.0]
    with pytest.raises(
        ValueError,
        match=r"^pi_old must put positive probability on every action \(softmax parameters\)$",
    ):
        trpo.exact_trpo_step(m, bad)
    with pytest.raises(
        ValueError, match=r"^max_kl must be None or a finite positive number, got 0\.0$"
    ):
        trpo.exact_trpo_step(m, old, max_kl=0.0)
    flat = TabularMDP(m.P, np.zeros((3, 2)), 0.7, m.mu)  # every advantage is 0
    with pytest.raises(
        ValueError,
        match=r"^the penalty coefficient is 0 \(no advantage\): nothing to trade off$",
    ):
        trpo.exact_trpo_step(flat, old)


# ---------------------------------------------------------------- full_step, quadratic_kl_error, line search
def test_full_step_values_and_messages():
    F = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = np.array([1.0, -2.0])
    s = trpo.full_step(x, F @ x, 0.01)
    assert 0.5 * s @ F @ s == pytest.approx(0.01)
    np.testing.assert_allclose(s, np.sqrt(0.02 / (x @ F @ x)) * x)
    with pytest.raises(
        ValueError,
        match=r"^x and Fx must be 1-D vectors of the same shape, got \(2,\) and \(3,\)$",
    ):
        trpo.full_step(x, np.ones(3), 0.01)
    with pytest.raises(
        ValueError,
        match=r"^x and Fx must be 1-D vectors of the same shape, got \(2,\) and None$",
    ):
        trpo.full_step(x, [1.0, 2.0], 0.01)
    with pytest.raises(
        ValueError,
        match=r"^x and Fx must be 1-D vectors of the same shape, got \(1, 2\) and \(2,\)$",
    ):
        trpo.full_step(x[None], F @ x, 0.01)
    with pytest.raises(ValueError, match=r"^x\^T F x must be positive"):
        trpo.full_step(np.zeros(2), np.zeros(2), 0.01)


def test_quadratic_kl_error_values_and_messages():
    F = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = [1, -2]  # integers are fine
    assert trpo.quadratic_kl_error(trpo.full_step, F, x, 0.01) < 1e-12
    half = trpo.quadratic_kl_error(
        lambda x_, Fx, d: np.sqrt(d / (x_ @ Fx)) * x_, F, x, 0.01
    )
    assert half == pytest.approx(0.5)
    with pytest.raises(
        ValueError,
        match=r"^F must be square and x a matching vector, got \(2, 3\) and \(2,\)$",
    ):
        trpo.quadratic_kl_error(trpo.full_step, np.ones((2, 3)), x, 0.01)
    with pytest.raises(
        ValueError,
        match=r"^F must be square and x a matching vector, got \(2, 2\) and \(3,\)$",
    ):
        trpo.quadratic_kl_error(trpo.full_step, F, [1, 2, 3], 0.01)
    with pytest.raises(
        ValueError,
        match=r"^F must be square and x a matching vector, got \(2,\) and \(2,\)$",
    ):
        trpo.quadratic_kl_error(trpo.full_step, np.ones(2), x, 0.01)


def test_backtracking_line_search_edges():
    obj = lambda v: -float((v - 1.0) ** 2)  # noqa: E731
    con = lambda v: float(abs(v))  # noqa: E731
    # the full step is accepted when the constraint holds with equality
    assert trpo.backtracking_line_search(obj, con, 0.0, 1.5, max_constraint=1.5) == (
        1.5,
        1.0,
    )
    # too long: halved once
    assert trpo.backtracking_line_search(obj, con, 0.0, 1.5, max_constraint=1.0) == (
        0.75,
        0.5,
    )
    # max_constraint 0 is allowed (nothing moves away from 0)
    assert trpo.backtracking_line_search(obj, con, 0.0, 2.0, max_constraint=0.0) == (
        0.0,
        0.0,
    )
    # the default is 10 tries: 2 * 0.5^9 is tried, 2 * 0.5^10 is not
    tiny = lambda v: float(abs(v)) * 0  # noqa: E731
    tried = []
    trpo.backtracking_line_search(
        lambda v: tried.append(v) or -1.0, tiny, 0.0, 2.0, max_constraint=1.0
    )
    assert len(tried) == 1 + 10
    with pytest.raises(ValueError, match=r"^shrink must lie in \(0, 1\), got 0$"):
        trpo.backtracking_line_search(obj, con, 0.0, 2.0, 1.0, shrink=0)
    with pytest.raises(ValueError, match=r"^shrink must lie in \(0, 1\), got 1$"):
        trpo.backtracking_line_search(obj, con, 0.0, 2.0, 1.0, shrink=1)
    with pytest.raises(ValueError, match=r"^max_backtracks must be a positive integer"):
        trpo.backtracking_line_search(obj, con, 0.0, 2.0, 1.0, max_backtracks=0)
    with pytest.raises(
        ValueError, match=r"^objective and constraint must be functions of x$"
    ):
        trpo.backtracking_line_search(obj, None, 0.0, 2.0, 1.0)


# ---------------------------------------------------------------- counting functions on hand-made cases
def test_empirical_constant_kl_form_and_skipped_cases():
    from companion.cpi import surrogate
    from companion.mdp import expected_return

    m, old, new = trpo.near_tight_case(0.5, 0.2)
    # form "kl": the ratio uses max KL, not TV^2
    unit = trpo.penalty_coefficient(m, old, constant=1.0) * float(
        np.max(trpo.kl_divergence(old, new))
    )
    ref = (surrogate(m, old, new) - expected_return(m, new)) / unit
    assert trpo.empirical_constant([(m, old, new)], "kl") == pytest.approx(ref)
    assert trpo.empirical_constant([(m, old, new)], "tv") == pytest.approx(
        4 * (1 - 0.5) ** 2
    )
    # a case with pi_new = pi_old has no divergence: skipped, not a division by zero
    assert trpo.empirical_constant([(m, old, old)]) == 0.0
    with pytest.raises(ValueError, match=r"^form must be 'tv' or 'kl', got 'KL'$"):
        trpo.empirical_constant([(m, old, new)], "KL")
    with pytest.raises(
        ValueError,
        match=r"^cases must contain at least one \(mdp, pi_old, pi_new\) triple$",
    ):
        trpo.empirical_constant([])


def test_near_tight_case_bounds_on_alpha():
    m, old, new = trpo.near_tight_case(0.5, 0.5)  # alpha = 0.5 is allowed
    np.testing.assert_allclose(new[0], [1.0, 0.0])
    np.testing.assert_allclose(m.R, [[0, 0], [1, -1], [1, -1], [0, 0]])
    with pytest.raises(ValueError, match=r"^alpha must lie in \(0, 0\.5\], got 0\.6$"):
        trpo.near_tight_case(0.5, 0.6)


def test_bad_mean_advantage_states_is_relative_to_the_advantage_scale():
    m, old, new = trpo.near_tight_case(0.5, 0.2)
    abar = trpo.mean_advantage(m, old, new)
    # state 1 (mean advantage -0.4) is bad; state 2 (+0.4) is not; state 3 has zero advantage
    assert abar[1] == pytest.approx(-0.4) and abar[2] == pytest.approx(0.4)
    assert trpo.bad_mean_advantage_states(m, old, new) == 1
    # scaled rewards scale the advantages: a tolerance relative to max|A| gives the same count
    m10 = TabularMDP(m.P, 1e-3 * m.R, m.gamma, m.mu)
    assert trpo.bad_mean_advantage_states(m10, old, new, tol=0.3) == 1
    assert trpo.bad_mean_advantage_states(m10, old, new, tol=0.5) == 0
    with pytest.raises(ValueError, match=r"^tol must be a finite non-negative number"):
        trpo.bad_mean_advantage_states(m, old, new, tol=-1)


def test_bound_violations_counts_strictly():
    from companion.mdp import expected_return

    m, old, new = trpo.near_tight_case(0.5, 0.2)
    J = expected_return(m, new)
    assert (
        trpo.bound_violations(lambda *c: J, [(m, old, new)], tol=0.0) == 0
    )  # equality is no violation
    assert trpo.bound_violations(lambda *c: J + 1e-6, [(m, old, new)], tol=0.0) == 1
    assert trpo.bound_violations(lambda *c: J + 1e-6, [(m, old, new)], tol=1e-5) == 0
    with pytest.raises(
        ValueError,
        match=r"^bound_fn must be a function \(mdp, pi_old, pi_new\) -> float$",
    ):
        trpo.bound_violations(None, [(m, old, new)])
    with pytest.raises(ValueError, match=r"^tol must be a finite non-negative number"):
        trpo.bound_violations(lambda *c: J, [(m, old, new)], tol=-1.0)
    with pytest.raises(
        ValueError, match=r"^cases\[0\] must be an \(mdp, pi_old, pi_new\) triple$"
    ):
        trpo.bound_violations(lambda *c: J, [(m, old)])


def test_mean_advantage_violations_factor():
    m, old, new = trpo.near_tight_case(0.5, 0.2)
    # max |Abar| = 0.4 = 2 * alpha * eps with alpha = 0.2, eps = 1: the factor 2 is tight
    assert trpo.mean_advantage_violations(2.0, [(m, old, new)]) == 0
    assert trpo.mean_advantage_violations(1.99, [(m, old, new)]) == 1
    with pytest.raises(
        ValueError, match=r"^factor must be a finite non-negative number"
    ):
        trpo.mean_advantage_violations(-1.0, [(m, old, new)])


def test_pinsker_default_tol_is_tiny():
    p = np.array([[0.5, 0.5]])
    assert trpo.pinsker_violations(p, p, constant=0.0) == 0
    q = np.array([[0.5 + 1e-7, 0.5 - 1e-7]])
    # tv^2 = 1e-14 is below the default tol 1e-12 when the constant is 0
    assert trpo.pinsker_violations(p, q, constant=0.0) == 0
    assert trpo.pinsker_violations(p, q, constant=0.0, tol=0.0) == 1


def test_module_getattr_message():
    with pytest.raises(AttributeError, match=r"^module 'companion\.trpo' has no attribute 'no_such_name'$"):
        trpo.no_such_name  # noqa: B018


# ------------------------------------------------------------------------ TRPOConfig
def test_trpo_config_defaults():
    c = trpo.TRPOConfig()
    want = dict(
        env_id="CartPole-v1", num_envs=8, n_steps=256, n_updates=60, total_timesteps=None,
        max_kl=0.01, gamma=0.99, gae_lambda=0.97, normalize_advantage=True, cg_iters=10,
        damping=0.1, line_search_shrink=0.5, line_search_max_iter=10, vf_lr=1e-3,
        adam_eps=1e-8, vf_epochs=5, vf_minibatches=8, vf_batch_size=None, hidden=(64, 64),
        ortho_init=False, log_std_init=0.0, device="cpu",
    )
    assert {k: getattr(c, k) for k in want} == want
    assert c.updates == 60


def test_trpo_config_accepts_the_edges():
    trpo.TRPOConfig(gae_lambda=0.0, damping=0.0, gamma=0.0, log_std_init=-3.0)
    trpo.TRPOConfig(gae_lambda=1.0, line_search_shrink=0.999, hidden=(1,))
    trpo.TRPOConfig(num_envs=2, n_steps=3, vf_minibatches=6, vf_batch_size=6)
    # a batch of 2 has a standard deviation
    trpo.TRPOConfig(num_envs=1, n_steps=2, vf_minibatches=2)
    trpo.TRPOConfig(num_envs=1, n_steps=1, vf_minibatches=1, normalize_advantage=False)
    trpo.TRPOConfig(total_timesteps=1, vf_batch_size=1, max_kl=1e-12, vf_lr=1e-12, adam_eps=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"env_id": ""}, r"^env_id must be a non-empty string, got ''$"),
        ({"env_id": 3}, r"^env_id must be a non-empty string"),
        *[({name: 0}, rf"^{name} must") for name in (
            "num_envs", "n_steps", "n_updates", "cg_iters", "line_search_max_iter",
            "vf_epochs", "vf_minibatches", "total_timesteps", "vf_batch_size")],
        *[({name: v}, rf"^{name} must be a finite positive number, got {v!r}$")
          for name in ("max_kl", "vf_lr", "adam_eps") for v in (0.0, -1.0, float("inf"), "1")],
        ({"gamma": 1.0}, r"^gamma "),
        ({"gae_lambda": -0.1}, r"^gae_lambda must lie in \[0, 1\], got -0\.1$"),
        ({"gae_lambda": 1.1}, r"^gae_lambda must lie in \[0, 1\]"),
        ({"gae_lambda": "0.9"}, r"^gae_lambda must lie in \[0, 1\]"),
        ({"damping": -0.1}, r"^damping must be a finite non-negative number, got -0\.1$"),
        ({"damping": float("nan")}, r"^damping must be a finite non-negative number"),
        ({"damping": None}, r"^damping must be"),
        ({"line_search_shrink": 0.0}, r"^line_search_shrink must lie in \(0, 1\), got 0\.0$"),
        ({"line_search_shrink": 1.0}, r"^line_search_shrink must lie in \(0, 1\)"),
        ({"line_search_shrink": "0.5"}, r"^line_search_shrink must lie in \(0, 1\)"),
        ({"normalize_advantage": 1}, r"^normalize_advantage must be True or False, got 1$"),
        ({"ortho_init": None}, r"^ortho_init must be True or False, got None$"),
        ({"log_std_init": float("nan")}, r"^log_std_init must be a finite number, got nan$"),
        ({"log_std_init": "0"}, r"^log_std_init must be a finite number"),
        ({"hidden": ()}, r"^hidden must be a non-empty tuple of layer widths, got \(\)$"),
        ({"hidden": [64]}, r"^hidden must be a non-empty tuple"),
        ({"hidden": (64, 0)}, r"^hidden must"),
        ({"num_envs": 2, "n_steps": 3, "vf_minibatches": 7},
         r"^vf_minibatches must be at most num_envs \* n_steps = 6, got 7$"),
        ({"num_envs": 2, "n_steps": 3, "vf_minibatches": 6, "vf_batch_size": 7},
         r"^vf_batch_size must be at most num_envs \* n_steps = 6, got 7$"),
        ({"num_envs": 1, "n_steps": 1},
         r"^normalize_advantage needs num_envs \* n_steps >= 2 \(a standard deviation\)$"),
        ({"device": ""}, r"^device must be a torch device name, got ''$"),
        ({"device": None}, r"^device must be a torch device name"),
    ],
)
def test_trpo_config_messages(kwargs, message):
    if kwargs.get("num_envs") == 1:
        kwargs = {**kwargs, "vf_minibatches": 1}
    with pytest.raises(ValueError, match=message):
        trpo.TRPOConfig(**kwargs)


@pytest.mark.parametrize("total, updates", [(1, 1), (2048, 1), (2049, 2), (4096, 2)])
def test_trpo_config_updates_from_a_budget(total, updates):
    c = trpo.TRPOConfig(total_timesteps=total)  # batch 8 * 256 = 2048
    assert c.updates == updates


# ------------------------------------------------------------------ the policy class
def _assert_orthogonal(weight, gain, atol):
    """``weight`` is ``gain`` times a (semi-)orthogonal matrix: its small Gram matrix is gain^2 I."""
    W = weight.detach().double()
    small = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
    assert torch.allclose(small, gain**2 * torch.eye(small.shape[0], dtype=W.dtype), atol=atol)


@pytest.mark.parametrize("space", ["discrete", "box"])
def test_trpo_policy_orthogonal_initialisation(space):
    import gymnasium as gym

    action_space = (gym.spaces.Discrete(3) if space == "discrete"
                    else gym.spaces.Box(-2.0, 2.0, shape=(3,), dtype=np.float32))
    torch.manual_seed(0)
    config = trpo.TRPOConfig(ortho_init=True, hidden=(16, 8), log_std_init=-0.5)
    pol = trpo.make_trpo_policy(5, action_space, config)
    linears = [m for m in pol.net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(16, 5), (8, 16), (3, 8)]
    for m, gain in zip(linears, [np.sqrt(2), np.sqrt(2), 0.01]):
        _assert_orthogonal(m.weight, gain, atol=1e-5 * gain**2)
        assert torch.count_nonzero(m.bias) == 0
    if space == "box":
        assert torch.equal(pol.log_std.detach(), torch.full((3,), -0.5))
        assert torch.equal(pol.low, torch.full((3,), -2.0)) and torch.equal(pol.high, torch.full((3,), 2.0))
    # PyTorch's default initialisation otherwise: biases are not zero
    plain = trpo.make_trpo_policy(5, action_space, trpo.TRPOConfig(hidden=(16, 8)))
    assert all(torch.count_nonzero(m.bias) > 0 for m in plain.net if isinstance(m, torch.nn.Linear))


def test_train_trpo_defaults_seed_0_and_a_progress_bar(monkeypatch):
    import companion.progress

    shown, real = [], companion.progress.tqdm

    def spy(*args, **kwargs):
        shown.append((kwargs.pop("disable", None), kwargs.get("desc")))
        return real(*args, disable=True, **kwargs)  # silent in the test log

    monkeypatch.setattr(companion.progress, "tqdm", spy)
    config = trpo.TRPOConfig(n_updates=2, n_steps=16, num_envs=2, vf_minibatches=2, hidden=(4,))
    *_, default = trpo.train_trpo(config)
    *_, zero = trpo.train_trpo(config, seed=0, progress=False)
    *_, one = trpo.train_trpo(config, seed=1, progress=False)
    assert shown == [(False, "TRPO"), (True, "TRPO"), (True, "TRPO")]  # shown by default, hidden on request
    assert default.surrogate_gain == zero.surrogate_gain != one.surrogate_gain


def test_train_trpo_messages():
    with pytest.raises(ValueError, match=r"^config must be a TRPOConfig, got str$"):
        trpo.train_trpo("CartPole-v1")
    config = trpo.TRPOConfig(n_updates=1, n_steps=8, num_envs=2, vf_minibatches=2, hidden=(4,))
    for seed in ("3", 1.5, -1, True):
        with pytest.raises(ValueError, match=r"^seed must be a non-negative integer"):
            trpo.train_trpo(config, seed=seed, progress=False)
    for name in ("callback", "wrap_env", "on_rollout"):
        with pytest.raises(ValueError, match=rf"^{name} must be a function or None$"):
            trpo.train_trpo(config, progress=False, **{name: 3})


def test_train_trpo_value_net_orthogonal_initialisation():
    # vf_lr 1e-12: the value network's fit leaves its initial weights as they were (to 1e-9)
    config = trpo.TRPOConfig(n_updates=1, n_steps=8, num_envs=2, vf_minibatches=2,
                             hidden=(8,), ortho_init=True, vf_lr=1e-12)
    _, value_net, _ = trpo.train_trpo(config, seed=0, progress=False)
    linears = [m for m in value_net if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(8, 4), (1, 8)]
    for m, gain in zip(linears, [np.sqrt(2), 1.0]):
        _assert_orthogonal(m.weight, gain, atol=1e-6)
        assert m.bias.abs().max() < 1e-9
    assert value_net(torch.zeros(3, 4)).shape == (3, 1)


def test_trpo_policy_greedy():
    import gymnasium as gym

    config = trpo.TRPOConfig(hidden=(4,))
    box = gym.spaces.Box(np.array([-1.0, 0.0], dtype=np.float32), np.array([1.0, 2.0], dtype=np.float32))
    pol = trpo.make_trpo_policy(3, box, config)
    with torch.no_grad():
        pol.net[-1].bias.copy_(torch.tensor([-5.0, 5.0]))
        pol.net[-1].weight.zero_()
    assert torch.equal(pol.greedy(torch.zeros(2, 3)), torch.tensor([[-1.0, 2.0]] * 2))  # both bounds
    with torch.no_grad():
        pol.net[-1].bias.copy_(torch.tensor([5.0, -5.0]))
    assert torch.equal(pol.greedy(torch.zeros(2, 3)), torch.tensor([[1.0, 0.0]] * 2))
    cat = trpo.make_trpo_policy(3, gym.spaces.Discrete(3), config)
    with torch.no_grad():
        cat.net[-1].weight.zero_()
        cat.net[-1].bias.copy_(torch.tensor([0.0, 2.0, 1.0]))
    assert int(cat.greedy(torch.zeros(3))) == 1  # one observation, no batch axis
    assert torch.equal(cat.greedy(torch.zeros(2, 3)), torch.tensor([1, 1]))


def test_trpo_policy_bounds_are_float32_for_a_float64_box():
    # the networks are float32, so the bounds are too: greedy actions stay float32 when
    # the Box is float64 (clamping by float64 bounds would promote them to float64)
    import gymnasium as gym

    box = gym.spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.0]), dtype=np.float64)
    pol = trpo.make_trpo_policy(3, box, trpo.TRPOConfig(hidden=(4,)))
    assert pol.low.dtype == pol.high.dtype == torch.float32
    assert torch.equal(pol.low, torch.tensor([-1.0, 0.0])) and torch.equal(pol.high, torch.tensor([1.0, 2.0]))
    assert pol.greedy(torch.zeros(2, 3)).dtype == torch.float32


def test_trpo_policy_gaussian_sample_is_mean_plus_std_times_the_generators_noise():
    # a Gaussian action is mean + sigma * z with z drawn from the generator passed in (not
    # the global one), and its log-probability is the diagonal Gaussian's, summed over axes
    import gymnasium as gym

    box = gym.spaces.Box(-2.0, 2.0, shape=(3,), dtype=np.float32)
    pol = trpo.make_trpo_policy(5, box, trpo.TRPOConfig(hidden=(4,), log_std_init=-0.7))
    obs = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    a, logp = pol.sample(obs, torch.Generator().manual_seed(7))
    with torch.no_grad():
        mean, std = pol.net(obs), pol.log_std.exp()
        z = torch.randn(mean.shape, generator=torch.Generator().manual_seed(7))
        assert torch.equal(a, mean + std * z)
        normal = torch.distributions.Normal(mean, std.expand_as(mean))
        assert torch.allclose(logp, normal.log_prob(a).sum(-1), atol=1e-5)
        assert torch.allclose(pol.log_prob(obs, a), logp)
    assert logp.shape == (6,)


def test_trpo_policy_refuses_other_action_spaces():
    import gymnasium as gym

    config = trpo.TRPOConfig(env_id="CartPole-v1")
    with pytest.raises(ValueError, match=r"^CartPole-v1 must have a Discrete or Box action space, got MultiDiscrete"):
        trpo.make_trpo_policy(3, gym.spaces.MultiDiscrete([2, 3]), config)


def test_categorical_kl_is_along_the_last_axis():
    rng = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(2, 3, 4, generator=rng), -1)
    logq = torch.log_softmax(torch.randn(2, 3, 4, generator=rng), -1)
    kl = trpo.categorical_kl(logp, logq)
    assert kl.shape == (2, 3)
    assert torch.allclose(kl, (logp.exp() * (logp - logq)).sum(-1))
    assert torch.allclose(trpo.categorical_kl(logp[0, 0], logq[0, 0]), kl[0, 0])  # one distribution


def test_trpo_policy_keeps_leading_axes():
    # observations with any leading axes, e.g. a rollout's (n_steps, num_envs, obs_dim), or
    # one observation without a batch axis: the Gaussian log-density sums over the action
    # axis only, and the categorical log-probabilities normalise over the action axis only
    import gymnasium as gym

    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(5, 2, 3, generator=gen)
    box = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
    gauss = trpo.make_trpo_policy(3, box, trpo.TRPOConfig(hidden=(4,)))
    act = torch.randn(5, 2, 1, generator=gen)
    with torch.no_grad():
        logp = gauss.log_prob(obs, act)
        assert logp.shape == (5, 2)
        assert torch.allclose(logp.reshape(-1), gauss.log_prob(obs.reshape(-1, 3), act.reshape(-1, 1)))
        assert torch.allclose(gauss.log_prob(obs[0, 0], act[0, 0]), logp[0, 0])
        cat = trpo.make_trpo_policy(3, gym.spaces.Discrete(2), trpo.TRPOConfig(hidden=(4,)))
        (logits,) = cat.dist_params(obs)
        assert torch.allclose(logits.exp().sum(-1), torch.ones(5, 2))
        assert torch.allclose(logits.reshape(-1, 2), cat.dist_params(obs.reshape(-1, 3))[0])
        assert torch.allclose(cat.dist_params(obs[0, 0])[0], logits[0, 0])
        assert torch.allclose(cat.kl((logits,), obs), torch.zeros(5, 2), atol=1e-6)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_train_trpo_surrogate_ratio_is_one_before_the_step(monkeypatch, env_id):
    # the surrogate's first evaluation, at theta_old, sees the rollout's actions with their
    # shape ((M,) for Discrete, (M, 1) for Pendulum's Box) and gives back the rollout's
    # log-probabilities: every ratio pi_theta / pi_old is 1 there
    cls = trpo._trpo_policy_class()
    real, seen = cls.log_prob, {}

    def spy(self, obs, actions):
        out = real(self, obs, actions)
        if "ro" in seen and "first" not in seen:
            seen["first"] = (actions.detach().clone(), out.detach().clone())
        return out

    monkeypatch.setattr(cls, "log_prob", spy)
    _trpo_run(env_id=env_id, on_rollout=lambda policy, ro: seen.setdefault("ro", ro))
    ro, (actions, logp) = seen["ro"], seen["first"]
    m = ro.valid.reshape(-1)
    shape = (-1,) if env_id == "CartPole-v1" else (-1, 1)
    assert torch.equal(actions, ro.actions.reshape(shape)[m])
    assert torch.allclose(logp, ro.logp.reshape(-1)[m], atol=1e-6)


def test_train_trpo_uses_cg_iters(monkeypatch):
    # every update solves F x = g with config.cg_iters iterations (the default of both
    # TRPOConfig and conjugate_gradient is 10, so a dropped argument shows only with another)
    real, seen = trpo.conjugate_gradient, []

    def spy(Avp, b, *args, **kwargs):
        seen.append(args[0] if args else kwargs.get("n_iters"))
        return real(Avp, b, *args, **kwargs)

    monkeypatch.setattr(trpo, "conjugate_gradient", spy)
    _trpo_run(n_updates=2, cg_iters=3)
    assert seen == [3, 3]


def _trpo_run(on_rollout=None, **fields):
    """A tiny CartPole run (one update of 16 steps x 2 environments, seed 0); ``fields`` override the config."""
    config = trpo.TRPOConfig(**{**dict(n_updates=1, n_steps=16, num_envs=2, vf_minibatches=2,
                                       hidden=(4,)), **fields})
    return trpo.train_trpo(config, seed=0, progress=False, on_rollout=on_rollout)


def test_train_trpo_takes_the_full_step_every_update(monkeypatch):
    # F + damping I is positive definite, so x^T F x > 0 and every update scales x by
    # full_step (on Pendulum, seed 0, sum(x / Fx) is negative in some updates: only the
    # quadratic form decides)
    real, calls = trpo.full_step, []

    def spy(x, Fx, max_kl):
        calls.append(float((x * Fx).sum()))
        return real(x, Fx, max_kl)

    monkeypatch.setattr(trpo, "full_step", spy)
    _trpo_run(env_id="Pendulum-v1", n_updates=5, n_steps=64, hidden=(8,))
    assert len(calls) == 5 and min(calls) > 0


@pytest.mark.parametrize("case", ["zero direction", "negative curvature"])
def test_train_trpo_takes_no_step_without_positive_curvature(monkeypatch, case):
    # x^T F x <= 0: no step (not full_step's refusal, not NaN, not the unscaled x)
    if case == "zero direction":
        monkeypatch.setattr(trpo, "conjugate_gradient", lambda Avp, b, n: torch.zeros_like(b))
    else:  # x a small multiple of g, and a Fisher product that makes x^T F x < 0
        monkeypatch.setattr(trpo, "conjugate_gradient", lambda Avp, b, n: 1e-3 * b)
        monkeypatch.setattr(trpo, "fisher_vector_product", lambda f, params, v, damping: -v)
    import gymnasium as gym

    torch.manual_seed(0)
    start = trpo.make_trpo_policy(4, gym.spaces.Discrete(2), trpo.TRPOConfig(hidden=(4,)))
    policy, _, history = _trpo_run()
    for a, b in zip(start.parameters(), policy.parameters()):
        assert torch.equal(a, b)  # torch.manual_seed(0) in train_trpo: the same initial policy
    assert history.surrogate_gain == [0.0]


def test_train_trpo_passes_its_line_search_settings(monkeypatch):
    real, seen = trpo.backtracking_line_search, []

    def spy(*args, **kwargs):
        seen.append((kwargs.get("shrink"), kwargs.get("max_backtracks")))
        return real(*args, **kwargs)

    monkeypatch.setattr(trpo, "backtracking_line_search", spy)
    _trpo_run(line_search_shrink=0.7, line_search_max_iter=3)
    assert seen == [(0.7, 3)]


def test_train_trpo_value_minibatches_follow_vf_batch_size():
    # vf_batch_size, when given, sets the value network's minibatch size instead of
    # vf_minibatches: with M = 32 valid steps, batches of 16 are exactly 2 minibatches
    valid = []
    ref = _trpo_run(on_rollout=lambda policy, ro: valid.append(int(ro.valid.sum())))[1]
    assert valid == [32]  # no episode ends in these 16 steps (seed 0)

    def same(net):
        return all(torch.equal(p, q) for p, q in zip(ref.parameters(), net.parameters()))

    assert same(_trpo_run(vf_minibatches=4, vf_batch_size=16)[1])
    assert not same(_trpo_run(vf_minibatches=2, vf_batch_size=5)[1])
    assert not same(_trpo_run(vf_minibatches=2, vf_batch_size=19)[1])  # [19, 13], not [16, 16]


def test_train_trpo_surrogate_gain_is_the_difference(monkeypatch):
    # every advantage 1 (not normalised): L(theta_old) = mean ratio = 1, and the recorded
    # gain L(theta_new) - L(theta_old) is small and not negative (not L_new + L_old, about 2)
    import companion.gae

    monkeypatch.setattr(companion.gae, "gae", lambda rewards, *args: torch.ones_like(rewards))
    history = _trpo_run(n_updates=3, normalize_advantage=False)[2]
    assert all(0.0 <= g < 0.5 for g in history.surrogate_gain)


def test_train_trpo_normalisation_keeps_the_sign_of_tiny_advantages(monkeypatch):
    # advantages +1e-9 for action 1 and -1e-9 for action 0, standard deviation below the
    # 1e-8 guard: divided by std + 1e-8 they keep their sign, so the update makes action 1
    # more likely (dividing by std - 1e-8 < 0 would flip every sign)
    import companion.gae

    seen = {}
    monkeypatch.setattr(companion.gae, "gae",
                        lambda rewards, *a: 1e-9 * (2.0 * seen["ro"].actions.float() - 1.0))

    def prob_of_1(policy):
        with torch.no_grad():
            return policy.dist_params(seen["ro"].obs.reshape(-1, 4))[0][:, 1].exp().mean()

    def on_rollout(policy, ro):
        seen["ro"] = ro
        seen["before"] = prob_of_1(policy)

    policy, _, history = _trpo_run(on_rollout=on_rollout)
    assert history.step_fraction[0] > 0
    assert prob_of_1(policy) > seen["before"]


def test_train_trpo_mean_return_is_nan_before_the_first_episode_without_a_warning():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = _trpo_run(n_steps=4)[2]  # CartPole's shortest episode is longer than 4 steps
    assert np.isnan(history.mean_return[0])
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_train_trpo_float32_networks_adam_eps_and_clipped_actions():
    from companion.rollout import RecordActions

    tiny = dict(n_updates=1, n_steps=8, num_envs=2, vf_minibatches=2, hidden=(4,))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        policy, value_net, _ = trpo.train_trpo(trpo.TRPOConfig(**tiny), seed=0, progress=False)
    finally:
        torch.set_default_dtype(old)
    assert all(p.dtype == torch.float32 for p in [*policy.parameters(), *value_net.parameters()])
    # Adam's epsilon is the configured one: a large one changes the value network's fit
    nets = [trpo.train_trpo(trpo.TRPOConfig(adam_eps=eps, **tiny), seed=0, progress=False)[1]
            for eps in (1e-8, 1e-1)]
    a, b = (torch.cat([p.detach().flatten() for p in n.parameters()]) for n in nets)
    assert not torch.equal(a, b)
    # Gaussian samples far outside [-2, 2] reach Pendulum clipped at both bounds
    wrapped = []
    trpo.train_trpo(
        trpo.TRPOConfig(env_id="Pendulum-v1", log_std_init=3.0, **tiny), seed=0, progress=False,
        wrap_env=lambda e: wrapped.append(RecordActions(e)) or wrapped[-1],
    )
    sent = np.concatenate(wrapped[0].received)
    assert sent.min() == -2.0 and sent.max() == 2.0
