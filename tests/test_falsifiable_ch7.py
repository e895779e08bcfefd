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
