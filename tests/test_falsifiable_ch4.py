"""The checks of Chapter 4 (TRPO) can fail: each wrong version is rejected by the same
companion function the chapter calls, and the right version passes."""

import numpy as np
import pytest

from companion import mdp as M
from companion import trpo
from companion.cpi import surrogate
from companion.pg import softmax_policy


def _random_cases(n=60, seed=0):
    cases = []
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        m = M.random_mdp(4, 3, gamma=float(rng.uniform(0.5, 0.99)), seed=seed + i)
        old = M.random_policy(4, 3, seed=1000 + seed + i)
        new = softmax_policy(
            np.log(old) + rng.uniform(0.01, 3.0) * rng.normal(size=(4, 3))
        )
        cases.append((m, old, new))
    return cases


@pytest.fixture(scope="module")
def worst_09():
    """Cases from the worst-case search at gamma = 0.9 (where a wrong power shows)."""
    return trpo.worst_case_search(0.9, 2, 2, "tv", n_starts=3, seed=0, max_evals=2000)


def test_right_bounds_hold_on_random_hand_built_and_searched_cases(worst_09):
    cases = (
        _random_cases()
        + [trpo.near_tight_case(g, 0.3) for g in (0.01, 0.5, 0.9)]
        + worst_09
    )
    assert trpo.bound_violations(trpo.trpo_lower_bound, cases) == 0
    assert trpo.bound_violations(trpo.trpo_kl_lower_bound, cases) == 0


def test_random_cases_cannot_tell_the_constant_but_the_hand_built_case_can():
    random = _random_cases()
    # the weakness the review found: on random MDPs a much smaller constant passes too
    assert (
        trpo.bound_violations(
            lambda m, a, b: trpo.trpo_lower_bound(m, a, b, 0.26), random
        )
        == 0
    )
    tight = [trpo.near_tight_case(0.01, 0.3)]
    assert trpo.empirical_constant(tight) == pytest.approx(4 * 0.99**2)
    for wrong in (2.0, 3.8):  # a halved constant, and one just below 4 (1 - gamma)^2
        bound = lambda m, a, b, c=wrong: trpo.trpo_lower_bound(m, a, b, c)  # noqa: E731
        assert trpo.bound_violations(bound, tight) == 1
    kl_wrong = lambda m, a, b: trpo.trpo_kl_lower_bound(m, a, b, 1.0)  # noqa: E731
    assert trpo.bound_violations(kl_wrong, tight) == 1


@pytest.mark.parametrize("gamma, alpha", [(0.9, 1e-3), (0.99, 1e-4)])
def test_two_state_case_needs_about_three_and_rejects_the_halved_constant(gamma, alpha):
    case = trpo.two_state_case(gamma, alpha)
    closed = trpo.two_state_constant(gamma, alpha)  # the closed form, not the search
    assert closed > 2.9
    assert trpo.empirical_constant([case]) == pytest.approx(closed, rel=1e-9)
    for c, n in ((4.0, 0), (closed, 0), (2.0, 1), (0.99 * closed, 1)):
        bound = lambda m, a, b, c=c: trpo.trpo_lower_bound(m, a, b, c)  # noqa: E731
        assert trpo.bound_violations(bound, [case]) == n, c
    # the default constant holds there
    assert trpo.bound_violations(trpo.trpo_lower_bound, [case]) == 0


def test_two_state_closed_form_rejects_wrong_closed_forms():
    gammas, alphas = (0.1, 0.5, 0.9, 0.99), (1e-3, 0.05, 0.3)
    got = [
        trpo.empirical_constant([trpo.two_state_case(g, a)])
        for g in gammas
        for a in alphas
    ]
    right = [trpo.two_state_constant(g, a) for g in gammas for a in alphas]
    assert np.allclose(got, right, rtol=1e-9)
    for wrong in (
        lambda g, a: 3 * (1 - g) ** 2 / (1 - g + a * g),
        lambda g, a: 4 * (1 - g) / (1 - g + a * g),
        lambda g, a: 3 * (1 - g) / (1 - g),
    ):
        assert not np.allclose(
            got, [wrong(g, a) for g in gammas for a in alphas], rtol=1e-3
        )


