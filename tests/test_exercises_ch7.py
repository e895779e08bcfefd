"""Chapter 7's exercise checkers reject the wrong answers a reader is likely to write."""

import numpy as np
import pytest

from companion.exercises import ExerciseFailure
from companion.exercises.ch7_grpo import (
    check_group_advantages,
    check_k3_values,
)
from companion.grpo import group_advantages


def _adv(ddof=1, eps=1e-4, dtype=np.float64):
    def fn(r, scale=True):
        c = r - r.mean(1, keepdims=True)
        if not scale:
            return c.astype(dtype)
        return (c / (r.std(1, ddof=ddof, keepdims=True) + eps)).astype(dtype)

    return fn


def test_group_advantages_right_answers_pass():
    assert check_group_advantages(lambda r, scale=True: group_advantages(r, scale=scale))
    assert check_group_advantages(_adv())
    assert check_group_advantages(_adv(dtype=np.float32))  # float32 is within 1e-5 relative


@pytest.mark.parametrize(
    "wrong, message",
    [
        (_adv(ddof=0), r"population standard deviation \(ddof=0\)"),
        (_adv(eps=1e-2), r"scale=True"),  # wrong epsilon
        (lambda r, scale=True: r - r.mean(1, keepdims=True), r"scale=True"),  # never scaled
        (lambda r, scale=True: r - r.mean(), r"off at prompt="),  # mean over the batch
        (lambda r, scale=True: -_adv()(r, scale), r"off at prompt="),  # sign flipped
        (lambda r, scale=True: None, r"returned None"),
    ],
)
def test_group_advantages_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_group_advantages(wrong)


def _k3(p, q):
    x = q / p
    return x - np.log(x) - 1


def test_k3_values_right_answers_pass():
    assert check_k3_values(_k3)
    assert check_k3_values(lambda p, q: _k3(p, q).astype(np.float32))


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda p, q: -np.log(q / p), r"naive estimator"),  # k1: right mean
        (lambda p, q: np.full(len(p), np.sum(p * np.log(p / q))), r"same at every"),
        (lambda p, q: _k3(q, p), r"use x = p / q"),  # ratio upside down
        (lambda p, q: q / p - np.log(q / p), r"off at outcome="),  # dropped the -1
        (lambda p, q: 0.5 * np.log(q / p) ** 2, r"off at outcome="),  # k2
        (lambda p, q: float(np.sum(p * _k3(p, q))), r"shape"),  # the expectation
    ],
)
def test_k3_values_wrong_answers_fail(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_k3_values(wrong)


def test_k3_values_error_visible_only_on_the_far_pair():
    """A value wrong by 1e-3 relative at one outcome, caught by the relative tolerance."""

    def slightly_off(p, q):
        v = _k3(p, q)
        v[np.argmax(v)] *= 1 + 1e-3
        return v

    with pytest.raises(ExerciseFailure, match="off at outcome="):
        check_k3_values(slightly_off)

