"""Tests of ``companion.cpi`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M


@pytest.fixture(scope="module")
def case():
    m = M.random_mdp(3, 2, gamma=0.8, seed=31)
    return m, M.random_policy(3, 2, seed=32), M.random_policy(3, 2, seed=33)


# ---------------------------------------------------------------- coupling
def test_coupling_distances_message(case):
    m, p, q = case
    with pytest.raises(ValueError, match=r"^horizon must"):
        cpi.coupling_distances(m, p, q, 0.5, 0)


def test_coupling_distances_by_matrix_powers(case):
    m, p, q = case
    mix = 0.7 * p + 0.3 * q
    P_p = (p[:, :, None] * m.P).sum(axis=1)
    P_m = (mix[:, :, None] * m.P).sum(axis=1)
    want = [
        np.abs(
            m.mu @ np.linalg.matrix_power(P_m, t)
            - m.mu @ np.linalg.matrix_power(P_p, t)
        ).sum()
        for t in range(6)
    ]
    assert np.allclose(
        cpi.coupling_distances(m, p, q, 0.3, 5), want, rtol=0, atol=1e-14
    )


def test_coupling_violations_counts_every_time_step(case):
    m, p, q = case
    # a bound below every distance is violated at each t = 0 .. horizon (default 30)
    assert (
        cpi.coupling_violations(
            lambda a, t: -np.ones_like(t, dtype=float), [(m, p, q, 0.5)]
        )
        == 31
    )
    assert (
        cpi.coupling_violations(lambda a, t: -1.0, [(m, p, q, 0.5)] * 2, horizon=4)
        == 10
    )
    with pytest.raises(ValueError, match=r"^horizon must"):
        cpi.coupling_violations(lambda a, t: 1.0, [(m, p, q, 0.5)], horizon=0)


def test_coupling_violations_is_strict(case):
    m, p, q = case
    # the exact distances as their own bound, with tol = 0: equal is not a violation
    exact = cpi.coupling_distances(m, p, q, 0.5, 6)
    assert (
        cpi.coupling_violations(
            lambda a, t: exact, [(m, p, q, 0.5)], horizon=6, tol=0.0
        )
        == 0
    )
    assert (
        cpi.coupling_violations(
            lambda a, t: exact - 1e-9, [(m, p, q, 0.5)], horizon=6, tol=0.0
        )
        > 0
    )


# ---------------------------------------------------------------- coverage bound
def test_suboptimality_bound_values_and_messages():
    assert cpi.suboptimality_bound(0.1, 0.5, 0.9) == pytest.approx(0.5 * 0.1 / 0.01)
    assert cpi.suboptimality_bound(0.1, 0.0, 0.9) == 0.0  # C = 0 is allowed
    assert cpi.suboptimality_bound(0.0, np.inf, 0.9) == np.inf
    with pytest.raises(ValueError, match=r"^policy_adv must be finite"):
        cpi.suboptimality_bound(np.nan, 1.0, 0.9)
    with pytest.raises(
        ValueError, match=r"^concentrability_factor must be a number, got 'x'$"
    ):
        cpi.suboptimality_bound(0.1, "x", 0.9)
    with pytest.raises(
        ValueError, match=r"^concentrability_factor must be non-negative, got -0\.5$"
    ):
        cpi.suboptimality_bound(0.1, -0.5, 0.9)


def _gap(m: M.TabularMDP, pi) -> float:
    """J(pi*) - J(pi), computed exactly as coverage_violations does."""
    _, V_star = M.policy_iteration(m)
    return float(m.mu @ V_star) - M.expected_return(m, pi)


def test_coverage_violations_tolerance():
    m = M.random_mdp(3, 2, gamma=0.9, seed=41)
    _, V_star = M.policy_iteration(m)
    J_star = abs(float(m.mu @ V_star))
    assert 1.0 < J_star < 8.0  # the tolerance tol (1 + |J*|) is tested at this scale
    pi = M.uniform_policy(m)
    d, restart, tol = _gap(m, pi), np.full(3, 1 / 3), 1e-6
    assert d > 0

    def count(b, tol=tol, policies=(pi,)):
        return cpi.coverage_violations(
            lambda *args: b, m, list(policies), restart, tol=tol
        )

    assert count(d, tol=0.0) == 0  # a gap equal to the bound is no violation
    assert count(d - 0.5 * tol * (1 + J_star)) == 0  # within the tolerance
    assert count(d - 1.1 * tol * (1 + J_star)) == 1  # beyond it
    assert count(d - 1.0, policies=(pi, pi)) == 2  # each violating policy counts


def test_coverage_violations_messages():
    m = M.random_mdp(3, 2, seed=42)
    with pytest.raises(ValueError, match=r"^restart must have shape"):
        cpi.coverage_violations(
            cpi.suboptimality_bound, m, [M.uniform_policy(m)], np.full(2, 0.5)
        )
    with pytest.raises(ValueError, match=r"^restart must sum to 1"):
        cpi.coverage_violations(
            cpi.suboptimality_bound, m, [M.uniform_policy(m)], np.full(3, 0.5)
        )


def test_bound_equality_error_value():
    c = cpi.BoundCase(gain=2.0, policy_adv=0.1, eps=0.2, alpha=0.5, gamma=0.9)
    assert cpi.bound_equality_error(lambda *a: 2.3, [c]) == pytest.approx(0.3 / 3)
    assert cpi.bound_equality_error(lambda *a: 1.4, [c, c]) == pytest.approx(0.6 / 3)
    neg = cpi.BoundCase(gain=-2.0, policy_adv=0.1, eps=0.2, alpha=0.5, gamma=0.9)
    assert cpi.bound_equality_error(lambda *a: -2.6, [neg]) == pytest.approx(0.6 / 3)
    assert cpi.bound_equality_error(lambda *a: 0.0, []) == 0.0


def unreachable_state_mdp() -> M.TabularMDP:
    """Three states; state 2 is never entered and the start law misses it."""
    P = np.zeros((3, 2, 3))
    P[:, 0, 0] = 1.0
    P[:, 1, 1] = 1.0
    R = np.array([[0.0, 1.0], [0.5, 0.0], [0.0, 0.0]])
    return M.TabularMDP(P, R, 0.5, np.array([0.5, 0.5, 0.0]))


def test_concentrability_skips_states_neither_side_visits():
    m = unreachable_state_mdp()
    pi_star, _ = M.policy_iteration(m)
    d_star = (1 - m.gamma) * M.visitation(m, pi_star)
    assert d_star[2] == 0.0
    restart = np.array([0.25, 0.75, 0.0])  # misses state 2, which pi* never visits
    C = cpi.concentrability(m, pi_star, restart)
    assert np.isfinite(C) and C == pytest.approx(
        max(d_star[0] / 0.25, d_star[1] / 0.75)
    )
    # missing a state that pi* visits makes C infinite
    assert cpi.concentrability(m, pi_star, np.array([0.0, 1.0, 0.0])) == np.inf
    with pytest.raises(ValueError, match=r"^restart must have shape"):
        cpi.concentrability(m, pi_star, np.full(2, 0.5))


def test_mixture_and_first_order_gap_messages():
    m = M.random_mdp(2, 2, seed=50)
    with pytest.raises(ValueError, match=r"^pi must sum to 1"):
        cpi.mixture(np.array([[0.5, 0.6], [0.5, 0.5]]), np.full((2, 2), 0.5), 0.5)
    with pytest.raises(ValueError, match=r"^theta must have shape"):
        cpi.first_order_gap(m, np.zeros(3), cpi.surrogate)


def _diffs(m, pi, pi_new):
    """J(pi_new) - J(pi) from mu and from every state, as lemma_violations computes them."""
    out = []
    for start in [m.mu, *np.eye(m.n_states)]:
        mm = M.TabularMDP(m.P, m.R, m.gamma, start)
        out.append(M.expected_return(mm, pi_new) - M.expected_return(mm, pi))
    return out


def test_lemma_violations_tolerance_and_count():
    m = M.random_mdp(3, 2, gamma=0.9, seed=51)
    pi, pi_new = np.tile([1.0, 0.0], (3, 1)), np.tile([0.0, 1.0], (3, 1))
    d = _diffs(m, pi, pi_new)
    assert all(
        0.5 < abs(x) < 4 for x in d
    )  # the scale at which the tolerance is tested

    def shifted(k):  # the exact difference plus k * rtol * (1 + |diff|)
        def terms(mm, p, q):
            diff = M.expected_return(mm, q) - M.expected_return(mm, p)
            return [diff + k * 1e-6 * (1 + abs(diff))]

        return terms

    case = [(m, pi, pi_new)]
    assert (
        cpi.lemma_violations(shifted(0.0), case, rtol=0.0) == 0
    )  # equal is no violation
    assert cpi.lemma_violations(shifted(0.5), case, rtol=1e-6) == 0
    assert (
        cpi.lemma_violations(shifted(1.2), case, rtol=1e-6) == 4
    )  # mu and 3 point masses
    assert cpi.lemma_violations(shifted(1.2), case * 2, rtol=1e-6) == 8


def test_first_order_gap_messages():
    m = M.random_mdp(2, 2, seed=52)
    with pytest.raises(ValueError, match=r"^h must be positive, got 0\.0$"):
        cpi.first_order_gap(m, np.zeros((2, 2)), cpi.surrogate, h=0.0)
    with pytest.raises(ValueError, match=r"^h must be finite"):
        cpi.first_order_gap(m, np.zeros((2, 2)), cpi.surrogate, h=np.nan)
    with pytest.raises(ValueError, match=r"^theta must have shape"):
        cpi.first_order_gap(m, np.zeros((2, 3)), cpi.surrogate)


# ------------------------------------------------ step size, guarantee and their checks
def test_cpi_step_size_is_zero_without_advantage():
    # A = 0: no step, also when gamma = 0 (where a positive A gives the full step 1)
    assert cpi.cpi_step_size(0.0, 1.0, 0.0) == 0.0
    assert cpi.cpi_step_size(0.0, 0.0, 0.5) == 0.0
    assert cpi.cpi_step_size(0.5, 1.0, 0.0) == 1.0


def test_cpi_guaranteed_gain_when_the_cap_binds():
    # alpha* = min(1, 0.9 * 0.5 / (4 * 0.1 * 0.5)) = 1: gain (A - 2 gamma eps/(1-gamma))/(1-gamma)
    adv, eps, g = 0.5, 0.5, 0.1
    assert cpi.cpi_step_size(adv, eps, g) == 1.0
    want = (adv - 2 * g * eps / (1 - g)) / (1 - g)
    assert cpi.cpi_guaranteed_gain(adv, eps, g) == pytest.approx(want, rel=1e-14)


def _exact_unit_case():
    """One state, gamma = 0, pi' = the action paying 1: A = eps = 1, alpha* = 1 and the
    gain of the mixture is alpha exactly; the guarantee and the bound at alpha = 1 are 1."""
    m, pi, pi_new = cpi.one_state_counterexample(gamma=0.0)
    assert cpi.policy_advantage(m, pi, pi_new) == 1.0
    assert cpi.cpi_guaranteed_gain(1.0, 1.0, 0.0) == 1.0
    assert cpi.kakade_langford_bound(1.0, 1.0, 1.0, 0.0) == 1.0
    return m, pi, pi_new


def test_step_violations_equality_is_not_a_violation():
    case = _exact_unit_case()
    # tol = 0: gain == bound == guarantee == 1 exactly; "below" is strict
    assert cpi.step_violations(cpi.cpi_step_size, cpi.kakade_langford_bound, [case], tol=0.0) == 0
    # a step of 0 is a mixture (no move): from the better policy towards the worse one,
    # A = -1, the guarantee is 0 and so is the gain
    m, pi, pi_new = case
    zero = lambda adv, eps, gamma: 0.0
    assert cpi.step_violations(zero, lambda *a: 0.0, [(m, pi_new, pi)], tol=0.0) == 0
    with pytest.raises(ValueError, match=r"^tol must be finite"):
        cpi.step_violations(cpi.cpi_step_size, cpi.kakade_langford_bound, [case], tol=np.nan)


@pytest.mark.parametrize("d, violated", [(1.9e-3, False), (2.2e-3, True)])
def test_step_violations_tolerance_of_the_bound(d, violated):
    # gain = 1; a bound c = 1 + d counts iff 1 < c - tol (1 + |c|), i.e. d > tol (2 + d)
    case = _exact_unit_case()
    bound = lambda adv, eps, alpha, gamma: 1.0 + d
    n = cpi.step_violations(cpi.cpi_step_size, bound, [case, case], tol=1e-3)
    assert n == (2 if violated else 0)


@pytest.mark.parametrize("d, violated", [(1.9e-3, False), (2.2e-3, True)])
def test_step_violations_tolerance_of_the_guarantee(d, violated):
    # a step of 1 - d gains 1 - d; the guarantee 1 counts iff 1 - d < 1 - tol (1 + 1)
    case = _exact_unit_case()
    step = lambda adv, eps, gamma: 1.0 - d
    n = cpi.step_violations(step, lambda *a: 0.0, [case, case], tol=1e-3)
    assert n == (2 if violated else 0)


@pytest.mark.parametrize("d, violated", [(0.0, False), (1.9e-3, False), (2.2e-3, True)])
def test_guarantee_violations_tolerance(d, violated):
    # alpha* = 1, gain = 1; a guarantee 1 + d counts iff 1 < 1 + d - tol (1 + |1 + d|)
    case = _exact_unit_case()
    guarantee = lambda adv, eps, gamma: 1.0 + d
    tol = 0.0 if d == 0.0 else 1e-3
    assert cpi.guarantee_violations(guarantee, [case, case], tol=tol) == (2 if violated else 0)


def test_tight_case_and_counterexample_defaults_and_messages():
    m, pi, pi_new = cpi.tight_case()
    assert m.gamma == 0.9 and np.array_equal(m.R, [[0.0, 1.0], [0.0, -1.0]])
    assert cpi.one_state_counterexample()[0].gamma == 0.1
    for eps in (np.nan, "x"):
        with pytest.raises(ValueError, match=r"^eps must be"):
            cpi.tight_case(eps=eps)


# ------------------------------------------------------ conservative policy iteration
def test_cpi_stops_at_zero_advantage_with_tol_zero():
    # already optimal: A = 0 exactly, so it stops before any step even with tol = 0
    m, _, best = cpi.one_state_counterexample(gamma=0.0)
    pi, h = cpi.conservative_policy_iteration(m, pi0=best, tol=0.0)
    assert h.alpha == [] and h.J == [1.0] and np.array_equal(pi, best)


def test_cpi_records_each_step():
    m = M.random_mdp(3, 2, gamma=0.8, seed=41)
    pi, h = cpi.conservative_policy_iteration(m, n_iters=3)
    pi0 = M.uniform_policy(m)
    greedy = M.greedy_policy(M.advantage_function(m, pi0))
    adv = cpi.policy_advantage(m, pi0, greedy)
    eps = max(cpi.advantage_gap(m, pi0, greedy), adv)
    assert h.policy_advantage[0] == adv
    assert h.alpha[0] == cpi.cpi_step_size(adv, eps, m.gamma)
    assert len(h.alpha) == len(h.policy_advantage) == len(h.bound) == len(h.J) - 1 == 3
    assert all(isinstance(x, float) for x in h.alpha + h.policy_advantage)


def test_cpi_default_iteration_cap_is_1000():
    # CPI's steps shrink near the optimum with gamma = 0.99: it is not done in 1000
    m = M.random_mdp(4, 2, gamma=0.99, seed=5)
    _, h = cpi.conservative_policy_iteration(m)
    assert len(h.alpha) == 1000 and h.policy_advantage[-1] > 1e-8  # stopped by the cap


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_iters": 0}, r"^n_iters must"),
        ({"tol": np.nan}, r"^tol must be finite"),
        ({"tol": -1e-3}, r"^tol must be non-negative"),
        ({"restart": [0.5, 0.6, -0.1]}, r"^restart "),
        ({"pi0": np.full((3, 3), 1 / 3)}, r"^pi0 must have shape \(3, 2\)"),
        ({"pi0": np.full((3, 2), 0.6)}, r"^pi0 "),
    ],
)
def test_cpi_messages(kwargs, message):
    m = M.random_mdp(3, 2, gamma=0.8, seed=41)
    with pytest.raises(ValueError, match=message):
        cpi.conservative_policy_iteration(m, **kwargs)
    cpi.conservative_policy_iteration(m, n_iters=1, tol=0.0)  # tol = 0 is allowed


# ------------------------------------------------------------- input checks of the bounds
def test_policy_advantage_and_eps_checks():
    with pytest.raises(ValueError, match=r"^policy_adv must be finite"):
        cpi.cpi_step_size(np.nan, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"^eps must be finite"):
        cpi.cpi_step_size(0.1, np.nan, 0.5)
    with pytest.raises(
        ValueError,
        match=r"^policy_adv \(0\.75\) cannot exceed eps \(0\.5\): the policy advantage "
        r"is an average of values bounded by eps$",
    ):
        cpi.cpi_step_size(0.75, 0.5, 0.5)


def test_policy_advantage_may_exceed_eps_by_rounding_only():
    # admitted: adv <= eps + 1e-9 * max(1, eps), the boundary included
    edge = 2.0 + 1e-9 * 2.0
    assert cpi.cpi_step_size(edge, 2.0, 0.5) == pytest.approx(0.25)
    assert cpi.cpi_step_size(2.0 + 1.5e-9, 2.0, 0.5) == pytest.approx(0.25)  # scale max(1, eps) = 2
    with pytest.raises(ValueError, match=r"^policy_adv .* cannot exceed eps"):
        cpi.cpi_step_size(0.5 + 1.5e-9, 0.5, 0.5)  # scale max(1, eps) = 1


@pytest.mark.parametrize("alpha", [None, "abc", [0.5, np.nan], 1.5])
def test_alpha_checks_of_the_bounds(alpha):
    for f in (lambda a: cpi.kl_penalty(1.0, a, 0.5),
              lambda a: cpi.kakade_langford_bound(0.5, 1.0, a, 0.5)):
        with pytest.raises(ValueError, match=r"^alpha must "):
            f(alpha)
    if alpha == "abc":
        with pytest.raises(ValueError, match=r"^alpha must be a number or an array of numbers, got 'abc'$"):
            cpi.kl_penalty(1.0, alpha, 0.5)


@pytest.mark.parametrize(
    "f",
    [
        lambda eps, alpha: cpi.kl_penalty(eps, alpha, 0.5),
        lambda eps, alpha: cpi.kakade_langford_bound(0.0, eps, alpha, 0.5),
    ],
    ids=["kl_penalty", "kakade_langford_bound"],
)
def test_bounds_eps_checks_and_return_types(f):
    for eps, message in [(np.nan, r"^eps must be finite"), ("x", r"^eps must be a number"),
                         (-1.0, r"^eps must be non-negative")]:
        with pytest.raises(ValueError, match=message):
            f(eps, 0.5)
    assert f(0.0, 0.5) == 0.0  # eps = 0 is allowed: no penalty (and A <= eps = 0)
    # a scalar alpha gives a Python float, an array alpha an array of its shape
    assert type(f(1.0, 0.5)) is float and type(f(1.0, np.float64(0.5))) is float
    out = f(1.0, [0.5])
    assert isinstance(out, np.ndarray) and out.shape == (1,)
    assert f(1.0, np.array([[0.25, 0.5]])).shape == (1, 2)


@pytest.mark.parametrize("d, violated", [(0.0, False), (1.9e-3, False), (2.2e-3, True)])
def test_bound_violations_tolerance(d, violated):
    # gain 1; the bound 1 + d counts iff 1 < 1 + d - tol (1 + |1 + d|); equality does not
    c = cpi.BoundCase(gain=1.0, policy_adv=1.0, eps=1.0, alpha=1.0, gamma=0.0)
    tol = 0.0 if d == 0.0 else 1e-3
    n = cpi.bound_violations(lambda *a: 1.0 + d, [c, c], tol=tol)
    assert n == (2 if violated else 0)
    # alpha = 0 is skipped whatever the bound says
    c0 = cpi.BoundCase(gain=0.0, policy_adv=1.0, eps=1.0, alpha=0.0, gamma=0.0)
    assert cpi.bound_violations(lambda *a: 5.0, [c0], tol=tol) == 0


def test_coupling_series_gap_uses_positive_alpha_and_gamma():
    # sqrt(gamma^2) = gamma only for a positive gamma: the same series, written so
    sp = pytest.importorskip("sympy")
    term = lambda t, a, g: sp.sqrt(g**2) ** t * (1 - (1 - a) ** t)
    assert cpi.coupling_series_gap(term) == 0


def test_case_from_params_by_hand():
    # the search's reparametrisation, written out: softmax rows, tanh rewards, gamma in
    # [0.05, 0.99] and alpha in [0.02, 1] through the logistic function
    from scipy.special import expit, softmax

    S, A = 2, 3
    theta = np.random.default_rng(7).normal(size=S * A * S + 3 * S * A + S + 2)
    i = np.cumsum([S * A * S, S * A, S * A, S * A, S, 1])
    P = softmax(theta[: i[0]].reshape(S, A, S), axis=-1)
    R = np.tanh(theta[i[0] : i[1]].reshape(S, A))
    pi = softmax(theta[i[1] : i[2]].reshape(S, A), axis=-1)
    pi_new = softmax(theta[i[2] : i[3]].reshape(S, A), axis=-1)
    mu = softmax(theta[i[3] : i[4]])
    gamma = 0.05 + 0.94 * expit(theta[i[4]])
    alpha = 0.02 + 0.98 * expit(theta[i[5]])
    want = cpi.bound_cases(M.TabularMDP(P, R, gamma, mu), pi, pi_new, [alpha])[0]
    got = cpi._case_from_params(theta, S, A)
    for field in ("gain", "policy_adv", "eps", "alpha", "gamma"):
        assert getattr(got, field) == pytest.approx(getattr(want, field), rel=1e-12, abs=1e-15)


@pytest.fixture
def no_search(monkeypatch):
    """Replace L-BFGS-B by "stay at the start", recording each call."""
    import types

    import scipy.optimize

    calls = []

    def stay(fun, x0, method=None, options=None):
        calls.append({"x0": np.array(x0), "method": method, "options": options, "f": fun(x0)})
        return types.SimpleNamespace(x=np.array(x0))

    monkeypatch.setattr(scipy.optimize, "minimize", stay)
    return calls


def test_worst_case_ratio_defaults(no_search):
    best, case = cpi.worst_case_ratio()
    # 6 starts from N(0, 2^2) of seed 0 in dimension S A S + 3 S A + S + 2 = 24, 150 iterations
    x0 = np.random.default_rng(0).normal(scale=2.0, size=(6, 24))
    assert np.array_equal(np.array([c["x0"] for c in no_search]), x0)
    assert all(c["method"] == "L-BFGS-B" and c["options"] == {"maxiter": 150} for c in no_search)
    cases = [cpi._case_from_params(x, 2, 2) for x in x0]
    scores = [c.ratio if c.penalty >= 1e-8 else 0.0 for c in cases]
    assert any(1e-8 <= c.penalty < 1.0 for c in cases) and max(scores) > 0
    assert best == max(scores) and case.gain == cases[int(np.argmax(scores))].gain
    assert [c["f"] for c in no_search] == [-s for s in scores]  # minimises -score


def test_worst_case_ratio_floor_is_inclusive(no_search):
    c = cpi._case_from_params(np.random.default_rng(0).normal(scale=2.0, size=24), 2, 2)
    best, _ = cpi.worst_case_ratio(n_starts=1, min_penalty=c.penalty)
    assert best == c.ratio != 0.0
    best, _ = cpi.worst_case_ratio(n_starts=1, min_penalty=np.nextafter(c.penalty, 1.0))
    assert best == 0.0


@pytest.mark.parametrize("name", ["n_states", "n_actions", "n_starts", "maxiter"])
def test_worst_case_ratio_messages(name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        cpi.worst_case_ratio(**{name: 0})


def test_worst_case_ratio_keeps_the_first_of_equal_scores(no_search):
    # every penalty below the floor: all scores 0, and the first start's case is kept
    best, case = cpi.worst_case_ratio(n_starts=3, min_penalty=1e9)
    first = cpi._case_from_params(no_search[0]["x0"], 2, 2)
    assert best == 0.0 and case == first != cpi._case_from_params(no_search[2]["x0"], 2, 2)
