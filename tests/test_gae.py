"""Tests of companion.gae."""

import itertools

import numpy as np
import pytest
import torch

from companion import mdp as M
from companion.gae import (
    episode_boundary_gap,
    gae,
    gae_bias_mixture_gap,
    gae_loops,
    gae_mixture_weights,
    gae_moment_z,
    gae_moments,
    k_step_advantage,
    k_step_bias,
    k_step_bias_gap,
    k_step_mean,
    k_step_mean_z,
    lambda_returns,
    moment_z_scores,
    softmax_gradient_error,
    state_law,
    terminated_identity_failures,
)
from companion.pg import reward_to_go


def plain_gae(r, v, nv, term, trunc, gamma, lam):
    """Independent reference: the definition sum_l (gamma lam)^l delta_{t+l}, cut at episode ends."""
    T = len(r)
    delta = [r[t] + gamma * (1 - term[t]) * nv[t] - v[t] for t in range(T)]
    out = np.zeros(T)
    for t in range(T):
        total, weight = 0.0, 1.0
        for j in range(t, T):
            total += weight * delta[j]
            if term[j] or trunc[j]:
                break
            weight *= gamma * lam
        out[t] = total
    return out


def test_gae_single_terminal_reward_constant_value():
    # SB3-style hand case: reward 1 at the last step, V = 0.5 everywhere, terminated at the end
    r = np.array([0.0, 0.0, 1.0])
    v = np.full(3, 0.5)
    adv = gae(r, v, v, [0, 0, 1], [0, 0, 0], gamma=1.0, lam=1.0)
    assert adv == pytest.approx([0.5, 0.5, 0.5])          # return 1 minus V = 0.5 at every step
    adv0 = gae(r, v, v, [0, 0, 1], [0, 0, 0], gamma=1.0, lam=0.0)
    assert adv0 == pytest.approx([0.0, 0.0, 0.5])         # lambda = 0: the TD residuals


def test_gae_matches_definition_with_mixed_episode_ends():
    rng = np.random.default_rng(0)
    T = 40
    r, v, nv = rng.normal(size=T), rng.normal(size=T), rng.normal(size=T)
    term, trunc = rng.random(T) < 0.1, rng.random(T) < 0.1
    for lam in (0.0, 0.5, 0.95, 1.0):
        assert np.allclose(gae(r, v, nv, term, trunc, 0.9, lam), plain_gae(r, v, nv, term, trunc, 0.9, lam))


def test_gae_batched_equals_columns_and_torch():
    rng = np.random.default_rng(1)
    T, N = 25, 6
    args = [rng.normal(size=(T, N)) for _ in range(3)] + [rng.random((T, N)) < 0.1, rng.random((T, N)) < 0.05]
    out = gae(*args, gamma=0.99, lam=0.9)
    for n in range(N):
        assert np.allclose(out[:, n], gae(*(a[:, n] for a in args), gamma=0.99, lam=0.9))
    out_t = gae(*(torch.as_tensor(a) for a in args), gamma=0.99, lam=0.9)
    assert isinstance(out_t, torch.Tensor) and np.allclose(out_t.numpy(), out)


def test_lambda_one_is_monte_carlo_minus_value_and_returns():
    rng = np.random.default_rng(2)
    r, v = rng.normal(size=10), rng.normal(size=10)
    term = np.zeros(10)
    term[-1] = 1
    nv = np.append(v[1:], 123.0)                        # the value after a terminal step is ignored
    assert np.allclose(gae(r, v, nv, term, np.zeros(10), 0.9, 1.0), reward_to_go(r, 0.9) - v)
    assert np.allclose(lambda_returns(r, v, nv, term, np.zeros(10), 0.9, 1.0), reward_to_go(r, 0.9))


def test_truncation_bootstraps_and_termination_does_not():
    ones = np.ones(1)
    assert gae(ones, 0 * ones, 5 * ones, [1], [0], 0.5, 0.9) == pytest.approx([1.0])
    assert gae(ones, 0 * ones, 5 * ones, [0], [1], 0.5, 0.9) == pytest.approx([3.5])


