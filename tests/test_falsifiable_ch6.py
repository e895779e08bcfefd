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
    lambda_returns,
    softmax_gradient_error,
    state_law,
    terminated_identity_failures,
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


# --- the Monte Carlo check of the exact moments (gae_moment_z) -------------------------


def moments_variant(mdp, pi, V, lams, H, variant):
    """gae_moments with one flaw (a copy of the recursion, for the test only)."""
    if variant == "horizon_short":
        H = H - 1
    if variant == "horizon_long":
        H = H + 1
    g = mdp.gamma
    delta = mdp.R[:, :, None] + g * V[None, None, :] - V[:, None, None]
    # a last step that is terminal: no bootstrap in the residual of step H - 1
    delta_last = mdp.R[:, :, None] - V[:, None, None] + 0 * V[None, None, :]
    lams = np.asarray(lams, dtype=float)
    c = (g * lams)[:, None, None, None]
    c2 = c**2 if variant != "lambda_squared" else (lams**2)[:, None, None, None]
    cross = 0.0 if variant == "no_cross_term" else 1.0
    L, S = len(lams), mdp.n_states
    m_next, M_next = np.zeros((L, S)), np.zeros((L, S))
    for j in range(H):
        d = delta_last if (j == 0 and variant == "terminal_last") else delta
        mean = np.sum(mdp.P * (d + c * m_next[:, None, None, :]), axis=-1)
        second = np.sum(
            mdp.P * (d**2 + cross * 2 * c * d * m_next[:, None, None, :] + c2 * M_next[:, None, None, :]),
            axis=-1,
        )
        m_next, M_next = np.einsum("sa,lsa->ls", pi, mean), np.einsum("sa,lsa->ls", pi, second)
    return mean, second


LAMBDAS = np.linspace(0, 1, 11)
SIGMAS = [0.0, 0.5, 1.0, 2.0]


def chapter_moment_z(variant, short):
    """The chapter's check (all sigmas, its samples) against a claimed set of moments."""
    mdp, pi, V_true, _ = chapter_mdp()
    direction = np.random.default_rng(SEED + 2).normal(size=8)
    if short:
        batch = M.sample_batch(mdp, pi, 50_000, 5, start_state=0, seed=SEED + 4)
    else:
        batch = M.sample_batch(mdp, pi, 4000, 100, start_state=0, seed=SEED + 3)
    moments = gae_moments if variant is None else (lambda *a: moments_variant(*a, variant))
    sigmas = SIGMAS if short else [1.0]  # the long-run rejections show at sigma = 1 already
    return max(
        gae_moment_z(mdp, pi, V_true + s * direction, LAMBDAS, *batch, moments=moments)[0]
        for s in sigmas
    )


def test_moment_check_passes_with_the_exact_moments():
    assert chapter_moment_z(None, short=False) < 5
    assert chapter_moment_z(None, short=True) < 5
    # the variant function itself is a faithful copy when unflawed
    mdp, pi, V_true, _ = chapter_mdp()
    for a, b in zip(moments_variant(mdp, pi, V_true, LAMBDAS, 5, None), gae_moments(mdp, pi, V_true, LAMBDAS, 5)):
        assert np.allclose(a, b)


@pytest.mark.parametrize("variant", ["no_cross_term", "lambda_squared"])
def test_moment_check_rejects_wrong_moments(variant):
    assert chapter_moment_z(variant, short=False) > 5


@pytest.mark.parametrize("variant", ["horizon_short", "horizon_long", "terminal_last"])
def test_short_moment_check_rejects_wrong_horizon_handling(variant):
    assert chapter_moment_z(variant, short=True) > 5


def test_long_moment_check_cannot_see_the_horizon():
    """What the chapter says the H = 100 run cannot see (hence the H = 5 run)."""
    assert chapter_moment_z("horizon_short", short=False) < 5
    assert chapter_moment_z("terminal_last", short=False) < 5


def test_gae_moment_z_returns_the_samples_of_gae():
    mdp, pi, V_true, _ = chapter_mdp()
    st, ac, rw = M.sample_batch(mdp, pi, 50, 7, start_state=0, seed=1)
    _, A_hat = gae_moment_z(mdp, pi, V_true, [0.0, 1.0], st, ac, rw)
    last = np.zeros((7, 50))
    last[-1] = 1
    direct = gae(rw, V_true[st[:-1]], V_true[st[1:]], np.zeros((7, 50)), last, mdp.gamma, 1.0)[0]
    assert A_hat.shape == (2, 50) and np.allclose(A_hat[1], direct)
    assert np.allclose(A_hat[0], rw[0] + mdp.gamma * V_true[st[1]] - V_true[st[0]])


