"""The Chapter 6 exercise checkers accept right answers (float32 included) and reject the
wrong answers a reader is likely to write, without revealing the expected values."""

import numpy as np
import pytest

from companion.exercises import ExerciseFailure
from companion.exercises.ch6_gae import (
    check_k_step_advantage,
    check_monte_carlo_advantage,
)
from companion.pg import reward_to_go


def k_step_right(rewards, values, gamma, k):
    T = len(rewards)
    deltas = rewards + gamma * values[1:] - values[:-1]
    return np.array([sum(gamma**l * deltas[t + l] for l in range(min(k, T - t))) for t in range(T)])


def k_step_float32(rewards, values, gamma, k):
    return k_step_right(rewards.astype(np.float32), values.astype(np.float32), np.float32(gamma), k).astype(
        np.float32
    )


def k_step_no_end_bootstrap(rewards, values, gamma, k):
    # sums rewards up to the end of the segment but forgets values[T] when t + k > T
    T = len(rewards)
    out = []
    for t in range(T):
        n = min(k, T - t)
        boot = gamma**n * values[t + n] if t + k <= T else 0.0
        out.append(-values[t] + sum(gamma**l * rewards[t + l] for l in range(n)) + boot)
    return np.array(out)


def k_step_gamma_k_minus_1(rewards, values, gamma, k):
    T = len(rewards)
    out = []
    for t in range(T):
        n = min(k, T - t)
        out.append(-values[t] + sum(gamma**l * rewards[t + l] for l in range(n)) + gamma ** (n - 1) * values[t + n])
    return np.array(out)


def k_step_off_by_one(rewards, values, gamma, k):
    return k_step_right(rewards, values, gamma, k + 1)


def k_step_no_minus_v(rewards, values, gamma, k):
    return k_step_right(rewards, values, gamma, k) + values[:-1]


def mc_right(rewards, values, gamma):
    return reward_to_go(rewards, gamma) - values


def mc_float32(rewards, values, gamma):
    out, running = np.zeros(len(rewards), dtype=np.float32), np.float32(0)
    for t in reversed(range(len(rewards))):
        running = np.float32(rewards[t]) + np.float32(gamma) * running
        out[t] = running - np.float32(values[t])
    return out


def mc_without_v(rewards, values, gamma):
    return reward_to_go(rewards, gamma)


def mc_reversed_discounting(rewards, values, gamma):
    # weights gamma^(T-1-l) instead of gamma^(l-t): discounting from the end of the episode
    T = len(rewards)
    return np.array([sum(gamma ** (T - 1 - l) * rewards[l] for l in range(t, T)) for t in range(T)]) - values


def mc_undiscounted(rewards, values, gamma):
    return reward_to_go(rewards, 1.0) - values


def mc_plus_v(rewards, values, gamma):
    return reward_to_go(rewards, gamma) + values


def test_k_step_checker_accepts_right_and_float32(capsys):
    assert check_k_step_advantage(k_step_right)
    assert check_k_step_advantage(k_step_float32)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong", [k_step_no_end_bootstrap, k_step_gamma_k_minus_1, k_step_off_by_one, k_step_no_minus_v]
)
def test_k_step_checker_rejects(wrong):
    with pytest.raises(ExerciseFailure) as info:
        check_k_step_advantage(wrong)
    assert "off at t=" in str(info.value) and "relative" in str(info.value)


def test_monte_carlo_checker_accepts_right_and_float32():
    assert check_monte_carlo_advantage(mc_right)
    assert check_monte_carlo_advantage(mc_float32)


@pytest.mark.parametrize("wrong", [mc_without_v, mc_reversed_discounting, mc_undiscounted, mc_plus_v])
def test_monte_carlo_checker_rejects(wrong):
    with pytest.raises(ExerciseFailure) as info:
        check_monte_carlo_advantage(wrong)
    assert "off at t=" in str(info.value) and "relative" in str(info.value)


def test_messages_do_not_reveal_the_reference():
    """A failure names the entry and the size of the error, never the expected number."""
    from companion.gae import k_step_advantage

    with pytest.raises(ExerciseFailure) as info:
        check_k_step_advantage(lambda r, v, g, k: np.zeros(len(r)))
    message = str(info.value)
    expected = k_step_advantage(np.ones(3), np.zeros(4), 0.5, 2)  # the first test case
    assert "of the answer's scale" in message
    assert np.allclose(expected, [1.5, 1.5, 1.0])
    assert "1.5" not in message  # the reference's distinctive value does not appear


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (lambda r, v, g, k: (_ for _ in ()).throw(NotImplementedError()), "not implemented yet"),
        (lambda r, v, g, k: None, "returned None"),
        (lambda r, v, g, k: np.zeros(len(r) + 1), "has shape"),
        (lambda r, v, g, k: np.full(len(r), np.nan), "NaN"),
        (lambda r, v, g, k: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_k_step_checker_explains_broken_answers(answer, fragment):
    with pytest.raises(ExerciseFailure, match=fragment):
        check_k_step_advantage(answer)