def test_the_search_misses_the_boundary_case(worst_09):
    assert trpo.empirical_constant(worst_09) < 0.9 * trpo.two_state_constant(0.9, 1e-3)


def test_state_averaged_tv_is_violated_where_the_max_form_holds():
    case = trpo.two_state_case(0.9, 1e-3, alpha_bad=0.4)

    def averaged(m, old, new):  # the wrong version: average TV under d_old, not max
        d = M.visitation(m, old) * (1 - m.gamma)
        tv = float(d @ trpo.tv_distance(old, new))
        return surrogate(m, old, new) - trpo.penalty_coefficient(m, old) * tv**2

    assert trpo.bound_violations(averaged, [case]) == 1
    assert trpo.bound_violations(trpo.trpo_lower_bound, [case]) == 0
    assert trpo.bound_violations(averaged, _random_cases()) == 0  # random cases miss it


def test_exact_trust_region_steps_have_nonnegative_mean_advantage():
    river = M.river_swim(6, gamma=0.95)
    pi = M.uniform_policy(river)
    flipped = M.TabularMDP(river.P, -river.R, river.gamma, river.mu)
    for delta in (0.01, 0.2):
        new = trpo.exact_trpo_step(river, pi, delta)
        assert trpo.bad_mean_advantage_states(river, pi, new) == 0
        assert M.expected_return(river, new) >= M.expected_return(river, pi)
        # the wrong sign: maximising -L (the step for the negated rewards)
        wrong = trpo.exact_trpo_step(flipped, pi, delta)
        assert trpo.bad_mean_advantage_states(river, pi, wrong) >= 1


def test_the_wrong_power_of_one_minus_gamma_is_rejected(worst_09):
    def wrong_power(
        m, old, new
    ):  # 4 eps gamma / (1 - gamma) instead of / (1 - gamma)^2
        eps = np.abs(M.advantage_function(m, old)).max()
        return (
            surrogate(m, old, new)
            - 4 * eps * m.gamma / (1 - m.gamma) * trpo.max_tv(old, new) ** 2
        )

    assert trpo.bound_violations(wrong_power, worst_09) >= 1


def test_mean_advantage_bound_factor_two_not_one():
    cases = _random_cases() + [trpo.near_tight_case(0.5, a) for a in (0.05, 0.3)]
    assert trpo.mean_advantage_violations(2.0, cases) == 0
    assert (
        trpo.mean_advantage_violations(1.0, cases) >= 2
    )  # the hand-built case attains 2
    assert trpo.mean_advantage_violations(1.99, cases) >= 2


def test_series_closed_form_and_its_bound():
    gammas, alphas = np.linspace(0.05, 0.99, 12), np.linspace(0.01, 1.0, 12)
    closed = lambda g, a: a * g / ((1 - g) * (1 - g * (1 - a)))  # noqa: E731
    exact = trpo.disagreement_series(*np.meshgrid(gammas, alphas))
    assert np.allclose(exact, closed(*np.meshgrid(gammas, alphas)), rtol=1e-9)
    assert (
        trpo.series_bound_violations(lambda g, a: a * g / (1 - g) ** 2, gammas, alphas)
        == 0
    )
    assert trpo.series_bound_violations(closed, gammas, alphas) == 0
    for wrong in (
        lambda g, a: a * g / (1 - g),  # wrong power of (1 - gamma)
        lambda g, a: a**2 * g / (1 - g) ** 2,  # alpha squared instead of alpha
        lambda g, a: a * g / (2 * (1 - g) ** 2),  # a halved constant
    ):
        assert trpo.series_bound_violations(wrong, gammas, alphas) > 0


def test_full_step_missing_factor_two_is_rejected():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(5, 5))
    F = B @ B.T + 0.1 * np.eye(5)
    x = rng.normal(size=5)
    assert trpo.quadratic_kl_error(trpo.full_step, F, x, 0.01) < 1e-12
    wrong = lambda x, Fx, d: np.sqrt(d / (x @ Fx)) * x  # noqa: E731
    assert trpo.quadratic_kl_error(wrong, F, x, 0.01) == pytest.approx(0.5)
    squared = lambda x, Fx, d: 2 * d / (x @ Fx) * x  # noqa: E731  forgot the square root
    assert trpo.quadratic_kl_error(squared, F, x, 0.01) > 0.1