GOOD = dict(rewards=np.zeros(3), values=np.zeros(3), next_values=np.zeros(3), terminated=[0, 0, 0],
            truncated=[0, 0, 0], gamma=0.9, lam=0.9)
T3 = torch.zeros(3)
TORCH = dict(rewards=T3, values=T3, next_values=T3, terminated=T3, truncated=T3)
Z222 = np.zeros((2, 2, 2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(values=np.zeros(4)), "values must have shape"),
        (dict(next_values=np.zeros((3, 1))), "next_values must have shape"),
        (dict(terminated=[0, 0]), "terminated must have shape"),
        (dict(truncated=np.zeros((3, 2))), "truncated must have shape"),
        (dict(terminated=[0, 2, 0]), "terminated must hold 0/1"),
        (dict(truncated=[0, 0.5, 0]), "truncated must hold 0/1"),
        (dict(terminated=[0, -1, 0]), "terminated must hold 0/1"),
        (dict(rewards=[np.nan, 0, 0]), "rewards contains NaN"),
        (dict(values=[0, np.inf, 0]), "values contains NaN or inf"),
        (dict(next_values=[0, 0, np.nan]), "next_values contains NaN"),
        (dict(terminated=[0, np.nan, 0]), "terminated contains NaN"),
        (dict(rewards=["a", "b", "c"]), "rewards must be an array of numbers"),
        (dict(rewards=Z222, values=Z222, next_values=Z222, terminated=Z222, truncated=Z222),
         r"rewards must have shape \(T,\) or \(T, N\)"),
        (dict(rewards=1.0, values=1.0, next_values=1.0, terminated=0, truncated=0),
         r"rewards must have shape \(T,\) or \(T, N\)"),
        (dict(gamma=1.5), "gamma must lie in"),
        (dict(gamma=-0.1), "gamma must lie in"),
        (dict(gamma=np.nan), "gamma must lie in"),
        (dict(gamma="0.9x"), "gamma must be a number"),
        (dict(lam=-0.1), "lam must lie in"),
        (dict(lam=1.01), "lam must lie in"),
        (dict(lam=np.nan), "lam must lie in"),
        (dict(lam=None), "lam must be a number"),
        (dict(TORCH, values=np.zeros(3)), "values must be a torch tensor"),
        (dict(TORCH, rewards=np.zeros(3)), "rewards must be a torch tensor"),
        (dict(TORCH, truncated=torch.zeros(4)), "truncated must have the shape of rewards"),
        (dict(TORCH, next_values=torch.tensor([0.0, float("nan"), 0.0])), "next_values contains NaN"),
        (dict(TORCH, terminated=torch.tensor([0.0, 3.0, 0.0])), "terminated must hold 0/1"),
    ],
)
def test_gae_refuses_bad_input(kwargs, message):
    args = dict(GOOD)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        gae(**args)


@pytest.mark.parametrize(
    "args, message",
    [
        (([1.0, 1.0], [0.0, 0.0], 0.9, 1), r"values must have shape \(3,\)"),
        (([1.0, 1.0], [0.0, 0.0, 0.0], 0.9, 0), "k must be a positive integer"),
        (([1.0, 1.0], [0.0, 0.0, 0.0], 0.9, 1.5), "k must be a positive integer"),
        (([1.0, 1.0], [0.0, 0.0, 0.0], 0.9, True), "k must be a positive integer"),
        (([1.0, 1.0], [0.0, 0.0, 0.0], 1.2, 1), "gamma must lie in"),
        (([[1.0, 1.0]], [0.0, 0.0, 0.0], 0.9, 1), "rewards must have 1 dimension"),
        (([1.0, np.nan], [0.0, 0.0, 0.0], 0.9, 1), "rewards contains NaN"),
    ],
)
def test_k_step_advantage_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        k_step_advantage(*args)


