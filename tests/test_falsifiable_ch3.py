"""Chapter 3: each check of the chapter rejects the wrong versions it is meant to reject.

Every test feeds a plausible wrong version (a halved constant, a dropped factor, a wrong
coupling rate, the uncapped guarantee) to the SAME companion function the chapter calls,
and asserts that it is rejected while the right version passes.
"""

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M


def halved_penalty(adv, eps, alpha, gamma):
    return alpha * adv / (1 - gamma) - 0.5 * cpi.kl_penalty(eps, alpha, gamma)


def no_denominator(
    adv, eps, alpha, gamma
):  # the simpler bound's penalty with 1 - gamma
    return alpha / (1 - gamma) * (adv - alpha * gamma * eps / (1 - gamma))


@pytest.fixture(scope="module")
def random_cases():
    cases = []
    for i in range(40):
        m = M.random_mdp(4, 3, gamma=0.5 + 0.49 * (i % 10) / 10, seed=i)
        p = M.random_policy(4, 3, seed=100 + i)
        q = (
            M.greedy_policy(M.advantage_function(m, p))
            if i % 2
            else M.random_policy(4, 3, seed=200 + i)
        )
        cases += cpi.bound_cases(m, p, q, np.linspace(0, 1, 11))
    return cases


@pytest.fixture(scope="module")
def tight_cases():
    out = []
    for gamma in (0.3, 0.9, 0.99):
        m, p, q = cpi.tight_case(gamma, eps=0.7)
        out += cpi.bound_cases(m, p, q, np.linspace(0, 1, 11))
    return out


def test_true_bound_holds(random_cases, tight_cases):
    assert cpi.bound_violations(cpi.kakade_langford_bound, random_cases) == 0
    assert cpi.bound_violations(cpi.kakade_langford_bound, tight_cases) == 0


def test_random_cases_cannot_tell_the_halved_penalty(random_cases):
    # the reason for the tight case: on random instances the halved penalty also passes
    assert cpi.bound_violations(halved_penalty, random_cases) == 0


def test_wrong_penalty_rejected_on_tight_case(tight_cases):
    n_positive_alpha = sum(c.alpha > 0 for c in tight_cases)
    assert cpi.bound_violations(halved_penalty, tight_cases) == n_positive_alpha
    assert cpi.bound_violations(no_denominator, tight_cases) > 0


def test_tight_case_is_tight(tight_cases):
    ratios = [c.ratio for c in tight_cases if c.alpha > 0]
    assert np.allclose(ratios, 1.0, atol=1e-9)


def test_alpha_zero_not_counted(tight_cases):
    zero = [c for c in tight_cases if c.alpha == 0]
    assert zero and cpi.bound_violations(lambda *a: 1.0, zero) == 0


def test_worst_case_search_finds_near_tight_case():
    ratio, case = cpi.worst_case_ratio(n_starts=2, maxiter=60, seed=0)
    assert 0.9 < ratio <= 1 + 1e-9
    assert cpi.bound_violations(cpi.kakade_langford_bound, [case]) == 0
    assert cpi.bound_violations(halved_penalty, [case]) == 1


def right_coupling(alpha, t):
    return 2 * (1 - (1 - alpha) ** t)


@pytest.fixture(scope="module")
def coupling_cases():
    m, p, q = cpi.tight_case(0.9)
    cases = [(m, p, q, a) for a in (0.05, 0.3, 0.7)]
    for i in range(5):
        r = M.random_mdp(4, 2, seed=50 + i)
        cases.append(
            (r, M.random_policy(4, 2, seed=i), M.random_policy(4, 2, seed=9 + i), 0.2)
        )
    return cases


def test_coupling_right_version_passes(coupling_cases):
    assert cpi.coupling_violations(right_coupling, coupling_cases, horizon=30) == 0


@pytest.mark.parametrize(
    "wrong",
    [
        lambda a, t: 1 - (1 - a) ** t,  # total variation instead of l1 (halved)
        lambda a, t: 2 * a**t,  # alpha^t
        lambda a, t: 2 * (1 - a) ** t,  # (1 - alpha)^t without "1 -"
        lambda a, t: 2 * (1 - (1 - a) ** np.maximum(t - 1, 0)),  # index off by one
    ],
    ids=["halved", "alpha^t", "no-one-minus", "off-by-one"],
)
def test_coupling_wrong_versions_rejected(coupling_cases, wrong):
    assert cpi.coupling_violations(wrong, coupling_cases, horizon=30) > 0


