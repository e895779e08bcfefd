"""Each check of Chapter 6 rejects the wrong versions its label names.

The chapter calls companion functions (``k_step_bias_gap``, ``moment_z_scores``,
``gae_moments``, ...) or compares two computations; here the same functions and
comparisons are fed the plausible wrong versions, which must be rejected, while the
right version passes.
"""

import numpy as np
import pytest
import sympy as sp

from companion import mdp as M
from companion.gae import (
    gae,
    gae_moments,
    k_step_advantage,
    k_step_bias,
    k_step_bias_gap,
    lambda_returns,
    moment_z_scores,
    softmax_gradient_error,
    state_law,
)
from companion.pg import reward_to_go

SEED = 0


def chapter_mdp():
    mdp = M.random_mdp(8, 3, gamma=0.95, seed=SEED)
    pi = M.random_policy(8, 3, seed=SEED + 1)
    V_true = M.value_function(mdp, pi)
    V_wrong = V_true + np.random.default_rng(SEED + 5).normal(size=8)
    return mdp, pi, V_true, V_wrong


# --- eq. (k-step-bias) ----------------------------------------------------------------


def _e(mdp, pi, V):
    return V - M.value_function(mdp, pi)


def bias_without_minus_e(mdp, pi, V, k):
    return mdp.gamma**k * state_law(mdp, pi, k) @ _e(mdp, pi, V)


def bias_gamma_k_minus_1(mdp, pi, V, k):
    e = _e(mdp, pi, V)
    return mdp.gamma ** (k - 1) * state_law(mdp, pi, k) @ e - e[:, None]


def bias_plus_e(mdp, pi, V, k):
    e = _e(mdp, pi, V)
    return mdp.gamma**k * state_law(mdp, pi, k) @ e + e[:, None]


def bias_law_off_by_one(mdp, pi, V, k):
    e = _e(mdp, pi, V)
    return mdp.gamma**k * state_law(mdp, pi, k - 1) @ e - e[:, None]


def test_k_step_bias_formula_passes():
    mdp, pi, _, V_wrong = chapter_mdp()
    assert k_step_bias_gap(k_step_bias, mdp, pi, V_wrong, range(1, 13)) < 1e-12


@pytest.mark.parametrize("wrong", [bias_without_minus_e, bias_gamma_k_minus_1, bias_plus_e, bias_law_off_by_one])
def test_k_step_bias_check_rejects(wrong):
    mdp, pi, _, V_wrong = chapter_mdp()
    assert k_step_bias_gap(wrong, mdp, pi, V_wrong, range(1, 13)) > 1e-2


# --- the Monte Carlo check of the exact moments ----------------------------------------


def moments_variant(mdp, pi, V, lams, H, variant):
    """gae_moments with one flaw (a copy of the recursion, for the test only)."""
    g = mdp.gamma
    delta = mdp.R[:, :, None] + g * V[None, None, :] - V[:, None, None]
    lams = np.asarray(lams, dtype=float)
    c = (g * lams)[:, None, None, None]
    c2 = c**2 if variant != "lambda_squared" else (lams**2)[:, None, None, None]
    cross = 0.0 if variant == "no_cross_term" else 1.0
    L, S = len(lams), mdp.n_states
    m_next, M_next = np.zeros((L, S)), np.zeros((L, S))
    for _ in range(H):
        mean = np.sum(mdp.P * (delta + c * m_next[:, None, None, :]), axis=-1)
        second = np.sum(
            mdp.P * (delta**2 + cross * 2 * c * delta * m_next[:, None, None, :] + c2 * M_next[:, None, None, :]),
            axis=-1,
        )
        m_next, M_next = np.einsum("sa,lsa->ls", pi, mean), np.einsum("sa,lsa->ls", pi, second)
    return mean, second


