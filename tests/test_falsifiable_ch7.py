"""Chapter 7's checks reject the wrong versions they claim to reject.

Each test feeds a wrong version to the same companion function the chapter calls.
"""

import numpy as np
import pytest
import sympy as sp

from companion import digit_sum, grpo


# ---------------------------------------------------------------- the value of k3 (SymPy)
def test_k3_symbolic_bias_accepts_k3_and_k1():
    assert grpo.k3_symbolic_bias(lambda x: x - sp.log(x) - 1) == 0
    assert grpo.k3_symbolic_bias(lambda x: -sp.log(x)) == 0  # k1 is unbiased too


@pytest.mark.parametrize("wrong", [
    lambda x: x + sp.log(x) - 1,          # flipped sign of the log
    lambda x: 1 / x - sp.log(1 / x) - 1,  # ratio upside down (pi / pi_ref)
    lambda x: x - sp.log(x),              # dropped -1
    lambda x: sp.log(x) ** 2 / 2,         # k2: biased
])
def test_k3_symbolic_bias_rejects(wrong):
    assert grpo.k3_symbolic_bias(wrong) != 0


# ---------------------------------------------------------------- the gradient of k3
def _instances(n=10):
    rng = np.random.default_rng(0)
    return [(1.5 * rng.normal(size=6), 1.5 * rng.normal(size=6)) for _ in range(n)]


def test_k3_gradient_is_grad_kl_ref_pi():
    assert all(grpo.k3_gradient_matches(z, zr, "ref||pi") for z, zr in _instances())


def test_wrong_claim_grad_kl_pi_ref_is_rejected():
    assert not any(grpo.k3_gradient_matches(z, zr, "pi||ref") for z, zr in _instances())


def test_off_policy_tokens_match_neither_kl():
    rng = np.random.default_rng(1)
    for z, zr in _instances():
        old = np.exp(z + 0.5 * rng.normal(size=6))
        old /= old.sum()
        for d in grpo.KL_DIRECTIONS:
            assert not grpo.k3_gradient_matches(z, zr, d, sampling_probs=old)
        # with the ratio pi / pi_old (TRL's use_bias_correction_kl) it is grad KL(pi || pi_ref)
        assert grpo.k3_gradient_matches(z, zr, "pi||ref", old, importance_weighted=True)
        assert not grpo.k3_gradient_matches(z, zr, "ref||pi", old, importance_weighted=True)
    # and with the current policy's own probabilities as sampling weights, the claim holds
    z, zr = _instances(1)[0]
    p = np.exp(z - z.max())
    assert grpo.k3_gradient_matches(z, zr, "ref||pi", sampling_probs=p / p.sum())


# ---------------------------------------------------------------- aggregation weights
LENGTHS = np.array([1, 3, 2, 4])
MASK = (np.arange(4)[None] < LENGTHS[:, None]).astype(float)
B, G, L_MAX = 4, 2, 6
KW = {"group_size": G, "max_completion_length": L_MAX}
GROUP_TOKENS = np.repeat(LENGTHS.reshape(-1, G).sum(1), G)[:, None]
RIGHT = {
    "grpo": MASK / (B * LENGTHS[:, None]),
    "dapo": MASK * G / (B * GROUP_TOKENS),
    "bnpo": MASK / LENGTHS.sum(),
    "dr_grpo": MASK / (B * L_MAX),
}


@pytest.mark.parametrize("loss_type", list(RIGHT))
def test_table_weights_accepted(loss_type):
    assert grpo.aggregation_weights_match(loss_type, MASK, RIGHT[loss_type], **KW)


@pytest.mark.parametrize("loss_type, wrong", [
    ("dr_grpo", MASK / (B * MASK.shape[1])),          # padded width instead of the generation limit
    ("dr_grpo", MASK / (B * LENGTHS.max())),          # longest answer of the batch
    ("dapo", RIGHT["bnpo"]),                          # batch token mean instead of per group
    ("dapo", RIGHT["grpo"]),                          # per-answer mean
    ("grpo", RIGHT["bnpo"]),                          # token mean
    ("grpo", MASK / (G * LENGTHS[:, None])),          # divided by G instead of the batch size
    ("bnpo", RIGHT["dapo"]),
])
def test_wrong_normalisers_rejected(loss_type, wrong):
    assert not grpo.aggregation_weights_match(loss_type, MASK, wrong, **KW)


# ---------------------------------------------------------------- verdicts over seeds
def test_compare_says_not_resolved_for_noise_and_names_the_higher_one():
    rng = np.random.default_rng(0)
    a = rng.normal(size=8)
    _, v = digit_sum.compare(a, a[::-1], "A", "B")  # same values, mean difference 0
    assert v == "not resolved"
    d, v = digit_sum.compare(a + 1.0, a, "A", "B")
    assert v == "A higher" and d.low > 0
    _, v = digit_sum.compare(a - 1.0, a, "A", "B")
    assert v == "B higher"


# ---------------------------------------------------------------- k3 part (ii), SymPy
def test_k3_nonnegativity_argument_accepts_k3():
    assert grpo.k3_nonnegativity_argument(lambda x: x - sp.log(x) - 1)


