"""Tests of companion.cpi."""

import numpy as np
import pytest

from companion import cpi
from companion import mdp as M


def test_mixture_by_hand_and_validation():
    p, q = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert np.allclose(cpi.mixture(p, q, 0.25), [[0.75, 0.25]])
    with pytest.raises(ValueError, match="alpha must lie in"):
        cpi.mixture(p, q, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        cpi.mixture(p, np.array([[0.5, 0.5], [0.5, 0.5]]), 0.5)
    with pytest.raises(ValueError, match="pi_new must sum to 1"):
        cpi.mixture(p, np.array([[0.5, 0.6]]), 0.5)


def test_policy_advantage_and_surrogate_relations(small_mdp, small_policy):
    other = M.random_policy(4, 3, seed=9)
    adv = cpi.policy_advantage(small_mdp, small_policy, other)
    J = M.expected_return(small_mdp, small_policy)
    assert cpi.surrogate(small_mdp, small_policy, other) == pytest.approx(
        J + adv / (1 - small_mdp.gamma)
    )
    assert cpi.policy_advantage(small_mdp, small_policy, small_policy) == pytest.approx(
        0.0, abs=1e-12
    )
    # independent computation of the policy advantage from its definition
    d = (1 - small_mdp.gamma) * M.visitation(small_mdp, small_policy)
    A = (
        M.q_function(small_mdp, small_policy)
        - M.value_function(small_mdp, small_policy)[:, None]
    )
    assert adv == pytest.approx(sum(d[s] * other[s] @ A[s] for s in range(4)))
    with pytest.raises(ValueError, match="pi must have shape"):
        cpi.policy_advantage(small_mdp, np.ones((2, 3)) / 3, other)


def test_performance_difference_lemma(small_mdp, small_policy):
    other = M.random_policy(4, 3, seed=10)
    lhs = M.expected_return(small_mdp, other) - M.expected_return(
        small_mdp, small_policy
    )
    rhs = M.visitation(small_mdp, other) @ (
        other * M.advantage_function(small_mdp, small_policy)
    ).sum(1)
    assert lhs == pytest.approx(rhs)


def test_kakade_langford_bound_by_hand_and_vectorised():
    # alpha = 1, gamma = 0.5: 1/(0.5) * (A - 2*0.5*eps/1) = 2 (A - eps)
    assert cpi.kakade_langford_bound(0.3, 0.2, 1.0, 0.5) == pytest.approx(0.2)
    assert cpi.kakade_langford_bound(0.3, 0.2, 0.0, 0.5) == 0.0
    out = cpi.kakade_langford_bound(0.3, 0.2, np.array([0.0, 1.0]), 0.5)
    assert out.shape == (2,) and out[1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="gamma"):
        cpi.kakade_langford_bound(0.3, 0.2, 0.5, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        cpi.kakade_langford_bound(0.3, 0.2, [0.5, 2.0], 0.5)
    with pytest.raises(ValueError, match="eps"):
        cpi.kakade_langford_bound(0.3, -1.0, 0.5, 0.5)


def test_bound_holds_on_random_mdps():
    alphas = np.linspace(0, 1, 11)
    for i in range(100):
        m = M.random_mdp(4, 3, gamma=0.5 + 0.45 * (i % 10) / 10, seed=i)
        p, q = (
            M.random_policy(4, 3, seed=1000 + i),
            M.random_policy(4, 3, seed=2000 + i),
        )
        gain = np.array(
            [M.expected_return(m, cpi.mixture(p, q, a)) for a in alphas]
        ) - M.expected_return(m, p)
        bound = cpi.kakade_langford_bound(
            cpi.policy_advantage(m, p, q), cpi.advantage_gap(m, p, q), alphas, m.gamma
        )
        assert np.all(gain >= bound - 1e-10)


def test_cpi_step_size_cases():
    assert cpi.cpi_step_size(0.1, 0.5, 0.9) == pytest.approx(
        0.1 * 0.1 / (4 * 0.9 * 0.5)
    )
    assert cpi.cpi_step_size(0.4, 0.4, 0.1) == 1.0
    assert cpi.cpi_step_size(-0.1, 0.4, 0.9) == 0.0


def test_conservative_policy_iteration_reaches_optimum():
    m = M.random_mdp(5, 3, gamma=0.8, seed=3)
    pi, hist = cpi.conservative_policy_iteration(m, n_iters=5000, tol=1e-10)
    J_star = m.mu @ M.policy_iteration(m)[1]
    assert J_star - hist.J[-1] < 1e-6
    gains = np.diff(hist.J)
    assert (
        np.all(gains >= np.array(hist.bound) - 1e-12)
        and len(hist.J) == len(hist.alpha) + 1
    )
    with pytest.raises(ValueError, match="n_iters"):
        cpi.conservative_policy_iteration(m, n_iters=0)


def test_river_swim_structure_and_optimum():
    m = M.river_swim(6, 0.95)
    assert m.n_states == 6 and m.n_actions == 2
    pi_star, _ = M.policy_iteration(m)
    assert np.all(pi_star.argmax(1) == 1)  # swimming upstream is optimal everywhere
    with pytest.raises(ValueError, match="at least 2"):
        M.river_swim(1)


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cpi.cpi_step_size(NAN, 0.5, 0.9), "policy_adv"),
        (lambda: cpi.cpi_step_size(0.1, NAN, 0.9), "eps"),
        (lambda: cpi.cpi_step_size(0.1, -0.5, 0.9), "eps"),
        (lambda: cpi.cpi_step_size(0.1, 0.5, NAN), "gamma"),
        (lambda: cpi.cpi_step_size(0.1, 0.5, 1.0), "gamma"),
        (lambda: cpi.cpi_step_size(0.1, 0.5, -0.1), "gamma"),
        (lambda: cpi.cpi_step_size(0.6, 0.5, 0.9), "policy_adv"),
        (lambda: cpi.cpi_step_size("a", 0.5, 0.9), "policy_adv"),
        (lambda: cpi.cpi_guaranteed_gain(INF, 0.5, 0.9), "policy_adv"),
        (lambda: cpi.cpi_guaranteed_gain(0.1, 0.5, 1.5), "gamma"),
        (lambda: cpi.kakade_langford_bound(NAN, 0.5, 0.5, 0.9), "policy_adv"),
        (lambda: cpi.kakade_langford_bound(0.1, 0.5, NAN, 0.9), "alpha"),
        (lambda: cpi.kakade_langford_bound(0.1, 0.5, -0.1, 0.9), "alpha"),
        (lambda: cpi.kl_penalty(-1.0, 0.5, 0.9), "eps"),
        (lambda: cpi.kl_penalty(0.5, 0.5, 1.0), "gamma"),
        (lambda: cpi.mixture([[1.0, 0.0]], [[0.0, 1.0]], NAN), "alpha"),
        (lambda: cpi.mixture([[1.0, 0.0]], [[0.0, 1.0]], -0.2), "alpha"),
        (lambda: cpi.mixture([[NAN, 1.0]], [[0.0, 1.0]], 0.5), "pi"),
        (lambda: cpi.mixture([[1.2, -0.2]], [[0.0, 1.0]], 0.5), "pi"),
        (lambda: cpi.mixture([[1.0, 0.0]], [[0.3, 0.3]], 0.5), "pi_new"),
        (lambda: cpi.BoundCase(0.1, 0.1, 0.2, 1.5, 0.9), "alpha"),
        (lambda: cpi.BoundCase(NAN, 0.1, 0.2, 0.5, 0.9), "gain"),
        (lambda: cpi.BoundCase(0.1, 0.1, 0.2, 0.5, 1.0), "gamma"),
        (lambda: cpi.BoundCase(0.1, 0.3, 0.2, 0.5, 0.9), "policy_adv"),
        (lambda: cpi.tight_case(1.0), "gamma"),
        (lambda: cpi.tight_case(0.9, 0.0), "eps"),
        (lambda: cpi.one_state_counterexample(NAN), "gamma"),
        (lambda: cpi.suboptimality_bound(0.1, NAN, 0.9), "concentrability_factor"),
        (lambda: cpi.suboptimality_bound(-0.1, 1.0, 0.9), "policy_adv"),
        (lambda: cpi.suboptimality_bound(0.1, 1.0, 1.0), "gamma"),
        (lambda: cpi.worst_case_ratio(n_starts=0), "n_starts"),
        (lambda: cpi.worst_case_ratio(n_starts=1, min_penalty=-1e-8), "min_penalty"),
        (lambda: cpi.worst_case_ratio(n_starts=1, min_penalty=NAN), "min_penalty"),
        (lambda: cpi.bound_violations(cpi.kakade_langford_bound, [], tol=NAN), "tol"),
        (
            lambda: cpi.lemma_violations(cpi.performance_difference_terms, [], rtol=NAN),
            "rtol",
        ),
    ],
)
def test_bad_input_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_input_refused_with_an_mdp():
    m = M.random_mdp(3, 2, seed=0)
    p = M.random_policy(3, 2, seed=1)
    with pytest.raises(ValueError, match="restart"):
        cpi.concentrability(m, p, [0.5, 0.6, 0.0])
    with pytest.raises(ValueError, match="restart"):
        cpi.conservative_policy_iteration(m, restart=[1.0, 0.0])
    with pytest.raises(ValueError, match="tol"):
        cpi.conservative_policy_iteration(m, tol=-1.0)
    with pytest.raises(ValueError, match="pi0"):
        cpi.conservative_policy_iteration(m, pi0=np.full((3, 2), 0.6))
    with pytest.raises(ValueError, match="horizon"):
        cpi.coupling_distances(m, p, p, 0.5, 0)
    with pytest.raises(ValueError, match="alpha"):
        cpi.coupling_distances(m, p, p, 1.5, 3)
    with pytest.raises(ValueError, match="alpha"):
        cpi.bound_cases(m, p, p, [0.5, NAN])