def test_unusual_but_valid_inputs():
    # an empty rollout gives an empty result, numpy and torch
    empty = gae([], [], [], [], [], 0.9, 0.9)
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    assert gae(np.zeros((0, 4)), *[np.zeros((0, 4))] * 4, 0.9, 0.9).shape == (0, 4)
    e_t = gae(*[torch.zeros(0)] * 5, 0.9, 0.9)
    assert isinstance(e_t, torch.Tensor) and e_t.shape == (0,)
    assert k_step_advantage([], [0.5], 0.9, 3).shape == (0,)
    # lists, bool flags, gamma = lambda = 0 and 1, N = 0 environments
    assert gae([1, 1], [0, 0], [0, 0], [False, True], [False, False], 1.0, 1.0) == pytest.approx([2.0, 1.0])
    assert gae([1, 1], [0, 0], [5, 5], [0, 0], [0, 0], 0.0, 0.0) == pytest.approx([1.0, 1.0])
    assert gae(np.zeros((3, 0)), *[np.zeros((3, 0))] * 4, 0.9, 0.9).shape == (3, 0)
    # torch keeps float32, and integer tensors become float32
    out = gae(torch.ones(2), torch.zeros(2), torch.zeros(2), torch.tensor([False, True]), torch.zeros(2), 0.5, 1.0)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.tensor([1.5, 1.0]))
    ints = [torch.ones(2, dtype=torch.int64)] + [torch.zeros(2, dtype=torch.int64)] * 4
    out_i = gae(*ints, 0.5, 1.0)
    assert out_i.dtype == torch.float32 and torch.allclose(out_i, torch.tensor([1.5, 1.0]))
    assert lambda_returns([1.0], [0.5], [0.0], [1], [0], 0.9, 0.9) == pytest.approx([1.0])


def test_invalid_autoreset_step_does_not_leak():
    # episode ends at steps 2 (terminated) and 4 (truncated); steps 3 and 5 are reset steps
    rng = np.random.default_rng(5)
    r, v, nv = rng.normal(size=6), rng.normal(size=6), rng.normal(size=6)
    term, trunc = np.array([0, 0, 1, 0, 0, 0]), np.array([0, 0, 0, 0, 1, 0])
    base = gae(r, v, nv, term, trunc, 0.9, 0.95)
    for t in (3, 5):
        r2, v2, nv2 = r.copy(), v.copy(), nv.copy()
        r2[t], v2[t], nv2[t] = 7.0, -3.0, 11.0
        moved = gae(r2, v2, nv2, term, trunc, 0.9, 0.95)
        assert np.allclose(base[: t], moved[: t])          # earlier steps are untouched
        assert not np.isclose(base[t], moved[t])             # the reset step itself is garbage


