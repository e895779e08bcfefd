"""Tests of ``companion.td`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import numpy as np
import pytest

from companion import mdp as M
from companion import td


def test_td_residual_by_hand_with_gamma_one():
    got = td.td_residual([1.0, 2.0], [0.5, 1.0], [2.0, 3.0], 1.0)
    assert np.allclose(got, [1.0 + 2.0 - 0.5, 2.0 + 3.0 - 1.0])
    got = td.td_residual([1.0, 2.0], [0.5, 1.0], [2.0, 3.0], 0.5)
    assert np.allclose(got, [1.0 + 1.0 - 0.5, 2.0 + 1.5 - 1.0])


@pytest.mark.parametrize(
    "args, message",
    [
        (([1.0, np.nan], [0.0, 0.0], [0.0, 0.0], 0.9), r"^rewards contains NaN"),
        (
            ([1.0, 2.0], [0.0, 0.0], [0.0, 0.0, 0.0], 0.9),
            r"^next_values must have shape",
        ),
        (([1.0, 2.0], [0.0, 0.0], [0.0, np.inf], 0.9), r"^next_values contains NaN"),
    ],
)
def test_td_residual_messages(args, message):
    with pytest.raises(ValueError, match=message):
        td.td_residual(*args)


def test_expected_td_residual_by_hand():
    m = M.random_mdp(3, 2, gamma=0.7, seed=3)
    V = np.array([1.0, -2.0, 0.5])
    got = td.expected_td_residual(m, V)
    for s in range(3):
        for a in range(2):
            want = m.R[s, a] + 0.7 * sum(m.P[s, a, t] * V[t] for t in range(3)) - V[s]
            assert got[s, a] == pytest.approx(want)
