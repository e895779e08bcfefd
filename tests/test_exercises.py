"""Every checker passes the reference answer and fails wrong ones with a useful sentence."""

import numpy as np
import pytest

from companion import exercises as ex
from companion.exercises._common import _test_mdps


def _solve(P, R, gamma, pi):
    P_pi = np.einsum("sa,sat->st", pi, P)
    return np.linalg.solve(np.eye(len(P)) - gamma * P_pi, (pi * R).sum(axis=1))


def _stub(*args):
    raise NotImplementedError("Exercise: write your code here")


@pytest.mark.parametrize(
    "checker, right, wrong, expected_message",
    [
        (ex.check_policy_evaluation, _solve, lambda P, R, g, pi: _solve(P, R, 0.5 * g, pi), r"your V is off at state=\d+ by"),
        (ex.check_policy_evaluation, _solve, lambda P, R, g, pi: _solve(P, R, g, pi)[:-1], r"has shape"),
        (ex.check_v_from_q, lambda Q, pi: (pi * Q).sum(axis=1), lambda Q, pi: Q.max(axis=1), r"off at state="),
        (ex.check_v_from_q, lambda Q, pi: (pi * Q).sum(axis=1), lambda Q, pi: None, r"returned None"),
        (
            ex.check_expected_td_residual,
            lambda P, R, g, V: R + g * P @ V - V[:, None],
            lambda P, R, g, V: R + g * P @ V,
            r"off at state=\d+, action=\d+ by",
        ),
    ],
)
def test_checker_accepts_right_and_rejects_wrong(checker, right, wrong, expected_message, capsys):
    assert checker(right) is True
    assert "Correct" in capsys.readouterr().out
    with pytest.raises(ex.ExerciseFailure, match=expected_message):
        checker(wrong)


@pytest.mark.parametrize("checker", [ex.check_policy_evaluation, ex.check_v_from_q, ex.check_expected_td_residual])
def test_checker_reports_stub_and_crash(checker):
    with pytest.raises(ex.ExerciseFailure, match="not implemented yet"):
        checker(_stub)
    with pytest.raises(ex.ExerciseFailure, match="raised ZeroDivisionError"):
        checker(lambda *args: 1 / 0)
    assert issubclass(ex.ExerciseFailure, AssertionError)


def test_expected_td_residual_checker_rejects_the_advantage_by_another_route():
    # returning A_pi (right only at V = V_pi) must fail on the arbitrary-V test case
    from companion import mdp as M

    def advantage_only(P, R, gamma, V):
        for _, m, pi in _test_mdps():
            if np.allclose(m.P, P):
                return M.advantage_function(m, pi)
        raise AssertionError("unknown test MDP")

    with pytest.raises(ex.ExerciseFailure, match="with a random V"):
        ex.check_expected_td_residual(advantage_only)


# ----------------------------------------------------------------------------- Chapter 2
def test_reward_to_go_checker():
    from companion.pg import reward_to_go

    assert ex.check_reward_to_go(reward_to_go)
    with pytest.raises(ex.ExerciseFailure, match=r"off at t=\d+"):
        ex.check_reward_to_go(lambda r, g: np.cumsum(r))           # forwards instead of backwards
    with pytest.raises(ex.ExerciseFailure, match="not implemented"):
        ex.check_reward_to_go(_stub)


def test_gaussian_score_checker():
    import sympy as sp

    right = lambda a, mu, s: ((a - mu) / s**2, (a - mu) ** 2 / s**3 - 1 / s)  # noqa: E731
    assert ex.check_gaussian_score(right)
    with pytest.raises(ex.ExerciseFailure, match="d/dsigma component is not the derivative"):
        ex.check_gaussian_score(lambda a, mu, s: ((a - mu) / s**2, (a - mu) ** 2 / s**3))
    with pytest.raises(ex.ExerciseFailure, match="pair"):
        ex.check_gaussian_score(lambda a, mu, s: sp.Integer(0))


def test_action_baseline_checker():
    from companion import pg

    def right(theta, states, actions, rewards, b):
        return pg.reinforce_gradient(theta, states, actions, rewards, 1.0, baseline=b[states, actions])

    assert ex.check_action_baseline_estimator(right)
    with pytest.raises(ex.ExerciseFailure, match="off at state="):
        ex.check_action_baseline_estimator(lambda th, s, a, r, b: pg.reinforce_gradient(th, s, a, r, 1.0))