def test_k_step_advantage_by_hand_and_against_gae():
    assert k_step_advantage([1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], 0.5, 2) == pytest.approx([1.5, 1.5, 1.0])
    rng = np.random.default_rng(3)
    r, v = rng.normal(size=12), rng.normal(size=13)
    # k = 1 is the TD residual; k >= T is GAE(lambda = 1) with a bootstrap at the end
    assert np.allclose(k_step_advantage(r, v, 0.9, 1), r + 0.9 * v[1:] - v[:-1])
    trunc = np.zeros(12)
    trunc[-1] = 1
    assert np.allclose(k_step_advantage(r, v, 0.9, 50), gae(r, v[:-1], v[1:], np.zeros(12), trunc, 0.9, 1.0))
    with pytest.raises(ValueError, match="values must have shape"):
        k_step_advantage(r, v[:-1], 0.9, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        k_step_advantage(r, v, 0.9, 0)
    assert np.all(np.isfinite(k_step_advantage(r, v, 0.0, 3)))  # gamma = 0 is fine


# --- exact moments on a tabular MDP -------------------------------------------------------

def enumerate_segments(mdp, pi, s, a, H):
    """Every (probability, states, actions) of H steps from (s, a), later actions from pi."""
    S, A = mdp.n_states, mdp.n_actions
    for rest in itertools.product(range(S), *([range(A), range(S)] * (H - 1))):
        states, actions, p = [s, rest[0]], [a], mdp.P[s, a, rest[0]]
        for j in range(H - 1):
            a_, s_ = rest[1 + 2 * j], rest[2 + 2 * j]
            p *= pi[states[-1], a_] * mdp.P[states[-1], a_, s_]
            actions.append(a_)
            states.append(s_)
        yield p, np.array(states), np.array(actions)


def small_case():
    m = M.random_mdp(3, 2, gamma=0.8, seed=11)
    pi = M.random_policy(3, 2, seed=12)
    V = np.random.default_rng(13).normal(size=3)
    return m, pi, V


def test_gae_moments_and_gradient_error_match_enumeration():
    m, pi, V = small_case()
    H, lams = 3, np.array([0.0, 0.4, 1.0])
    mean, second = gae_moments(m, pi, V, lams, H)
    trunc = np.array([0, 0, 1])
    g_mean, g_second = np.zeros((3, 2)), np.zeros(3)
    A_pi = M.advantage_function(m, pi)
    for s, a in itertools.product(range(3), range(2)):
        m1, m2 = np.zeros(3), np.zeros(3)
        for p, st, ac in enumerate_segments(m, pi, s, a, H):
            for i, lam in enumerate(lams):
                x = gae(m.R[st[:-1], ac], V[st[:-1]], V[st[1:]], np.zeros(H), trunc, m.gamma, lam)[0]
                m1[i] += p * x
                m2[i] += p * x * x
        assert np.allclose(mean[:, s, a], m1) and np.allclose(second[:, s, a], m2)
        if s == 0:
            score = np.eye(2)[a] - pi[0]
            g_mean += pi[0, a] * m1[:, None] * score
            g_second += pi[0, a] * m2 * (score @ score)
    bias2, var = softmax_gradient_error(m, pi, V, 0, lams, H)
    assert np.allclose(bias2, ((g_mean - pi[0] * A_pi[0]) ** 2).sum(axis=1))
    assert np.allclose(var, g_second - (g_mean**2).sum(axis=1))
    assert np.all(var > 0)


def test_k_step_mean_matches_enumeration_and_gae_moments():
    m, pi, V = small_case()
    for k in (1, 2, 3):
        exact = k_step_mean(m, pi, V, k)
        assert np.allclose(exact, gae_moments(m, pi, V, [1.0], k)[0][0])
        for s, a in itertools.product(range(3), range(2)):
            total = 0.0
            for p, st, ac in enumerate_segments(m, pi, s, a, k):
                total += p * k_step_advantage(m.R[st[:-1], ac], V[st], m.gamma, k)[0]
            assert np.isclose(exact[s, a], total)


def test_k_step_bias_formula_and_state_law():
    m, pi, V = small_case()
    assert k_step_bias_gap(k_step_bias, m, pi, V, range(1, 10)) < 1e-12
    assert np.allclose(state_law(m, pi, 0)[1, 0], np.eye(3)[1])
    assert np.allclose(state_law(m, pi, 4).sum(axis=-1), 1.0)
    # a perfect critic: every k-step estimate is unbiased
    assert np.allclose(k_step_bias(m, pi, M.value_function(m, pi), 3), 0.0)


def test_moment_z_scores():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2)) * [1.0, 2.0]
    z_mean, z_var = moment_z_scores(x, [0.0, 0.0], 5.0)
    assert z_mean < 5 and z_var < 5
    assert moment_z_scores(x, [0.1, 0.0], 5.0)[0] > 5
    assert moment_z_scores(x, [0.0, 0.0], 5.5)[1] > 5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, pi, V: gae_moments("mdp", pi, V, [0.5], 3), "mdp must be a companion.mdp.TabularMDP"),
        (lambda m, pi, V: gae_moments(m, pi, V[:2], [0.5], 3), "V must have shape"),
        (lambda m, pi, V: gae_moments(m, pi, V, [1.5], 3), "lams must be numbers in"),
        (lambda m, pi, V: gae_moments(m, pi, V, [0.5], 0), "horizon must be a positive integer"),
        (lambda m, pi, V: gae_moments(m, pi[:, ::-1] * 2, V, [0.5], 3), "sum to 1"),
        (lambda m, pi, V: softmax_gradient_error(m, pi, V, 3, [0.5], 3), "s0 must be in"),
        (lambda m, pi, V: state_law(m, pi, -1), "k must be a non-negative integer"),
        (lambda m, pi, V: k_step_mean(m, pi, V, 0), "k must be a positive integer"),
        (lambda m, pi, V: k_step_bias_gap(k_step_bias, m, pi, V, []), "ks must contain"),
        (lambda m, pi, V: k_step_bias_gap(lambda *a: np.zeros(2), m, pi, V, [1]), "bias"),
        (lambda m, pi, V: moment_z_scores(np.zeros((1, 2)), [0, 0], 1.0), "at least 2 rows"),
        (lambda m, pi, V: moment_z_scores(np.zeros((5, 2)), [0], 1.0), "mean must have shape"),
        (lambda m, pi, V: softmax_gradient_error(m, pi, V, 0, [0.5], 3, target=[1.0]), "target must have shape"),
        (lambda m, pi, V: gae_mixture_weights(1.5, 3), "lam"),
        (lambda m, pi, V: gae_mixture_weights(0.5, 0), "horizon must be a positive integer"),
        (lambda m, pi, V: gae_bias_mixture_gap(m, pi, V, [0.5], 3, weights=lambda lam, H: [1.0]), "weights"),
        (lambda m, pi, V: k_step_mean_z(k_step_mean, m, pi, V, 0, 0, 0, 10, 0), "k must be a positive integer"),
        (lambda m, pi, V: k_step_mean_z(k_step_mean, m, pi, V, 1, 0, 0, 0, 0), "n_samples must be"),
        (lambda m, pi, V: gae_moment_z(m, pi, V, [0.5], [[0, 0], [0, 1]], [[0, 0, 0]], [[0.0, 0.0]]), "actions"),
        (lambda m, pi, V: gae_moment_z(m, pi, V, [0.5], [[0, 0], [0, 9]], [[0, 0]], [[0.0, 0.0]]), "states must be"),
        (lambda m, pi, V: gae_moment_z(m, pi, V, [0.5], [[0, 0], [0, 1]], [[0, 7]], [[0.0, 0.0]]), "actions must be"),
        (lambda m, pi, V: gae_moment_z(m, pi, V, [0.5], [[0, 0], [0, 0]], [[0, 0]], [[0.0]]), "rewards"),
        (lambda m, pi, V: episode_boundary_gap(gae, [0.0, 0.0]), "expected must have shape"),
        (lambda m, pi, V: terminated_identity_failures(0), "T must be a positive integer"),
    ],
)
def test_moment_functions_refuse_bad_input(call, message):
    m, pi, V = small_case()
    with pytest.raises(ValueError, match=message):
        call(m, pi, V)


def test_mixture_weights_sum_to_one_and_loops_match_gae():
    for lam, H in [(0.0, 1), (0.0, 4), (0.7, 5), (1.0, 6)]:
        w = gae_mixture_weights(lam, H)
        assert w.shape == (H,) and np.isclose(w.sum(), 1.0)
    rng = np.random.default_rng(3)
    T, N = 40, 3
    args = [rng.normal(size=(T, N)) for _ in range(3)] + [rng.random((T, N)) < 0.1, rng.random((T, N)) < 0.1]
    assert np.allclose(gae_loops(*args, 0.9, 0.8), gae(*args, 0.9, 0.8))