# --- GAE bias as a mixture of k-step biases (gae_bias_mixture_gap) ------------------------


def _mixture(**kw):
    mdp, pi, V_true, _ = chapter_mdp()
    V_hat = V_true + np.random.default_rng(SEED + 2).normal(size=8)
    return gae_bias_mixture_gap(mdp, pi, V_hat, LAMBDAS, 100, **kw)


def weights_lambda_k(lam, H):
    w = (1 - lam) * lam ** np.arange(1, H + 1, dtype=float)
    w[-1] = lam**H
    return w


def weights_no_tail(lam, H):
    w = gae_mixture_weights(lam, H)
    w[-1] = 0.0
    return w


def test_gae_bias_mixture_check():
    assert _mixture() < 1e-10
    assert _mixture(weights=weights_lambda_k) > 1e-3
    assert _mixture(weights=weights_no_tail) > 1e-3
    assert _mixture(bias=bias_gamma_k_minus_1) > 1e-3


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


# --- the worked example (episode_boundary_gap) ---------------------------------------------

BY_HAND = [-0.25, -1.0, 1.0, 0.0]


def gae_variant(rewards, values, next_values, terminated, truncated, gamma, lam, flaw):
    r, v, nv = (np.asarray(x, dtype=float) for x in (rewards, values, next_values))
    term, trunc = np.asarray(terminated, dtype=float), np.asarray(truncated, dtype=float)
    if flaw == "truncation_as_termination":
        term, trunc = np.maximum(term, trunc), 0 * trunc
    delta = r + gamma * (1 - term) * nv - v
    done = np.maximum(term, trunc)
    out, running = np.zeros_like(r), 0.0
    for t in reversed(range(len(r))):
        if flaw == "no_stop":
            running = delta[t] + gamma * lam * running
        elif flaw == "no_lambda":
            running = delta[t] + gamma * (1 - done[t]) * running
        else:
            running = delta[t] + gamma * lam * (1 - done[t]) * running
        out[t] = running
    return out


def test_worked_example_passes_the_right_recursion():
    assert episode_boundary_gap(gae, BY_HAND) < 1e-12
    assert episode_boundary_gap(lambda **kw: gae_variant(**kw, flaw=None), BY_HAND) < 1e-12


@pytest.mark.parametrize("flaw", ["no_stop", "no_lambda", "truncation_as_termination"])
def test_worked_example_rejects(flaw):
    assert episode_boundary_gap(lambda **kw: gae_variant(**kw, flaw=flaw), BY_HAND) > 0.1


def test_worked_example_matches_the_numbers_in_the_text():
    """The hand computation of the chapter: V = 2, gamma = lambda = 0.5."""
    assert BOUNDARY_EXAMPLE["gamma"] == 0.5 and BOUNDARY_EXAMPLE["lam"] == 0.5
    assert np.allclose(BOUNDARY_EXAMPLE["rewards"], [1, 1, 2, 1])
    assert np.allclose(BOUNDARY_EXAMPLE["values"], 2) and np.allclose(BOUNDARY_EXAMPLE["next_values"], 2)


# --- the plain loops against the vectorised gae (gae_loops_gap) ----------------------------


def _batch(T=300, N=8):
    rng = np.random.default_rng(SEED)
    return dict(
        rewards=rng.normal(size=(T, N)),
        values=rng.normal(size=(T, N)),
        next_values=rng.normal(size=(T, N)),
        terminated=rng.random((T, N)) < 0.01,
        truncated=rng.random((T, N)) < 0.005,
    )


