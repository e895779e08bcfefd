"""Shared machinery of the exercise checkers: the failure type, calling the reader's
function safely, and comparing arrays with a tolerance relative to the answer's scale."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from companion import mdp as _mdp

#: Default tolerance of every checker, relative to the answer's scale: an entry passes
#: when ``|got - expected| <= RTOL * max(max|expected|, 1e-3)``. A float32 answer (about
#: 1e-7 relative) and an iterative answer accurate to 1e-6 pass; a dropped factor or a
#: wrong sign does not. The exercises state this tolerance.
RTOL = 1e-5


def tolerance(expected: Any, rtol: float = RTOL) -> float:
    """Absolute tolerance for comparing with ``expected``: ``rtol`` times its scale."""
    scale = float(np.max(np.abs(np.asarray(expected, dtype=np.float64)), initial=0.0))
    return rtol * max(scale, 1e-3)


class ExerciseFailure(AssertionError):
    """Raised by a checker when the reader's answer is wrong; the message says why."""


def _fail(message: str) -> None:
    raise ExerciseFailure(message)


def _passed(message: str) -> bool:
    print(f"Correct: {message}")
    return True


def _call(fn: Callable[..., Any], name: str, *args: Any) -> Any:
    """Call the reader's function, turning a stub or a crash into a one-sentence failure."""
    try:
        return fn(*args)
    except NotImplementedError:
        _fail(f"`{name}` is not implemented yet: replace the `raise NotImplementedError` line with your code.")
    except ExerciseFailure:
        raise
    except Exception as exc:  # the reader's bug: report it, do not crash the checker
        _fail(f"`{name}` raised {type(exc).__name__}: {exc}")


def _compare(
    got: Any,
    expected: np.ndarray,
    what: str,
    axis_names: Sequence[str],
    context: str,
    rtol: float = RTOL,
) -> None:
    """Fail with the largest mismatching entry of ``got`` against ``expected``.

    The tolerance is relative to the answer's scale (:func:`tolerance`); the message names
    the entry and the size of the error, never the expected value.
    """
    atol = tolerance(expected, rtol)
    if got is None:
        _fail(f"{what} returned None; it must return an array of shape {expected.shape}.")
    try:
        arr = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"{what} must be an array of numbers, got {type(got).__name__}.")
    if arr.shape != expected.shape:
        _fail(f"{what} has shape {arr.shape}, expected {expected.shape} {context}.")
    if not np.all(np.isfinite(arr)):
        _fail(f"{what} contains NaN or inf {context}.")
    err = arr - expected
    worst = np.unravel_index(np.argmax(np.abs(err)), err.shape)
    if abs(err[worst]) > atol:
        where = ", ".join(f"{n}={int(i)}" for n, i in zip(axis_names, worst))
        _fail(f"{what} is off at {where} by {_size_bucket(abs(err[worst]) / (atol / rtol))} "
              f"of the answer's scale (tolerance {rtol:g} relative) {context}.")


def _size_bucket(relative_error: float) -> str:
    """A coarse size of an error, relative to the answer's scale.

    Only a bucket is reported: an exact error would let a reader recover the reference
    answer from a stub that returns zeros (the error of a zero entry is the entry).
    """
    if relative_error > 0.1:
        return "more than 10%"
    if relative_error > 0.01:
        return "between 1% and 10%"
    return "less than 1%"


def _test_mdps() -> list[tuple[str, _mdp.TabularMDP, np.ndarray]]:
    """Small MDPs and policies the checkers test on (the reader never needs them)."""
    cases = []
    # a hand-sized MDP: state 1 is absorbing with reward 1 for action 0
    P = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    R = np.array([[0.0, 0.2], [1.0, 0.0]])
    hand = _mdp.TabularMDP(P, R, 0.9, np.array([1.0, 0.0]))
    cases.append(("on a 2-state test MDP", hand, np.array([[0.5, 0.5], [0.9, 0.1]])))
    for seed, (S, A, g) in enumerate([(3, 2, 0.8), (5, 3, 0.95)]):
        m = _mdp.random_mdp(S, A, gamma=g, seed=100 + seed)
        pi = _mdp.random_policy(S, A, seed=200 + seed)
        cases.append((f"on a random {S}-state, {A}-action MDP with gamma={g}", m, pi))
    return cases


def _policy_pairs() -> list[tuple[str, _mdp.TabularMDP, np.ndarray, np.ndarray]]:
    out = []
    for context, m, pi in _test_mdps():
        other = _mdp.random_policy(m.n_states, m.n_actions, seed=m.n_states * 31)
        out.append((context, m, pi, other))
    return out


def _scalar(got: Any, what: str) -> float:
    try:
        value = float(np.asarray(got, dtype=np.float64))
    except (TypeError, ValueError):
        _fail(f"{what} must return a single number, got {type(got).__name__}.")
    if not np.isfinite(value):
        _fail(f"{what} returned {value}.")
    return value