def worst_z(variant):
    """The chapter's Monte Carlo check (sigma = 1, its samples) against a claimed set of moments."""
    mdp, pi, V_true, _ = chapter_mdp()
    s0, H, N_EP = 0, 100, 4000
    direction = np.random.default_rng(SEED + 2).normal(size=8)
    lambdas = np.linspace(0, 1, 11)
    states, actions, rewards = M.sample_batch(mdp, pi, N_EP, H, start_state=s0, seed=SEED + 3)
    last = np.zeros((H, N_EP), dtype=bool)
    last[-1] = True
    scores = np.eye(3)[actions[0]] - pi[s0]
    V_hat = V_true + direction
    if variant is None:
        mean, second = gae_moments(mdp, pi, V_hat, lambdas, H)
        _, var_lib = softmax_gradient_error(mdp, pi, V_hat, s0, lambdas, H)
    else:
        mean, second = moments_variant(mdp, pi, V_hat, lambdas, H, variant)
    g_mean = np.einsum("a,la,ab->lb", pi[s0], mean[:, s0], np.eye(3) - pi[s0])
    g_second = np.einsum("a,la,a->l", pi[s0], second[:, s0], ((np.eye(3) - pi[s0]) ** 2).sum(axis=1))
    var = g_second - (g_mean**2).sum(axis=1)
    if variant is None:
        assert np.allclose(var, var_lib)
    z = 0.0
    for i, lam in enumerate(lambdas):
        A0 = gae(rewards, V_hat[states[:-1]], V_hat[states[1:]], np.zeros((H, N_EP)), last, mdp.gamma, lam)[0]
        z = max(z, *moment_z_scores(A0[:, None] * scores, g_mean[i], var[i]))
    return z


def test_moment_check_passes_with_the_exact_moments():
    assert worst_z(None) < 5


@pytest.mark.parametrize("variant", ["no_cross_term", "lambda_squared"])
def test_moment_check_rejects_wrong_moments(variant):
    assert worst_z(variant) > 5


# --- GAE bias as a mixture of k-step biases ---------------------------------------------


def mixture_gap(weights, bias_fn=k_step_bias, tail=True):
    mdp, pi, V_true, _ = chapter_mdp()
    H, lambdas = 100, np.linspace(0, 1, 11)
    V_hat = V_true + np.random.default_rng(SEED + 2).normal(size=8)
    mean, _ = gae_moments(mdp, pi, V_hat, lambdas, H)
    A_all = M.advantage_function(mdp, pi)
    bias_k = np.stack([bias_fn(mdp, pi, V_hat, k) for k in range(1, H + 1)])
    gap = 0.0
    for i, lam in enumerate(lambdas):
        w = weights(lam, H)
        mixture = np.tensordot(w, bias_k[:-1], axes=1) + (lam ** (H - 1) * bias_k[-1] if tail else 0)
        gap = max(gap, np.max(np.abs(mean[i] - A_all - mixture)))
    return gap


def right_weights(lam, H):
    return (1 - lam) * lam ** np.arange(H - 1)


def test_gae_bias_mixture_check():
    assert mixture_gap(right_weights) < 1e-10
    assert mixture_gap(lambda lam, H: (1 - lam) * lam ** np.arange(1, H)) > 1e-3  # lambda^k
    assert mixture_gap(right_weights, tail=False) > 1e-3  # no tail weight
    assert mixture_gap(right_weights, bias_fn=bias_gamma_k_minus_1) > 1e-3


# --- SymPy steps ---------------------------------------------------------------------------


def peel_last(expr):
    def peel(su):
        (var, lo, hi), f = su.limits[0], su.function
        return sp.Sum(f, (var, lo, hi - 1)) + f.subs(var, hi)

    return expr.replace(lambda e: isinstance(e, sp.Sum), peel)


@pytest.mark.parametrize("boot_power, right", [(lambda k: k, True), (lambda k: k - 1, False), (lambda k: k + 1, False)])
def test_induction_rejects_wrong_bootstrap(boot_power, right):
    """The chapter's induction (base case and step) passes only for the bootstrap gamma^k."""
    g = sp.Symbol("gamma", positive=True)
    k, l = sp.symbols("k l", integer=True, nonnegative=True)
    r, V = sp.IndexedBase("r"), sp.IndexedBase("V")

    def delta(j):
        return r[j] + g * V[j + 1] - V[j]

    def A(kk):
        return -V[0] + sp.Sum(g**l * r[l], (l, 0, kk - 1)) + g ** boot_power(kk) * V[kk]

    base = sp.expand(A(1).doit() - delta(0)) == 0
    step = sp.expand(peel_last(A(k + 1)) - A(k) - g**k * delta(k)) == 0
    assert (base and step) == right


def test_weight_identity_rejects_wrong_weights():
    lam = sp.Symbol("lambda", positive=True)
    l_ = sp.Symbol("l", integer=True, nonnegative=True)
    kk, T_ = sp.symbols("k T", integer=True, positive=True)
    wrong = (1 - lam) * sp.summation(lam**kk, (kk, l_ + 1, T_ - 1)) + lam ** (T_ - 1)
    assert sp.simplify(wrong - lam**l_) != 0
    no_factor = sp.summation(lam ** (kk - 1), (kk, l_ + 1, T_ - 1)) + lam ** (T_ - 1)
    assert sp.simplify(no_factor - lam**l_) != 0


