"""Tests of ``companion.grpo`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch

from companion import grpo

# --------------------------------------------------------------------------- group_advantages


@pytest.mark.parametrize("eps", [True, "0.1", 0.0, float("inf")])
def test_group_advantages_eps_message(eps):
    with pytest.raises(ValueError, match=r"^eps must be a positive finite number, got "):
        grpo.group_advantages(np.array([[1.0, 0.0]]), eps=eps)


def test_group_advantages_torch_keeps_float32_and_converts_integers():
    r32 = torch.tensor([[1.0, 0.0, 2.0]], dtype=torch.float32)
    out = grpo.group_advantages(r32)
    assert out.dtype == torch.float32
    ri = torch.tensor([[1, 0, 2], [3, 3, 3]])
    out = grpo.group_advantages(ri, eps=1e-12)
    assert out.dtype == torch.float64
    # mean 1, sample std 1: advantages are r - 1
    assert torch.allclose(out, torch.tensor([[0.0, -1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64))


def test_group_advantages_torch_unscaled():
    r = torch.tensor([[1.0, 0.0, 0.0], [4.0, 2.0, 0.0]], dtype=torch.float64)
    out = grpo.group_advantages(r, scale=False)
    assert torch.allclose(out, torch.tensor([[2 / 3, -1 / 3, -1 / 3], [2.0, 0.0, -2.0]], dtype=torch.float64))


def test_group_advantages_numpy_computes_in_float64():
    r = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    out = grpo.group_advantages(r, eps=1e-12)
    assert out.dtype == np.float64
    r64 = r.astype(np.float64)
    want = (r64 - r64.mean()) / (r64.std(ddof=1) + 1e-12)
    assert np.allclose(out, want, rtol=1e-13, atol=0)


# --------------------------------------------------------------------------- kl_k3


def test_kl_k3_on_python_floats():
    assert grpo.kl_k3(0.0, 0.0) == 0.0
    d = float(np.log(0.5))                             # logp_ref - logp
    assert grpo.kl_k3(0.0, d) == pytest.approx(0.5 - d - 1)


@pytest.mark.parametrize("logp, logp_ref, message", [
    (np.zeros(2), np.zeros(3), r"^logp and logp_ref must have the same shape, got \(2,\) and \(3,\)$"),
    (1.0, np.zeros(2), r"^logp and logp_ref must have the same shape, got None and \(2,\)$"),
    (np.zeros(2), 1.0, r"^logp and logp_ref must have the same shape, got \(2,\) and None$"),
])
def test_kl_k3_shape_message(logp, logp_ref, message):
    with pytest.raises(ValueError, match=message):
        grpo.kl_k3(logp, logp_ref)


# --------------------------------------------------------------------------- logits checks


@pytest.mark.parametrize("bad", [[1.0], [np.nan, 1.0], [[0.0, 1.0], [1.0, 0.0]]])
def test_logits_checked_with_their_names(bad):
    good = np.zeros(2)
    with pytest.raises(ValueError, match=r"^logits must be a finite 1-D array of at least 2 logits, got "):
        grpo.kl_gradient(bad, good, "ref||pi")
    with pytest.raises(ValueError, match=r"^ref_logits must be a finite 1-D array of at least 2 logits, got "):
        grpo.kl_gradient(good, bad, "ref||pi")
    with pytest.raises(ValueError, match=r"^logits must be a finite 1-D array of at least 2 logits, got "):
        grpo.k3_gradient_expectation(bad, good)
    with pytest.raises(ValueError, match=r"^ref_logits must be a finite 1-D array of at least 2 logits, got "):
        grpo.k3_gradient_expectation(good, bad)


def test_ref_logits_shape_messages():
    with pytest.raises(ValueError, match=r"^ref_logits must have shape \(3,\), got \(2,\)$"):
        grpo.kl_gradient(np.zeros(3), np.zeros(2), "pi||ref")
    with pytest.raises(ValueError, match=r"^ref_logits must have shape \(3,\), got \(2,\)$"):
        grpo.k3_gradient_expectation(np.zeros(3), np.zeros(2))


def test_two_logits_are_enough():
    z, zr = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    p = np.exp(z) / np.exp(z).sum()
    q = np.exp(zr) / np.exp(zr).sum()
    assert np.allclose(grpo.kl_gradient(z, zr, "ref||pi"), p - q)
    assert np.allclose(grpo.k3_gradient_expectation(z, zr), p - q)


def test_kl_gradient_large_logits_do_not_overflow():
    z, zr = np.array([700.0, 710.0]), np.array([0.0, 0.0])
    p1 = 1 / (1 + np.exp(-10.0))
    got = grpo.kl_gradient(z, zr, "ref||pi")
    assert np.all(np.isfinite(got))
    assert np.allclose(got, [1 - p1 - 0.5, p1 - 0.5])


def test_k3_gradient_expectation_accepts_integer_logits():
    got = grpo.k3_gradient_expectation([0, 1, 2], [0, 0, 0])
    p = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    assert got.dtype == np.float64
    assert np.allclose(got, p - 1 / 3, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- k3_gradient_expectation


def test_k3_gradient_expectation_default_is_not_importance_weighted():
    z, zr = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.0, -0.5])
    p = np.exp(z) / np.exp(z).sum()
    q = np.exp(zr) / np.exp(zr).sum()
    default = grpo.k3_gradient_expectation(z, zr)
    assert np.allclose(default, grpo.k3_gradient_expectation(z, zr, importance_weighted=False))
    assert np.allclose(default, p - q)                     # gradient of KL(ref || pi)
    weighted = grpo.k3_gradient_expectation(z, zr, importance_weighted=True)
    assert not np.allclose(default, weighted)
    assert np.allclose(weighted, grpo.kl_gradient(z, zr, "pi||ref"))


@pytest.mark.parametrize("probs, message", [
    (np.full(4, 0.25), r"^sampling_probs must have shape \(3,\), got \(4,\)$"),
    (np.array([0.5, 0.6, -0.1]), r"^sampling_probs has a negative probability"),
])
def test_sampling_probs_messages(probs, message):
    with pytest.raises(ValueError, match=message):
        grpo.k3_gradient_expectation(np.zeros(3), np.zeros(3), sampling_probs=probs)


def test_importance_weighted_message():
    with pytest.raises(ValueError, match=r"^importance_weighted must be a bool, got 'yes'$"):
        grpo.k3_gradient_expectation(np.zeros(3), np.zeros(3), importance_weighted="yes")


# --------------------------------------------------------------------------- k3_gradient_matches


def _norms(seed):
    rng = np.random.default_rng(seed)
    z, zr = rng.normal(size=3), rng.normal(size=3)
    g = grpo.k3_gradient_expectation(z, zr)
    e = grpo.kl_gradient(z, zr, "pi||ref")
    return z, zr, np.linalg.norm(g), np.linalg.norm(e), np.linalg.norm(g - e)


@pytest.mark.parametrize("seed", [0, 1])
def test_k3_gradient_matches_scale_is_the_larger_norm(seed):
    z, zr, ng, ne, diff = _norms(seed)
    assert abs(ng - ne) > 0.03 * max(ng, ne)              # seed 0: ng larger; seed 1: ne larger
    rtol = diff / max(ng, ne)
    assert grpo.k3_gradient_matches(z, zr, "pi||ref", rtol=rtol * (1 + 1e-6))
    assert not grpo.k3_gradient_matches(z, zr, "pi||ref", rtol=rtol * (1 - 1e-6))


def test_k3_gradient_matches_relative_for_small_gradients():
    # near pi = ref the two KL gradients agree to second order: relatively, they still differ
    rng = np.random.default_rng(7)
    zr = rng.normal(size=4)
    z = zr + 1e-5 * rng.normal(size=4)
    g = grpo.k3_gradient_expectation(z, zr)
    e = grpo.kl_gradient(z, zr, "pi||ref")
    assert np.linalg.norm(g) < 1e-4 and np.linalg.norm(g - e) < 1e-8
    assert not grpo.k3_gradient_matches(z, zr, "pi||ref")
    assert grpo.k3_gradient_matches(z, zr, "ref||pi")


def test_k3_gradient_matches_boundary_and_floor():
    z = np.array([0.3, -0.2, 1.0])
    assert grpo.k3_gradient_matches(z, z, "ref||pi", rtol=0.0)   # both gradients exactly 0: 0 <= 0
    # gradients of norm ~3e-14, below the 1e-12 floor of the scale
    z, zr = np.array([0.0, 1e-13, 0.0]), np.zeros(3)
    assert grpo.k3_gradient_matches(z, zr, "ref||pi", sampling_probs=[0.0, 0.0, 1.0], rtol=0.5)


# --------------------------------------------------------------------------- grpo_loss


_M = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
_A = torch.tensor([2.0, -1.0], dtype=torch.float64)
_Z = torch.zeros(2, 3, dtype=torch.float64)


@pytest.mark.parametrize("beta", [True, "0.1", -1.0])
def test_beta_message(beta):
    with pytest.raises(ValueError, match=r"^beta must be a finite number >= 0, got "):
        grpo.grpo_loss(_Z, _Z, _Z, _A, _M, beta=beta)


def test_grpo_loss_default_clip_eps_is_0_2():
    logp = torch.full((2, 3), np.log(1.5), dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loss = grpo.grpo_loss(logp, _Z, logp, adv, _M, beta=0.0, loss_type="bnpo")
    assert loss.item() == pytest.approx(-1.2)
    assert loss.item() == pytest.approx(grpo.grpo_loss(logp, _Z, logp, adv, _M, clip_eps=0.2, beta=0.0,
                                                       loss_type="bnpo").item())


def test_grpo_loss_default_beta_is_0_04():
    logp_ref = torch.full((2, 3), np.log(0.5), dtype=torch.float64)
    adv = torch.zeros(2, dtype=torch.float64)
    loss = grpo.grpo_loss(_Z, _Z, logp_ref, adv, _M, loss_type="bnpo")
    k3 = 0.5 - np.log(0.5) - 1
    assert loss.item() == pytest.approx(0.04 * k3)


def test_grpo_loss_ratio_lower_clip_and_old_logp():
    # ratio exp(logp - logp_old) = 0.5 < 1 - 0.2, negative advantage: the clipped term is the minimum
    logp_old = torch.full((2, 3), np.log(2.0), dtype=torch.float64)
    adv = torch.tensor([-1.0, -1.0], dtype=torch.float64)
    loss = grpo.grpo_loss(_Z, logp_old, _Z, adv, _M, clip_eps=0.2, beta=0.0, loss_type="grpo")
    assert loss.item() == pytest.approx(0.8)
    unclipped = grpo.grpo_loss(_Z, logp_old, _Z, adv, _M, clip_eps=None, beta=0.0, loss_type="grpo")
    assert unclipped.item() == pytest.approx(0.5)


def test_grpo_loss_per_token_advantages():
    adv = torch.tensor([[1.0, 5.0, 5.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    loss = grpo.grpo_loss(_Z, _Z, _Z, adv, _M, beta=0.0, loss_type="bnpo")
    assert loss.item() == pytest.approx(-(1.0 + 1.0 + 2.0 + 3.0) / 4)


def test_grpo_loss_dr_grpo_limit_equal_to_width():
    adv = torch.tensor([1.0, 1.0], dtype=torch.float64)
    loss = grpo.grpo_loss(_Z, _Z, _Z, adv, _M, beta=0.0, loss_type="dr_grpo", max_completion_length=3)
    assert loss.item() == pytest.approx(-4 / (2 * 3))


def test_grpo_loss_dtype_follows_logp_not_mask():
    logp = torch.zeros(2, 3, dtype=torch.float32)
    loss = grpo.grpo_loss(logp, logp, logp, _A.float(), _M, beta=0.0)
    assert loss.dtype == torch.float32


@pytest.mark.parametrize("kwargs, message", [
    ({"logp": torch.zeros(3)}, r"^logp must have shape \(B, T\), got \(3,\)$"),
    ({"logp_ref": torch.zeros(2, 2)}, r"^logp_ref must have the shape of logp \(2, 3\), got \(2, 2\)$"),
    ({"mask": torch.ones(2, 2)}, r"^mask must have the shape of logp \(2, 3\), got \(2, 2\)$"),
    ({"logp_old": torch.full((2, 3), float("nan"))}, r"^logp_old contains NaN or inf$"),
    ({"logp_ref": torch.full((2, 3), float("inf"))}, r"^logp_ref contains NaN or inf$"),
])
def test_grpo_loss_messages(kwargs, message):
    args = {"logp": _Z, "logp_old": _Z, "logp_ref": _Z, "advantages": _A, "mask": _M}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        grpo.grpo_loss(**args)


# --------------------------------------------------------------------------- aggregation_weights_match


def test_aggregation_weights_match_tolerances():
    mask = _M.numpy()
    w = grpo.aggregation_weights("grpo", mask)
    assert np.allclose(w, [[1 / 2, 0, 0], [1 / 6, 1 / 6, 1 / 6]])
    exact = [[Fraction(1, 2), 0, 0], [Fraction(1, 6), Fraction(1, 6), Fraction(1, 6)]]
    assert grpo.aggregation_weights_match("grpo", mask, exact)
    assert not grpo.aggregation_weights_match("grpo", mask, w * (1 + 1e-7))   # relative tolerance 1e-12
    assert not grpo.aggregation_weights_match("grpo", mask, w + 1e-9)         # absolute one is 1e-12 * max
    off = w.copy()
    off[0, 1] = 1e-12                                     # above 1e-12 * 1/2 on a padding token
    assert not grpo.aggregation_weights_match("grpo", mask, off)
    off[0, 1] = 1e-13
    assert grpo.aggregation_weights_match("grpo", mask, off)


# --------------------------------------------------------------------------- k3_nonnegativity_argument


def test_k3_nonnegativity_argument_with_a_positive_parameter():
    c = sp.Symbol("c", positive=True)
    assert grpo.k3_nonnegativity_argument(lambda x: c * (x - sp.log(x) - 1))
    assert not grpo.k3_nonnegativity_argument(lambda x: c * (x - sp.log(x)))


def test_k3_nonnegativity_argument_symbol_is_positive_x():
    x = sp.Symbol("x", positive=True)                     # the documented symbol, built by the caller
    f = x - sp.log(x) - 1
    assert grpo.k3_nonnegativity_argument(lambda _: f)


# --------------------------------------------------------------------------- kl_estimator_violations


_P = np.array([0.2, 0.5, 0.3])


@pytest.mark.parametrize("p, q, message", [
    ([0.5, 0.6], [0.5, 0.5], r"^p must sum to 1"),
    ([0.5, 0.5], [0.5, 0.6], r"^q must sum to 1"),
    ([0.5, 0.5], [0.2, 0.3, 0.5], r"^q must have shape \(2,\), got \(3,\)$"),
    ([0.0, 0.5, 0.5], [0.2, 0.3, 0.5], r"^p and q must be strictly positive$"),
    ([0.2, 0.3, 0.5], [0.0, 0.5, 0.5], r"^p and q must be strictly positive$"),
])
def test_kl_estimator_violations_messages(p, q, message):
    with pytest.raises(ValueError, match=message):
        grpo.kl_estimator_violations(grpo.kl_k3, p, q)


def test_kl_estimator_violations_boundaries():
    assert grpo.kl_estimator_violations(grpo.kl_k3, _P, _P) == []          # values exactly 0
    assert grpo.kl_estimator_violations(grpo.kl_k3, _P, _P, atol=0.0) == []
    assert grpo.kl_estimator_violations(lambda lp, lr: 0 * lp - 1e-11, _P, _P) == []   # within atol


def test_kl_estimator_violations_tolerance_scales_with_kl():
    p, q = np.array([0.9, 0.1]), np.array([0.01, 0.99])
    kl = float(np.sum(p * np.log(p / q)))
    assert kl > 3
    shifted = lambda lp, lr: grpo.kl_k3(lp, lr) + 1e-3     # bias 1e-3 < atol * kl
    assert grpo.kl_estimator_violations(shifted, p, q, atol=1e-3) == []
    assert grpo.kl_estimator_violations(shifted, p, q, atol=0.5e-3 / kl) == ["biased"]
    # KL below 1: the tolerance is atol itself
    assert grpo.kl_estimator_violations(lambda lp, lr: grpo.kl_k3(lp, lr) + 1.5e-3, _P, _P[::-1].copy(),
                                        atol=1e-3) == ["biased"]


def test_kl_estimator_violations_accepts_decimal_values():
    def exact_k3(lp, lr):
        return [Decimal(repr(float(v))) for v in grpo.kl_k3(lp, lr)]

    assert grpo.kl_estimator_violations(exact_k3, _P, _P[::-1].copy(), atol=1e-9) == []


# --------------------------------------------------------------------------- group_advantage_violations


def test_group_advantage_violations_messages():
    with pytest.raises(ValueError, match=r"^rewards and advantages must have the same shape \(n, G\), "
                                         r"got \(2, 3\) and \(2, 2\)$"):
        grpo.group_advantage_violations(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^rewards and advantages must have the same shape \(n, G\), "
                                         r"got \(3,\) and \(3,\)$"):
        grpo.group_advantage_violations(np.zeros(3), np.zeros(3))


def test_group_advantage_violations_centring_per_row_and_atol():
    r = np.array([[1.0, 0.0], [0.0, 1.0]])
    a = grpo.group_advantages(r, eps=1e-12)
    assert grpo.group_advantage_violations(r, a + 1e-5) == []           # within atol=1e-3
    shifted = a + np.array([[0.5], [-0.5]])                              # overall mean 0, rows not
    assert "not centred" in grpo.group_advantage_violations(r, shifted)


def test_group_advantage_violations_computes_in_float64():
    # float16 inputs are judged on their values, not with float16 arithmetic
    r = np.array([[0.0, 1e-7]], dtype=np.float16)                        # varies (by ~1.2e-7)
    a = np.array([[-1 / np.sqrt(2), 1 / np.sqrt(2)]])
    assert grpo.group_advantage_violations(r, a) == []
    a16 = np.array([[0.70703125, -0.70703125]], dtype=np.float16)       # sample std 0.99989
    assert grpo.group_advantage_violations(np.array([[1.0, 0.0]]), a16, atol=1e-6) == ["wrong spread"]


def test_aggregation_weights_mask_and_claimed_of_any_numeric_type():
    # a long-double mask (which torch cannot hold) and exact decimal weights are read as float64
    mask = np.array([[1, 0, 0], [1, 1, 1]], dtype=np.longdouble)
    assert np.allclose(grpo.aggregation_weights("bnpo", mask), [[1 / 4, 0, 0], [1 / 4, 1 / 4, 1 / 4]])
    claimed = [[Decimal("0.25"), Decimal(0), Decimal(0)], [Decimal("0.25")] * 3]
    assert grpo.aggregation_weights_match("bnpo", mask, claimed)


# --------------------------------------------------------------------------- no_signal_gap
def _claimed(p, sizes):
    return [p**G + (1 - p) ** G for G in sizes]


def test_no_signal_gap_defaults_and_seed():
    sizes = [2, 4, 8, 16]
    claimed = _claimed(0.3, sizes)
    a = grpo.no_signal_gap(claimed, 0.3, sizes)
    assert a == grpo.no_signal_gap(claimed, 0.3, sizes, n_groups=40_000, seed=0)
    assert a != grpo.no_signal_gap(claimed, 0.3, sizes, n_groups=40_000, seed=1)
    assert a != grpo.no_signal_gap(claimed, 0.3, sizes, n_groups=40_001, seed=0)
    assert a < 4 * np.sqrt(0.25 / 40_000)  # the right claim is within sampling error


def test_no_signal_gap_edges_and_messages():
    sizes = [2, 4]
    # p = 0 and p = 1 are probabilities: every group is all 0 (or all 1), no signal
    assert grpo.no_signal_gap([1.0, 1.0], 0, sizes, check_at=(2, 4), n_groups=10) == 0.0
    assert grpo.no_signal_gap([1.0, 1.0], 1, sizes, check_at=(2, 4), n_groups=10) == 0.0
    with pytest.raises(ValueError, match=r"^p must be a probability, got True$"):
        grpo.no_signal_gap([1.0, 1.0], True, sizes, check_at=(2, 4))
    with pytest.raises(ValueError, match=r"^n_groups must"):
        grpo.no_signal_gap([1.0, 1.0], 0.5, sizes, check_at=(2, 4), n_groups=0)