def test_old_guarantee_refuted_by_counterexample():
    m, p, q = cpi.one_state_counterexample(0.1)
    gain = M.expected_return(m, q) - M.expected_return(m, p)
    assert gain == pytest.approx(1 / 0.9)
    assert cpi.cpi_step_size(1.0, 1.0, 0.1) == 1.0

    def old_claim(a, e, g):
        return a**2 / (8 * g * e) if a > 0 else 0.0

    assert cpi.guarantee_violations(old_claim, [(m, p, q)]) == 1
    assert cpi.guarantee_violations(cpi.cpi_guaranteed_gain, [(m, p, q)]) == 0


def test_guarantee_holds_in_both_regimes():
    cases = [cpi.one_state_counterexample(g) for g in (0.0, 0.05, 0.1, 0.19)]
    cases += [cpi.tight_case(g) for g in (0.5, 0.9)]  # alpha* < 1 there
    for i in range(20):
        m = M.random_mdp(4, 3, gamma=0.1 + 0.85 * i / 20, seed=300 + i)
        p = M.random_policy(4, 3, seed=400 + i)
        cases.append((m, p, M.greedy_policy(M.advantage_function(m, p))))
    assert cpi.guarantee_violations(cpi.cpi_guaranteed_gain, cases) == 0
    regimes = set()
    for m, p, q in cases:
        adv = cpi.policy_advantage(m, p, q)
        eps = max(cpi.advantage_gap(m, p, q), adv)
        regimes.add(cpi.cpi_step_size(adv, eps, m.gamma) < 1)
    assert regimes == {True, False}


def test_coverage_bound_and_wrong_versions():
    mdp = M.river_swim(6, 0.95)
    left = np.tile([1.0, 0.0], (6, 1))
    uniform = np.full(6, 1 / 6)
    policies = [left, M.uniform_policy(mdp)]
    assert cpi.coverage_violations(cpi.suboptimality_bound, mdp, policies, uniform) == 0
    # concentrated restart: C is infinite, the bound vacuous, never violated
    assert np.isinf(cpi.concentrability(mdp, M.policy_iteration(mdp)[0], mdp.mu))
    assert cpi.coverage_violations(cpi.suboptimality_bound, mdp, policies, mdp.mu) == 0

    def no_coverage(adv, C, g):  # the factor C dropped
        return adv / (1 - g) ** 2

    def one_power(adv, C, g):  # 1/(1 - gamma) instead of its square
        return C * adv / (1 - g) if np.isfinite(C) else np.inf

    def fixed_point_optimal(adv, C, g):  # "a fixed point is optimal": ignores C
        return 0.0 if adv == 0 else np.inf

    for wrong in (no_coverage, one_power):
        assert cpi.coverage_violations(wrong, mdp, [left], uniform) == 1
    assert cpi.coverage_violations(fixed_point_optimal, mdp, [left], mdp.mu) == 1


def test_performance_difference_lemma_check_rejects_wrong_terms():
    cases = []
    for i in range(10):
        m = M.random_mdp(4, 3, gamma=0.3 + 0.06 * i, seed=600 + i)
        cases.append(
            (m, M.random_policy(4, 3, seed=i), M.random_policy(4, 3, seed=50 + i))
        )
    assert cpi.lemma_violations(cpi.performance_difference_terms, cases) == 0

    def old_visitation(m, p, q):
        return M.visitation(m, p) * (q * M.advantage_function(m, p)).sum(axis=1)

    def normalised(m, p, q):
        return (1 - m.gamma) * cpi.performance_difference_terms(m, p, q)

    def new_advantage(m, p, q):
        return M.visitation(m, q) * (q * M.advantage_function(m, q)).sum(axis=1)

    for wrong in (old_visitation, normalised, new_advantage):
        assert cpi.lemma_violations(wrong, cases) > 0


def test_first_order_gap_rejects_missing_factor():
    def no_factor(m, p, q):
        return M.expected_return(m, p) + cpi.policy_advantage(m, p, q)

    for seed, mdp in enumerate([M.river_swim(6, 0.95), M.random_mdp(4, 3, seed=1)]):
        theta = np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions))
        assert cpi.first_order_gap(mdp, theta, cpi.surrogate) < 1e-8
        assert cpi.first_order_gap(mdp, theta, no_factor) > 1e-3
