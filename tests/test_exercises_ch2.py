"""The Chapter 2 checkers pass right answers (float32 included) and reject likely wrong ones."""

import numpy as np
import pytest
import sympy as sp

from companion import pg
from companion.exercises import (
    ExerciseFailure,
    check_action_baseline_estimator,
    check_gaussian_score,
    check_reward_to_go,
)


def _rtg(rewards, gamma):
    out, running = np.zeros(len(rewards)), 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def test_reward_to_go_accepts_right_and_float32(capsys):
    assert check_reward_to_go(_rtg)
    assert check_reward_to_go(lambda r, g: _rtg(r, g).astype(np.float32))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda r, g: _rtg(r, 1.0), r"off at t=\d+ by"),  # discount forgotten
        (lambda r, g: np.cumsum(r), r"off at t=\d+ by"),  # forward cumulative sum
        (lambda r, g: _rtg(r[::-1], g), r"off at t=\d+ by"),  # reversed rewards
        (lambda r, g: _rtg(r, g)[::-1], r"off at t=\d+ by"),  # reversed output
        (
            lambda r, g: _rtg(r, g) - r,
            r"off at t=\d+ by",
        ),  # off by one: starts at t + 1
        (
            lambda r, g: np.append(_rtg(r, g)[1:], 0.0),
            r"off at t=\d+ by",
        ),  # shifted by one
        (
            lambda r, g: np.array(
                [
                    np.sum(g ** np.arange(len(r) - t) * r[t:]) * g**t
                    for t in range(len(r))
                ]
            ),
            r"off at t=\d+ by",
        ),  # gamma^j instead of gamma^(j - t)
        (lambda r, g: _rtg(r, g)[:-1], r"has shape"),
        (lambda r, g: None, r"returned None"),
    ],
)
def test_reward_to_go_rejects(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_reward_to_go(wrong)


def test_reward_to_go_message_names_the_entry_not_the_answer():
    with pytest.raises(ExerciseFailure) as info:
        check_reward_to_go(lambda r, g: _rtg(r, 1.0))
    message = str(info.value)
    # the first failing case is rewards [0, 0, 1], gamma = 0.5: the answer there is [0.25, 0.5, 1]
    assert "0.25" not in message and "expected" not in message


def _score(a, mu, sigma):
    return (a - mu) / sigma**2, (a - mu) ** 2 / sigma**3 - 1 / sigma


def test_gaussian_score_accepts_right_and_own_symbols(capsys):
    assert check_gaussian_score(_score)

    def own_symbols(
        a, mu, sigma
    ):  # the reader ignores the arguments and makes plain symbols
        a, mu, sigma = sp.symbols("a mu sigma")
        return _score(a, mu, sigma)

    assert check_gaussian_score(own_symbols)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (
            lambda a, mu, s: (-(a - mu) / s**2, _score(a, mu, s)[1]),
            r"d/dmu component is not the derivative",
        ),  # sign
        (
            lambda a, mu, s: ((a - mu) / s, _score(a, mu, s)[1]),
            r"d/dmu component is not the derivative",
        ),  # power
        (
            lambda a, mu, s: (_score(a, mu, s)[0], (a - mu) ** 2 / s**3),
            r"d/dsigma component is not the derivative",
        ),  # no -1/s
        (
            lambda a, mu, s: (_score(a, mu, s)[0], (a - mu) ** 2 / s**3 + 1 / s),
            r"d/dsigma component is not the derivative",
        ),
        (
            lambda a, mu, s: (_score(a, mu, s)[0], (a - mu) ** 2 / (2 * s**3) - 1 / s),
            r"d/dsigma component",
        ),
        (lambda a, mu, s: (_score(a, mu, s)[0],), r"must return a pair"),
        (
            lambda a, mu, s: (_score(a, mu, s)[0], sp.Symbol("x")),
            r"uses the symbol\(s\) x",
        ),
    ],
)
def test_gaussian_score_rejects(wrong, message):
    with pytest.raises(ExerciseFailure, match=message):
        check_gaussian_score(wrong)


def test_gaussian_score_message_hides_the_expression():
    with pytest.raises(ExerciseFailure) as info:
        check_gaussian_score(
            lambda a, mu, s: (_score(a, mu, s)[0], (a - mu) ** 2 / s**3)
        )
    assert "sigma**3" not in str(info.value) and "**" not in str(info.value)


@pytest.mark.parametrize("component", [0, 1])
def test_gaussian_score_message_of_a_zero_answer_hides_the_value(component):
    # A zero component is off by exactly the reference: the message must not say how
    # much (at a=1, mu=0, sigma=2 the references are 1/4 and -3/8).
    def zero(a, mu, s):
        right = list(_score(a, mu, s))
        right[component] = sp.Integer(0)
        return tuple(right)

    with pytest.raises(ExerciseFailure) as info:
        check_gaussian_score(zero)
    message = str(info.value)
    assert "more than 10%" in message
    size = message.split("off by", 1)[1].replace("10%", "")
    assert not any(ch.isdigit() for ch in size), message  # no value, only a bucket
    for revealing in ("1/4", "3/8", "0.25", "0.375", "**"):
        assert revealing not in message, message


def test_gaussian_score_success_calls_the_integral_a_demonstration(capsys):
    assert check_gaussian_score(_score)
    assert "lemma" in capsys.readouterr().out


def _action_baseline(theta, states, actions, rewards, b):
    R_hat = pg.reward_to_go(rewards, 1.0)
    return sum(
        (R_hat[t] - b[s, a]) * pg.score(theta, s, a)
        for t, (s, a) in enumerate(zip(states, actions))
    )


def test_action_baseline_accepts_right_and_float32():
    assert check_action_baseline_estimator(_action_baseline)
    assert check_action_baseline_estimator(
        lambda *args: _action_baseline(*args).astype(np.float32)
    )


@pytest.mark.parametrize(
    "wrong",
    [
        lambda th, s, a, r, b: _action_baseline(
            th, s, a, r, np.zeros_like(b)
        ),  # baseline ignored
        lambda th, s, a, r, b: _action_baseline(th, s, a, r, -b),  # baseline added
        lambda th, s, a, r, b: pg.reinforce_gradient(
            th, s, a, r, 1.0, "full_return", b[s, a]
        ),  # full return
        lambda th, s, a, r, b: pg.reinforce_gradient(
            th, s, a, r, 1.0, baseline=b[s, 0]
        ),  # state baseline
    ],
)
def test_action_baseline_rejects(wrong):
    with pytest.raises(ExerciseFailure, match=r"off at state=\d+, action=\d+ by"):
        check_action_baseline_estimator(wrong)