def test_guaranteed_gain_cases_and_counterexample():
    # alpha* < 1: A^2 / (8 gamma eps); alpha* = 1: (A - 2 gamma eps / (1 - gamma)) / (1 - gamma)
    assert cpi.cpi_guaranteed_gain(0.1, 0.5, 0.9) == pytest.approx(
        0.01 / (8 * 0.9 * 0.5)
    )
    assert cpi.cpi_guaranteed_gain(1.0, 1.0, 0.1) == pytest.approx(
        (1 - 0.2 / 0.9) / 0.9
    )
    assert cpi.cpi_guaranteed_gain(0.3, 0.5, 0.0) == pytest.approx(0.3)
    assert cpi.cpi_guaranteed_gain(-0.1, 0.5, 0.9) == 0.0
    assert cpi.cpi_step_size(0.3, 0.5, 0.0) == 1.0
    m, p, q = cpi.one_state_counterexample(0.1)
    assert M.expected_return(m, q) - M.expected_return(m, p) < 1 / (8 * 0.1)


def test_cpi_with_uniform_restart_escapes_the_trap():
    m = M.river_swim(6, 0.95)
    left = np.tile([1.0, 0.0], (6, 1))
    _, stuck = cpi.conservative_policy_iteration(m, pi0=left, n_iters=10)
    assert len(stuck.alpha) == 0
    _, hist = cpi.conservative_policy_iteration(
        m, pi0=left, n_iters=20, restart=np.full(6, 1 / 6)
    )
    assert len(hist.alpha) == 20 and np.all(np.diff(hist.J) > 0)