# ----------------------------------------------------------------------------- Chapter 6
def test_k_step_checker():
    from companion.gae import k_step_advantage

    assert ex.check_k_step_advantage(k_step_advantage)
    with pytest.raises(ex.ExerciseFailure, match=r"off at t=\d+"):
        ex.check_k_step_advantage(lambda r, v, g, k: k_step_advantage(r, v, g, k + 1))


def test_monte_carlo_advantage_checker():
    from companion.pg import reward_to_go

    assert ex.check_monte_carlo_advantage(lambda r, v, g: reward_to_go(r, g) - v)
    with pytest.raises(ex.ExerciseFailure, match="off at t="):
        ex.check_monte_carlo_advantage(lambda r, v, g: reward_to_go(r, 1.0) - v)


# ----------------------------------------------------------------------------- Chapter 4
def test_conjugate_gradient_checker():
    from companion.trpo import conjugate_gradient

    assert ex.check_conjugate_gradient(lambda Avp, b, n: conjugate_gradient(Avp, b, n, tol=0))
    with pytest.raises(ex.ExerciseFailure, match="off at entry="):
        ex.check_conjugate_gradient(lambda Avp, b, n: b / 10)       # not a solve
    with pytest.raises(ex.ExerciseFailure, match="not implemented"):
        ex.check_conjugate_gradient(_stub)


def test_fisher_vector_product_checker():
    import torch

    def right(W, X, v):
        W = W.detach().clone().requires_grad_(True)
        lp_old = torch.log_softmax(X @ W.T, -1).detach()
        kl = (lp_old.exp() * (lp_old - torch.log_softmax(X @ W.T, -1))).sum(-1).mean()
        (g,) = torch.autograd.grad(kl, W, create_graph=True)
        (h,) = torch.autograd.grad((g.reshape(-1) * v).sum(), W)
        return h.reshape(-1)

    assert ex.check_fisher_vector_product(right)
    with pytest.raises(ex.ExerciseFailure, match="off at entry="):
        ex.check_fisher_vector_product(lambda W, X, v: v)            # identity is not the Fisher matrix
    with pytest.raises(ex.ExerciseFailure, match="torch tensor"):
        ex.check_fisher_vector_product(lambda W, X, v: v.numpy())


# ----------------------------------------------------------------------------- Chapter 5
def test_clipped_surrogate_checker():
    import torch

    assert ex.check_clipped_surrogate(lambda r, a, e: torch.minimum(r * a, torch.clamp(r, 1 - e, 1 + e) * a))
    with pytest.raises(ex.ExerciseFailure, match="value is off"):   # the notes' misprint: clip(r A)
        ex.check_clipped_surrogate(lambda r, a, e: torch.minimum(r * a, torch.clamp(r * a, 1 - e, 1 + e)))
    with pytest.raises(ex.ExerciseFailure, match="value is off"):   # max instead of min
        ex.check_clipped_surrogate(lambda r, a, e: torch.maximum(r * a, torch.clamp(r, 1 - e, 1 + e) * a))


def test_approx_kl_checker():
    assert ex.check_approx_kl(lambda new, old: ((new - old).exp() - 1 - (new - old)).mean())
    with pytest.raises(ex.ExerciseFailure, match="naive estimate"):
        ex.check_approx_kl(lambda new, old: (old - new).mean())


def test_a_zero_stub_does_not_reveal_the_reference_answer():
    """The error of an all-zero answer is the reference itself: only a coarse bucket is shown."""
    import re

    from companion import mdp as M

    for stub in (lambda P, R, g, pi: np.zeros(P.shape[0]),
                 lambda P, R, g, pi: np.eye(P.shape[0])[1]):
        with pytest.raises(ex.ExerciseFailure) as info:
            ex.check_policy_evaluation(stub)
        message = str(info.value)
        assert "off at state=" in message
        numbers = [float(x) for x in re.findall(r"[-+]?\d*\.\d+|\d+", message)]
        for _, m, pi in _test_mdps():
            for v in M.value_function(m, pi):
                assert not any(np.isclose(abs(n), abs(v), rtol=1e-2) for n in numbers if n not in (0, 1, 10, 1e-5)), message