# --- the exact instance checks of the chapter ---------------------------------------------


def direct_k_step(rew, vals, k, gamma=0.9, boot_power=lambda n: n, bootstrap=True):
    """The chapter's term-by-term k-step estimate, optionally with a wrong bootstrap."""
    out = []
    for t in range(len(rew)):
        n = min(k, len(rew) - t)
        boot = gamma ** boot_power(n) * vals[t + n] if bootstrap else 0.0
        out.append(-vals[t] + sum(gamma**l * rew[t + l] for l in range(n)) + boot)
    return np.array(out)


def test_k_step_instance_check_rejects():
    rng = np.random.default_rng(SEED)
    rew, vals = rng.normal(size=10), rng.normal(size=11)
    for k in (3, 10):
        assert np.allclose(k_step_advantage(rew, vals, 0.9, k), direct_k_step(rew, vals, k))
        # no bootstrap at the end of the segment; bootstrap with gamma^(k-1)
        assert not np.allclose(k_step_advantage(rew, vals, 0.9, k), direct_k_step(rew, vals, k, bootstrap=False))
        wrong_power = direct_k_step(rew, vals, k, boot_power=lambda n: n - 1)
        assert not np.allclose(k_step_advantage(rew, vals, 0.9, k), wrong_power)


def _no_stop(r, v, nv, term, gamma, lam):
    delta = r + gamma * (1 - term) * nv - v
    out, running = np.zeros_like(r), 0.0
    for t in reversed(range(len(r))):
        running = delta[t] + gamma * lam * running  # does not stop at episode ends
        out[t] = running
    return out


def test_invalid_step_check_rejects_recursion_without_stop():
    rng = np.random.default_rng(SEED + 7)
    r6, v6, nv6 = rng.normal(size=6), rng.normal(size=6), rng.normal(size=6)
    term6 = np.array([0, 1, 0, 0, 0, 0])
    valid = np.array([True, True, False, True, True, True])
    base = _no_stop(r6, v6, nv6, term6, 0.9, 0.95)
    r6[2], v6[2], nv6[2] = rng.normal(size=3) * 10
    moved = _no_stop(r6, v6, nv6, term6, 0.9, 0.95)
    assert not np.allclose(base[valid], moved[valid])


def test_lambda_returns_check_rejects_advantage():
    rew, vals = np.array([1.0, 0.0, 2.0, 1.0]), np.array([0.3, -0.2, 0.5, 0.1])
    nv = np.append(vals[1:], 5.0)
    adv = gae(rew, vals, nv, [0, 0, 0, 1], [0, 0, 0, 0], 0.9, 1.0)
    assert not np.allclose(adv, reward_to_go(rew, 0.9))
    boot = lambda_returns(rew, vals, nv, [0, 0, 0, 0], [0, 0, 0, 1], 0.9, 1.0)  # bootstraps after the end
    assert not np.allclose(boot, reward_to_go(rew, 0.9))


# --- the Monte Carlo check of k_step_mean -------------------------------------------------


def kmean_z(reference):
    mdp, pi, _, V_wrong = chapter_mdp()
    k, n = 3, 200_000
    st, _, rw = M.sample_batch(mdp, pi, n, k, start_state=2, start_action=1, seed=SEED + 6)
    samples = mdp.gamma ** np.arange(k) @ rw + mdp.gamma**k * V_wrong[st[k]] - V_wrong[2]
    return abs(samples.mean() - reference) / (samples.std(ddof=1) / np.sqrt(n))


def test_k_step_mean_monte_carlo_check():
    from companion.gae import k_step_mean

    mdp, pi, _, V_wrong = chapter_mdp()
    assert kmean_z(k_step_mean(mdp, pi, V_wrong, 3)[2, 1]) < 5
    for wrong_k in (1, 5):  # two steps too few or too many
        assert kmean_z(k_step_mean(mdp, pi, V_wrong, wrong_k)[2, 1]) > 5
    # no discounting anywhere: k - 1 undiscounted backups, undiscounted bootstrap
    P_pi, r_pi = M.policy_transition_matrix(mdp, pi), M.policy_reward(mdp, pi)
    W = V_wrong
    for _ in range(2):
        W = r_pi + P_pi @ W
    assert kmean_z((mdp.R + mdp.P @ W - V_wrong[:, None])[2, 1]) > 5