@pytest.mark.parametrize("wrong", [
    lambda x: x + sp.log(x) - 1,  # flipped sign: no critical point
    lambda x: x - sp.log(x),      # dropped -1: minimum 1, not 0
    lambda x: -sp.log(x),         # k1: negative for x > 1
    lambda x: 2 * x - sp.log(x) - 1,  # wrong coefficient: minimum at x = 1/2
])
def test_k3_nonnegativity_argument_rejects(wrong):
    assert not grpo.k3_nonnegativity_argument(wrong)


# ---------------------------------------------------------------- exact moments of k3 (table cell)
def _pairs(n=20):
    rng = np.random.default_rng(3)
    out = []
    for scale in (0.05, 0.5, 2.0):
        for _ in range(n):
            pi = rng.dirichlet(np.ones(10))
            ref = pi * np.exp(scale * rng.normal(size=10))
            out.append((pi, ref / ref.sum()))
    return out


def test_kl_estimator_violations_accepts_k3_and_flags_k1_negative():
    for pi, ref in _pairs():
        assert grpo.kl_estimator_violations(grpo.kl_k3, pi, ref) == []
        assert grpo.kl_estimator_violations(lambda a, b: a - b, pi, ref) == ["negative"]


@pytest.mark.parametrize("wrong", [
    lambda a, b: np.exp(b - a) - (b - a),      # missing -1
    lambda a, b: grpo.kl_k3(b, a),             # ratio upside down: pi / pi_ref
    lambda a, b: np.exp(b - a) + (b - a) - 1,  # flipped sign of the log
])
def test_kl_estimator_violations_rejects_biased(wrong):
    assert all("biased" in grpo.kl_estimator_violations(wrong, pi, ref) for pi, ref in _pairs())


def test_kl_estimator_violations_refuses_bad_input():
    with pytest.raises(ValueError, match="p"):
        grpo.kl_estimator_violations(grpo.kl_k3, np.array([0.5, 0.6]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="estimator"):
        grpo.kl_estimator_violations(lambda a, b: a[:1], np.array([0.5, 0.5]), np.array([0.4, 0.6]))


# ---------------------------------------------------------------- group advantages (properties)
REWARDS = np.array([
    [1, 0, 0, 1, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1],
    [0.2, 0.9, 0.4, 0.7, 0.1, 0.5, 0.3, 0.8],
])


def test_group_advantage_violations_accepts_the_companion():
    assert grpo.group_advantage_violations(REWARDS, grpo.group_advantages(REWARDS)) == []


def test_group_advantage_violations_rejects_ddof0():
    c = REWARDS - REWARDS.mean(1, keepdims=True)
    wrong = c / (REWARDS.std(1, keepdims=True) + 1e-4)
    assert grpo.group_advantage_violations(REWARDS, wrong) == ["wrong spread"]


def test_group_advantage_violations_rejects_missing_centring():
    wrong = REWARDS / (REWARDS.std(1, ddof=1, keepdims=True) + 1e-4)
    assert "not centred" in grpo.group_advantage_violations(REWARDS, wrong)


def test_group_advantage_violations_rejects_equal_group_not_zero():
    wrong = grpo.group_advantages(REWARDS)
    wrong[1] = 1.0  # e.g. dividing by the std without eps, then patching NaN to 1
    assert "equal group not zero" in grpo.group_advantage_violations(REWARDS, wrong)
    nan = wrong.copy()
    nan[1] = np.nan  # 0 / 0 without eps
    assert grpo.group_advantage_violations(REWARDS, nan) == ["not finite"]


# ---------------------------------------------------------------- no-signal groups (Monte Carlo)
GS = np.arange(2, 33)
P_SOLVE = (0.05, 0.2, 0.5, 0.9)  # the chapter's values


def test_no_signal_gap_accepts_closed_form():
    for p in P_SOLVE:
        assert grpo.no_signal_gap(p**GS + (1 - p) ** GS, p, GS) < 0.01


@pytest.mark.parametrize("wrong", [
    lambda p, G: p**G,                                   # forgets all-wrong groups
    lambda p, G: p ** (G + 1) + (1 - p) ** (G + 1),      # exponent off by one
    lambda p, G: p ** (G - 1) + (1 - p) ** (G - 1),
])
def test_no_signal_gap_rejects(wrong):
    # the chapter asserts the gap for each p; a wrong curve must fail for at least one,
    # and does so at p = 0.5 and p = 0.2 for all of these
    gaps = {p: grpo.no_signal_gap(wrong(p, GS), p, GS) for p in P_SOLVE}
    assert gaps[0.5] > 0.01 and gaps[0.2] > 0.01


def test_no_signal_gap_refuses_bad_input():
    with pytest.raises(ValueError, match="p"):
        grpo.no_signal_gap(GS * 0.0, 1.5, GS)
    with pytest.raises(ValueError, match="claimed"):
        grpo.no_signal_gap(GS[:3] * 0.0, 0.5, GS)
    with pytest.raises(ValueError, match="check_at"):
        grpo.no_signal_gap(GS * 0.0, 0.5, GS, check_at=(64,))