@pytest.mark.parametrize("gamma", [0.05, 0.1, 0.11, 0.12, 0.15, 0.2, 0.21, 0.5])
def test_one_state_counterexample_thresholds(gamma):
    # docstring: the cap binds iff gamma <= 1/5; the gain is below 1/(8 gamma) iff
    # gamma < 1/9
    m, p, q = cpi.one_state_counterexample(gamma)
    adv, eps = cpi.policy_advantage(m, p, q), cpi.advantage_gap(m, p, q)
    assert adv == pytest.approx(1.0) and eps == pytest.approx(1.0)
    gain = M.expected_return(m, q) - M.expected_return(m, p)
    assert gain == pytest.approx(1 / (1 - gamma))
    assert (cpi.cpi_step_size(adv, eps, gamma) == 1.0) == (gamma <= 0.2)
    assert (gain < 1 / (8 * gamma)) == (gamma < 1 / 9)


def test_bound_equals_gain_on_tight_case_both_directions():
    for gamma in (0.2, 0.9):
        m, p, q = cpi.tight_case(gamma, eps=0.5)
        for alpha in (0.1, 0.5, 1.0):
            gain = M.expected_return(m, cpi.mixture(p, q, alpha)) - (
                M.expected_return(m, p)
            )
            b = cpi.kakade_langford_bound(0.5, 0.5, alpha, gamma)
            assert gain == pytest.approx(b, rel=1e-12, abs=1e-14)


def test_new_checks_validate_and_handle_empty_input():
    assert cpi.bound_equality_error(cpi.kakade_langford_bound, []) == 0.0
    assert cpi.step_violations(cpi.cpi_step_size, cpi.kakade_langford_bound, []) == 0
    with pytest.raises(ValueError, match="tol"):
        cpi.step_violations(cpi.cpi_step_size, cpi.kakade_langford_bound, [], tol=NAN)