def vectorised_variant(rewards, values, next_values, terminated, truncated, gamma, lam, flaw):
    term, trunc = terminated.astype(float), truncated.astype(float)
    delta = rewards + gamma * (1 - term) * next_values - values
    not_done = (1 - term) * (1 - trunc)
    if flaw == "flag_next_step":  # the done flag of step t + 1 used at step t
        not_done = np.vstack([not_done[1:], np.ones((1, not_done.shape[1]))])
    if flaw == "values_off_by_one":  # V(s_t) taken from the next row
        delta = rewards + gamma * (1 - term) * next_values - np.vstack([values[1:], values[-1:]])
    adv, running = np.zeros_like(rewards), np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        running = delta[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv


def test_loops_check_passes_right_and_rejects_off_by_one():
    batch = _batch()
    assert gae_loops_gap(gae, batch, 0.99, 0.95) < 1e-10
    assert gae_loops_gap(lambda **kw: vectorised_variant(**kw, flaw=None), batch, 0.99, 0.95) < 1e-10
    for flaw in ("flag_next_step", "values_off_by_one"):
        assert gae_loops_gap(lambda flaw=flaw, **kw: vectorised_variant(**kw, flaw=flaw), batch, 0.99, 0.95) > 1e-3


# --- the T = 5 SymPy check (terminated_identity_failures) ----------------------------------


def test_terminated_identity_passes():
    assert terminated_identity_failures(5) == []


def test_terminated_identity_rejects_a_bootstrap_at_the_terminal_step():
    V_T = sp.Symbol("V_5", real=True)

    def bootstrapping(l, r, V, gamma, T):
        return r[l] + gamma * (V[l + 1] if l + 1 < T else V_T) - V[l]

    failures = terminated_identity_failures(5, residual=bootstrapping)
    assert "lambda = 1 is Monte Carlo minus V" in failures


@pytest.mark.parametrize(
    "weight",
    [
        lambda k, lam, T: lam ** (T - 1) if k == T else (1 - lam) * lam**k,  # lambda^k
        lambda k, lam, T: lam ** (T - 1) if k == T else lam ** (k - 1),  # no 1 - lambda
        lambda k, lam, T: 0 if k == T else (1 - lam) * lam ** (k - 1),  # no tail weight
    ],
)
def test_terminated_identity_rejects_wrong_weights(weight):
    assert "weighted average = residual sum" in terminated_identity_failures(5, weight=weight)


def test_lambda_returns_check_rejects_advantage():
    rew, vals = np.array([1.0, 0.0, 2.0, 1.0]), np.array([0.3, -0.2, 0.5, 0.1])
    nv = np.append(vals[1:], 5.0)
    adv = gae(rew, vals, nv, [0, 0, 0, 1], [0, 0, 0, 0], 0.9, 1.0)
    assert not np.allclose(adv, reward_to_go(rew, 0.9))
    boot = lambda_returns(rew, vals, nv, [0, 0, 0, 0], [0, 0, 0, 1], 0.9, 1.0)  # bootstraps after the end
    assert not np.allclose(boot, reward_to_go(rew, 0.9))


# --- the Monte Carlo check of k_step_mean (k_step_mean_z) --------------------------------


def kmean_z(reference):
    mdp, pi, _, V_wrong = chapter_mdp()
    return k_step_mean_z(reference, mdp, pi, V_wrong, 3, 2, 1, 200_000, SEED + 6)


def _mean_of(k_ref):
    return lambda mdp, pi, V, k: k_step_mean(mdp, pi, V, k_ref)


def test_k_step_mean_monte_carlo_check():
    assert kmean_z(k_step_mean) < 5
    for wrong_k in (1, 5, 4):  # two steps too few or too many; one too many
        assert kmean_z(_mean_of(wrong_k)) > 5
    assert kmean_z(_mean_of(2)) < 5  # one step too few: not resolved (as the text says)

    def undiscounted(mdp, pi, V, k):  # k - 1 undiscounted backups, undiscounted bootstrap
        P_pi, r_pi = M.policy_transition_matrix(mdp, pi), M.policy_reward(mdp, pi)
        W = V
        for _ in range(k - 1):
            W = r_pi + P_pi @ W
        return mdp.R + mdp.P @ W - V[:, None]

    assert kmean_z(undiscounted) > 5


# --- a smaller discount in the estimates (softmax_gradient_error with a target) ------------


def test_smaller_discount_trades_variance_for_bias():
    import dataclasses

    mdp, pi, _, _ = chapter_mdp()
    g_true = pi[0] * M.advantage_function(mdp, pi)[0]
    out = []
    for gamma_est in (0.95, 0.9, 0.8, 0.5):
        m = dataclasses.replace(mdp, gamma=gamma_est)
        out.append(softmax_gradient_error(m, pi, M.value_function(m, pi), 0, [0.95], 100, target=g_true))
    b2 = np.array([o[0][0] for o in out])
    var = np.array([o[1][0] for o in out])
    assert b2[0] < 1e-20 and np.all(np.diff(b2) > 0) and np.all(np.diff(var) < 0)
    # without the target the copy is measured against its own (discounted) gradient: no bias
    m = dataclasses.replace(mdp, gamma=0.5)
    assert softmax_gradient_error(m, pi, M.value_function(m, pi), 0, [0.95], 100)[0][0] < 1e-20
