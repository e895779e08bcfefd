"""Tests of ``companion._validate`` written during mutation testing (see tests/MUTATION.md)."""

from __future__ import annotations

import numpy as np
import pytest

from companion import mdp as M
from companion import td as T
from companion._validate import (
    PROB_ATOL,
    as_array,
    check_distribution,
    check_gamma,
    check_positive_int,
    check_unit_interval,
)


# ------------------------------------------------------------ check_distribution
def test_float32_rows_that_sum_to_one_in_float32_are_accepted():
    rng = np.random.default_rng(1)
    p32 = rng.dirichlet(np.ones(9), size=200).astype(np.float32)
    # in float64 some rows are off by more than the float64 tolerance ...
    assert np.max(np.abs(p32.astype(np.float64).sum(axis=1) - 1.0)) > PROB_ATOL
    # ... but every row is a float32 distribution, so it is accepted and returned as float64
    out = check_distribution(p32, "p")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, p32.astype(np.float64))


def test_float64_off_by_1e6_is_refused():
    p = np.array([0.5, 0.5 + 1e-6])
    with pytest.raises(
        ValueError, match=r"^p must sum to 1 along its last axis \(tolerance 1e-08\)"
    ):
        check_distribution(p, "p")
    # the same numbers within the float64 tolerance are accepted
    check_distribution(np.array([0.5, 0.5 + 1e-9]), "p")


def test_float32_off_by_much_more_than_rounding_is_refused():
    p = np.array([[0.25, 0.75], [0.5, 0.5 + 1e-4]], dtype=np.float32)
    with pytest.raises(ValueError, match=r"^q must sum to 1 .* at index \(1,\)$"):
        check_distribution(p, "q")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_is_refused(bad):
    with pytest.raises(
        ValueError, match=r"^p contains NaN or inf \(first at index \(1,\)\)"
    ):
        check_distribution([0.5, bad, 0.5], "p")


def test_negative_is_refused_even_when_the_row_sums_to_one():
    with pytest.raises(
        ValueError, match=r"^p has a negative probability -0\.5 at index \(0, 1\)$"
    ):
        check_distribution([[1.5, -0.5], [0.5, 0.5]], "p")


def test_scalar_and_empty_last_axis_are_refused():
    with pytest.raises(
        ValueError, match=r"^p must have at least one dimension, got a scalar$"
    ):
        check_distribution(1.0, "p")
    with pytest.raises(
        ValueError, match=r"^p must have a non-empty last axis, got shape \(2, 0\)$"
    ):
        check_distribution(np.zeros((2, 0)), "p")


def test_shape_is_checked():
    with pytest.raises(ValueError, match=r"^p must have shape \(3,\), got \(2,\)$"):
        check_distribution([0.5, 0.5], "p", shape=(3,))


def test_integer_one_hot_is_accepted_with_the_float64_tolerance():
    out = check_distribution(np.array([[0, 1], [1, 0]]), "p")
    assert out.dtype == np.float64
    with pytest.raises(ValueError, match=r"^p must sum to 1"):
        check_distribution(np.array([1, 1]), "p")


def test_the_one_check_is_used_by_mdp_td_and_the_deep_modules():
    """mdp, td (via check_policy / state_dist) and cpi/trpo/grpo share one implementation."""
    import companion.cpi as C
    import companion.grpo as G
    import companion.trpo as R

    assert T.check_distribution is check_distribution
    assert M.check_distribution is check_distribution
    for mod in (C, G, R):
        assert mod.check_distribution is check_distribution
    m = M.random_mdp(3, 2, seed=0)
    pi32 = np.full((3, 2), 0.5, dtype=np.float32)
    pi32[0] = [
        np.float32(0.1),
        np.float32(0.9),
    ]  # sums to 1 only up to float32 rounding
    assert M.check_policy(m, pi32).dtype == np.float64
    with pytest.raises(ValueError, match=r"^pi must sum to 1"):
        M.check_policy(m, np.array([[0.5, 0.5 + 1e-6]] * 3))


# ------------------------------------------------------------ the scalar checks
@pytest.mark.parametrize("x", [-0.1, 1.1, np.nan, np.inf])
def test_unit_interval_refuses_outside(x):
    with pytest.raises(ValueError, match=r"^lam must lie in \[0, 1\], got"):
        check_unit_interval(x, "lam")


def test_unit_interval_edges():
    assert check_unit_interval(0, "lam") == 0.0
    assert check_unit_interval(1, "lam") == 1.0
    with pytest.raises(ValueError, match=r"^lam must lie in \[0, 1\), got 1"):
        check_unit_interval(1.0, "lam", allow_one=False)
    with pytest.raises(ValueError, match=r"^lam must be a number, got 'a'$"):
        check_unit_interval("a", "lam")


def test_gamma_refuses_one_by_default():
    assert check_gamma(0.99) == 0.99
    assert check_gamma(1.0, allow_one=True) == 1.0
    with pytest.raises(ValueError, match=r"^gamma must lie in \[0, 1\), got 1\.0$"):
        check_gamma(1.0)


@pytest.mark.parametrize("n", [0, -3, 1.0, True, "2", None])
def test_positive_int_refuses(n):
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got"):
        check_positive_int(n, "n")


def test_positive_int_accepts_numpy_ints():
    assert check_positive_int(np.int64(3), "n") == 3
    assert type(check_positive_int(np.int64(3), "n")) is int


def test_as_array_messages():
    with pytest.raises(ValueError, match=r"^x must be an array of numbers, got str"):
        as_array("abc", "x")
    with pytest.raises(
        ValueError, match=r"^x must have 2 dimension\(s\), got shape \(3,\)$"
    ):
        as_array([1, 2, 3], "x", ndim=2)
    with pytest.raises(ValueError, match=r"^x must have shape \(any, 2\), got \(3,\)$"):
        as_array([1, 2, 3], "x", shape=(-1, 2))
    with pytest.raises(ValueError, match=r"^x must have shape \(2,\), got \(3,\)$"):
        as_array([1, 2, 3], "x", shape=(2,))
    assert as_array([[1, 2]], "x", shape=(-1, 2)).shape == (1, 2)
