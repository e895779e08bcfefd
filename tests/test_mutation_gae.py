"""Tests of ``companion.gae`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from companion import mdp as M
from companion.gae import (
    BOUNDARY_EXAMPLE,
    episode_boundary_gap,
    gae,
    gae_bias_mixture_gap,
    gae_loops_gap,
    gae_mixture_weights,
    gae_moment_z,
    gae_moments,
    k_step_advantage,
    k_step_bias,
    k_step_bias_gap,
    k_step_mean,
    k_step_mean_z,
    moment_z_scores,
    state_law,
    terminated_identity_failures,
)


def small_case():
    m = M.random_mdp(3, 2, gamma=0.8, seed=11)
    pi = M.random_policy(3, 2, seed=12)
    V = np.random.default_rng(13).normal(size=3)
    return m, pi, V


def batch(m, pi, H=4, N=50, s0=0, seed=0):
    states, actions, rewards = M.sample_batch(m, pi, N, H, start_state=s0, seed=seed)
    return states, actions, rewards


# ---------------------------------------------------------------- messages name the argument
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, pi, V: k_step_bias(m, pi, V, 0), r"^k must be a positive integer"),
        (
            lambda m, pi, V: state_law(m, pi, True),
            r"^k must be a non-negative integer, got True",
        ),
        (
            lambda m, pi, V: state_law(m, pi, 1.0),
            r"^k must be a non-negative integer, got 1\.0",
        ),
        (lambda m, pi, V: state_law(m, pi, -1), r"^k must be a non-negative integer"),
        (
            lambda m, pi, V: gae_moments(m, pi, V, [0.5, np.nan], 3),
            r"^lams contains NaN",
        ),
        (
            lambda m, pi, V: gae_bias_mixture_gap(m, pi, V, [0.5], 0),
            r"^horizon must be a positive integer",
        ),
        (
            lambda m, pi, V: gae_bias_mixture_gap(m, pi, V, [np.inf], 2),
            r"^lams contains NaN or inf",
        ),
        (
            lambda m, pi, V: gae_bias_mixture_gap(
                m, pi, V, [0.5], 3, weights=lambda lam, H: [1.0]
            ),
            r"^weights\(lam, H\) must have shape \(3,\), got \(1,\)$",
        ),
        (lambda m, pi, V: gae_mixture_weights(1.5, 3), r"^lam must lie in \[0, 1\]"),
        (
            lambda m, pi, V: k_step_bias_gap(k_step_bias, m, pi, V, []),
            r"^ks must contain at least one k$",
        ),
        (
            lambda m, pi, V: k_step_bias_gap(lambda *a: np.zeros(3), m, pi, V, [1]),
            r"^bias\(mdp, pi, V, k\) must have shape \(3, 2\), got \(3,\)$",
        ),
        (
            lambda m, pi, V: k_step_mean_z(
                lambda *a: np.zeros(2), m, pi, V, 1, 0, 0, 10, 0
            ),
            r"^reference\(\.\.\.\) must have shape \(3, 2\), got \(2,\)$",
        ),
        (
            lambda m, pi, V: k_step_mean(1, pi, V, 1),
            r"^mdp must be a companion\.mdp\.TabularMDP, got int$",
        ),
        (
            lambda m, pi, V: moment_z_scores(np.zeros(5), [0.0], 1.0),
            r"^samples must have 2 dimension",
        ),
        (
            lambda m, pi, V: moment_z_scores(np.zeros((5, 1)), [0.0], [1.0]),
            r"^var must have shape \(\), got \(1,\)$",
        ),
        (
            lambda m, pi, V: moment_z_scores(np.zeros((5, 1)), [0.0], np.nan),
            r"^var contains NaN",
        ),
        (
            lambda m, pi, V: moment_z_scores([[0.0], [np.nan]], [0.0], 1.0),
            r"^samples contains NaN",
        ),
        (
            lambda m, pi, V: episode_boundary_gap(lambda **kw: np.zeros(1), [0.0] * 4),
            r"^gae_fn\(\.\.\.\) must have shape \(4,\)",
        ),
        (
            lambda m, pi, V: gae_loops_gap(
                lambda **kw: np.zeros(1), _loops_batch(), 0.9, 0.9
            ),
            r"^gae_fn\(\.\.\.\) must have shape \(3, 2\), got \(1,\)$",
        ),
        (
            lambda m, pi, V: gae_loops_gap(
                lambda **kw: np.full((3, 2), np.nan), _loops_batch(), 0.9, 0.9
            ),
            r"^gae_fn\(\.\.\.\) contains NaN",
        ),
        (
            lambda m, pi, V: gae([1.0], [0.0], [0.0], [0], torch.zeros(1), 0.9, 0.9),
            r"^rewards must be a torch tensor .* got list$",
        ),
        (
            lambda m, pi, V: gae(
                [1.0], [0.0], [0.0], torch.zeros(1), torch.zeros(1), 0.9, 0.9
            ),
            r"^rewards must be a torch tensor",
        ),
    ],
)
def test_messages_start_with_the_argument(call, message):
    m, pi, V = small_case()
    with pytest.raises(ValueError, match=message):
        call(m, pi, V)


def _loops_batch():
    rng = np.random.default_rng(0)
    return dict(
        rewards=rng.normal(size=(3, 2)),
        values=rng.normal(size=(3, 2)),
        next_values=rng.normal(size=(3, 2)),
        terminated=np.array([[0, 0], [1, 0], [0, 0]], dtype=float),
        truncated=np.array([[0, 0], [0, 0], [0, 1]], dtype=float),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(states=lambda s: s[:, :, None]), r"^states must have 2 dimension"),
        (
            dict(
                states=lambda s: np.concatenate([s[:, :1], (s[:, 1:] + 1) % 3], axis=1)
            ),
            r"^states must all start in the same state$",
        ),
        (
            dict(
                rewards=lambda r: np.where(
                    np.arange(r.size).reshape(r.shape) == 3, np.nan, r
                )
            ),
            r"^rewards contains NaN",
        ),
        (dict(lams=lambda l: [0.5, np.nan]), r"^lams contains NaN"),
        (
            dict(
                states=lambda s: np.where(
                    np.arange(s.size).reshape(s.shape) == s.shape[1] + 1, 3, s
                )
            ),
            r"^states must be integers in \[0, 3\)$",
        ),
        (
            dict(
                actions=lambda a: np.where(
                    np.arange(a.size).reshape(a.shape) == 1, 2, a
                )
            ),
            r"^actions must be integers in \[0, 2\)$",
        ),
        (dict(actions=lambda a: a[:-1]), r"^actions must have shape"),
    ],
)
def test_gae_moment_z_refuses_bad_batches(change, message):
    m, pi, V = small_case()
    states, actions, rewards = batch(m, pi)
    args = dict(states=states, actions=actions, rewards=rewards, lams=[0.5])
    for key, f in change.items():
        args[key] = f(args[key])
    with pytest.raises(ValueError, match=message):
        gae_moment_z(
            m, pi, V, args["lams"], args["states"], args["actions"], args["rewards"]
        )


# ---------------------------------------------------------------- values against independent computations
def independent_moment_z(x, mean, var):
    n = x.shape[0]
    xbar = x.mean(axis=0)
    z_mean = max(
        abs(xbar[i] - mean[i]) / (np.std(x[:, i], ddof=1) / np.sqrt(n))
        for i in range(x.shape[1])
    )
    sq = np.array([np.sum((row - xbar) ** 2) for row in x])
    v_hat = np.sum(sq) / (n - 1)
    z_var = abs(v_hat - var) / (np.std(sq, ddof=1) / np.sqrt(n))
    return z_mean, z_var


def test_moment_z_scores_match_the_definition_with_columns_of_different_spread():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(7, 3)) * np.array([0.1, 1.0, 10.0])
    mean, var = np.array([0.05, -0.2, 1.0]), 40.0
    assert moment_z_scores(x, mean, var) == pytest.approx(
        independent_moment_z(x, mean, var), rel=1e-12
    )
    # three samples, and two are enough for the mean
    x3 = x[:3]
    assert moment_z_scores(x3, mean, var) == pytest.approx(
        independent_moment_z(x3, mean, var), rel=1e-12
    )
    x2 = x[:2]
    z_mean2 = np.max(
        np.abs(x2.mean(axis=0) - mean) / (np.std(x2, axis=0, ddof=1) / np.sqrt(2))
    )
    assert moment_z_scores(x2, mean, var)[0] == pytest.approx(z_mean2, rel=1e-12)


def independent_gae_moment_z(
    m, pi, V, lams, states, actions, rewards, moments=gae_moments
):
    """gae_moment_z written out: A_0 by the definition, the moments of g, the z-scores."""
    H, N = rewards.shape
    s0 = int(states[0, 0])
    mean, second = moments(m, pi, V, lams, H)
    worst, A = 0.0, []
    for i, lam in enumerate(lams):
        a0 = np.array(
            [
                sum(
                    (m.gamma * lam) ** l
                    * (rewards[l, n] + m.gamma * V[states[l + 1, n]] - V[states[l, n]])
                    for l in range(H)
                )
                for n in range(N)
            ]
        )
        A.append(a0)
        scores = np.eye(m.n_actions)[actions[0]] - pi[s0]
        g = a0[:, None] * scores
        s = np.eye(m.n_actions) - pi[s0]
        g_mean = sum(pi[s0, a] * mean[i, s0, a] * s[a] for a in range(m.n_actions))
        g_second = sum(
            pi[s0, a] * second[i, s0, a] * s[a] @ s[a] for a in range(m.n_actions)
        )
        zs = independent_moment_z(g, g_mean, g_second - g_mean @ g_mean)
        worst = max(worst, *zs)
    return worst, np.array(A)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gae_moment_z_matches_an_independent_computation(seed):
    m, pi, V = small_case()
    lams = [0.0, 0.5, 0.9]
    states, actions, rewards = batch(m, pi, N=40, seed=seed)
    worst, A = gae_moment_z(m, pi, V, lams, states, actions, rewards)
    ref_worst, ref_A = independent_gae_moment_z(
        m, pi, V, lams, states, actions, rewards
    )
    np.testing.assert_allclose(A, ref_A, rtol=1e-10, atol=1e-12)
    assert worst == pytest.approx(ref_worst, rel=1e-9)
    # whole-number float actions are accepted
    worst_f, _ = gae_moment_z(m, pi, V, lams, states, actions.astype(float), rewards)
    assert worst_f == worst


def test_gae_moment_z_reports_the_worst_lambda_even_when_it_is_not_the_last():
    m, pi, V = small_case()
    states, actions, rewards = batch(m, pi, N=200, seed=5)

    def wrong_first(mdp, pi_, V_, lams, H):
        mean, second = gae_moments(mdp, pi_, V_, lams, H)
        mean = mean.copy()
        mean[0, :, 0] += 5.0  # a wrong claim for the first lambda only
        return mean, second

    worst, _ = gae_moment_z(
        m, pi, V, [0.3, 0.7], states, actions, rewards, moments=wrong_first
    )
    ref, _ = independent_gae_moment_z(
        m, pi, V, [0.3, 0.7], states, actions, rewards, moments=wrong_first
    )
    last_only, _ = gae_moment_z(
        m, pi, V, [0.7], states, actions, rewards
    )  # the claim for 0.7 is right
    assert worst == pytest.approx(ref, rel=1e-9)
    assert worst > 5 > last_only


def test_gae_moment_z_small_z_is_not_rounded_up():
    """A consistent claim on a large batch gives z-scores below 1 for some seed; they are reported as such."""
    m, pi, V = small_case()
    found = False
    for seed in range(30):
        states, actions, rewards = batch(m, pi, N=60, seed=seed)
        ref, _ = independent_gae_moment_z(m, pi, V, [0.5], states, actions, rewards)
        if ref < 1:
            worst, _ = gae_moment_z(m, pi, V, [0.5], states, actions, rewards)
            assert worst == pytest.approx(ref, rel=1e-9)
            found = True
            break
    assert found


def test_k_step_mean_z_matches_an_independent_computation_and_is_reproducible():
    m, pi, V = small_case()
    k, state, action, n, seed = 3, 1, 0, 50, 7
    z = k_step_mean_z(k_step_mean, m, pi, V, k, state, action, n, seed)
    assert z == k_step_mean_z(k_step_mean, m, pi, V, k, state, action, n, seed)
    st, _, rw = M.sample_batch(
        m, pi, n, k, start_state=state, start_action=action, seed=seed
    )
    x = np.array(
        [
            sum(m.gamma**l * rw[l, j] for l in range(k))
            + m.gamma**k * V[st[k, j]]
            - V[state]
            for j in range(n)
        ]
    )
    ref = abs(x.mean() - k_step_mean(m, pi, V, k)[state, action]) / (
        np.std(x, ddof=1) / np.sqrt(n)
    )
    assert z == pytest.approx(ref, rel=1e-10)


def test_k_step_advantage_accepts_gamma_one():
    r, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.25, 1.0, 4.0])
    out = k_step_advantage(r, v, 1.0, 2)
    np.testing.assert_allclose(
        out, [1 + 2 + 1.0 - 0.5, 2 + 3 + 4.0 - 0.25, 3 + 4.0 - 1.0]
    )


def test_gae_with_integer_torch_rewards_gives_float32():
    out = gae(
        torch.tensor([1, 2]),
        torch.tensor([0, 0]),
        torch.tensor([1, 1]),
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        0.5,
        0.5,
    )
    assert out.dtype == torch.float32
    # delta = [1 + 0.5, 2], A_1 = 2 (terminated), A_0 = 1.5 + 0.25 * 2
    torch.testing.assert_close(out, torch.tensor([2.0, 2.0]))


def test_gae_loops_gap_detaches_torch_outputs():
    b = _loops_batch()

    def torch_gae(**kw):
        out = gae(
            **{k: torch.tensor(v) for k, v in kw.items() if k not in ("gamma", "lam")},
            gamma=kw["gamma"],
            lam=kw["lam"],
        )
        return out.requires_grad_(True)

    assert gae_loops_gap(torch_gae, b, 0.9, 0.8) < 1e-12


def test_episode_boundary_gap_of_a_broadcasting_answer_is_refused():
    ref = gae(**BOUNDARY_EXAMPLE)
    assert episode_boundary_gap(gae, ref) < 1e-12
    with pytest.raises(
        ValueError, match=r"^gae_fn\(\.\.\.\) must have shape \(4,\), got \(1,\)$"
    ):
        episode_boundary_gap(lambda **kw: np.array([ref[0]]), ref)


def test_terminated_identity_failures_calls_weight_for_k_1_to_T():
    seen = []

    def weight(k, lam, T):
        seen.append(k)
        return lam ** (T - 1) if k == T else (1 - lam) * lam ** (k - 1)

    assert terminated_identity_failures(3, weight=weight) == []
    assert sorted(seen) == [1, 2, 3]


def test_terminated_identity_failures_catches_lambda_in_place_of_gamma():
    lam = sp.Symbol("lambda", positive=True)

    def residual(l, r, V, gamma, T):  # the bug: lambda where gamma belongs
        return r[l] + lam * (V[l + 1] if l + 1 < T else 0) - V[l]

    failures = terminated_identity_failures(3, residual=residual)
    assert failures == [
        "lambda = 0 is the TD residual",
        "lambda = 1 is Monte Carlo minus V",
    ]


def test_gae_moment_z_needs_two_segments():
    m, pi, V = small_case()
    states, actions, rewards = batch(m, pi, N=1)
    with pytest.raises(ValueError, match=r"^samples needs at least 2 rows, got 1$"):
        gae_moment_z(m, pi, V, [0.5], states, actions, rewards)


def test_gae_with_integer_torch_rewards_keeps_float_values():
    # integer rewards do not make the other arguments integers: V = 0.5 stays 0.5
    out = gae(
        torch.tensor([1, 0]),
        torch.tensor([0.5, 0.5]),
        torch.tensor([0.5, 0.5]),
        torch.tensor([0, 1]),
        torch.tensor([0, 0]),
        1.0,
        1.0,
    )
    # delta = [1 + 0.5 - 0.5, 0 - 0.5] (terminated), A_0 = 1 + A_1
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5]))