def test_penalty_step_never_decreases_the_bound_and_reports_success():
    river = M.river_swim(6, gamma=0.95)
    pi = M.uniform_policy(river)
    for _ in range(5):
        new = trpo.exact_trpo_step(river, pi)
        assert (
            trpo.trpo_kl_lower_bound(river, pi, new)
            >= M.expected_return(river, pi) - 1e-12
        )
        assert M.expected_return(river, new) >= M.expected_return(river, pi) - 1e-12
        pi = new
    new = trpo.exact_trpo_step(river, pi, max_kl=0.05)
    assert trpo.max_kl(pi, new) <= 0.05 * (1 + 1e-6)


def test_pinsker_violations_rejects_the_quarter_constant():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(3), size=2000), rng.dirichlet(np.ones(3), size=2000)
    assert trpo.pinsker_violations(p, q, 0.5) == 0
    assert trpo.pinsker_violations(p, q, 0.25) > 0
    # the tight two-point pair (KL ~ 2 TV^2 for close distributions) rejects 0.49
    assert trpo.pinsker_violations([0.5, 0.5], [0.5 + 1e-3, 0.5 - 1e-3], 0.49) == 1


def test_importance_sampling_without_the_ratio_is_rejected():
    m = M.random_mdp(5, 3, gamma=0.9, seed=11)
    old = M.random_policy(5, 3, seed=12)
    new = softmax_policy(
        np.log(old) + 0.5 * np.random.default_rng(13).normal(size=(5, 3))
    )
    q = M.random_policy(5, 3, seed=14)  # the chapter's instance
    exact = M.visitation(m, old) @ (new * M.q_function(m, old)).sum(1)
    est, se = trpo.importance_sampled_gain(m, old, new, q, 100_000, seed=1)
    assert abs(est - exact) < 5 * se
    wrong, se_w = trpo.importance_sampled_gain(m, old, new, q, 100_000, 1, False)
    assert abs(wrong - exact) > 5 * se_w


@pytest.fixture(scope="module")
def small_net():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)
    ).double()
    return net, torch.randn(16, 3, dtype=torch.float64)


def test_fisher_equals_kl_hessian_and_the_wrong_versions_differ(small_net):
    import torch

    net, states = small_net
    hessian = trpo.mean_kl_hessian(net, states)
    fisher = trpo.policy_fisher_matrix(net, states)
    assert torch.allclose(hessian, fisher, atol=1e-10)
    summed = trpo.policy_fisher_matrix(net, states, reduce="sum")
    assert not torch.allclose(hessian, summed, atol=1e-3)
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    other = trpo.mean_kl_hessian(net, states, at=theta + 0.5 * torch.randn_like(theta))
    assert not torch.allclose(other, fisher, atol=1e-3)


def test_cg_solve_error_rejects_sign_errors():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(8, 8))
    A, b = B @ B.T + 0.1 * np.eye(8), rng.normal(size=8)
    assert trpo.cg_solve_error(A, b) < 1e-8

    def cg_with(sign_x=1.0, sign_r=1.0):
        def cg(Avp, b, n):
            x, r = np.zeros_like(b), b.copy()
            p, rr = r.copy(), r @ r
            for _ in range(n):
                if rr < 1e-30:
                    break
                Ap = Avp(p)
                step = rr / (p @ Ap)
                x = x + sign_x * step * p
                r = r - sign_r * step * Ap
                rr_new = r @ r
                p, rr = r + rr_new / rr * p, rr_new
            return x

        return cg

    assert trpo.cg_solve_error(A, b, cg_fn=cg_with()) < 1e-8  # the test's CG is right
    assert trpo.cg_solve_error(A, b, cg_fn=cg_with(sign_x=-1.0)) > 0.1
    assert trpo.cg_solve_error(A, b, cg_fn=cg_with(sign_r=-1.0)) > 0.1
