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


def test_sampled_td_residual_fields_and_standard_error():
    m = M.random_mdp(2, 2, gamma=0.9, seed=4)
    n = 5

    def known(r, v, v_next, gamma):  # sample i at (s, a): i * (s + 1) + a
        i = np.arange(n)[:, None, None]
        s = np.arange(2)[None, :, None]
        a = np.arange(2)[None, None, :]
        return i * (s + 1) + a + 0 * r

    est = td.sampled_td_residual(m, np.zeros(2), n, seed=0, residual=known)
    i = np.arange(n, dtype=float)
    sd = np.sqrt(np.sum((i - i.mean()) ** 2) / (n - 1))
    for s in range(2):
        for a in range(2):
            assert est.mean[s, a] == pytest.approx(i.mean() * (s + 1) + a)
            assert est.stderr[s, a] == pytest.approx(sd * (s + 1) / np.sqrt(n))
    assert est.n == n and est.horizon == 1 and est.truncation == 0.0


def test_sampled_td_residual_is_float64_seeded_and_takes_two_samples():
    m = M.random_mdp(3, 2, gamma=0.9, seed=5)
    V = np.array([0.3, -1.0, 2.0])
    a = td.sampled_td_residual(m, V, 2, seed=7)
    b = td.sampled_td_residual(m, V, 2, seed=7)
    assert np.array_equal(a.mean, b.mean) and a.n == 2

    def single(r, v, v_next, gamma):
        return (r + gamma * v_next - v).astype(np.float32)

    c = td.sampled_td_residual(m, V, 3, seed=7, residual=single)
    assert c.mean.dtype == np.float64 and c.stderr.dtype == np.float64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 0}, r"^n_samples must"),
        ({"n_samples": 1}, r"^n_samples must be at least 2"),
        (
            {"n_samples": 3, "residual": lambda r, v, w, g: np.zeros(3)},
            r"^residual must return shape \(3, 3, 2\), got \(3,\)$",
        ),
    ],
)
def test_sampled_td_residual_messages(kwargs, message):
    m = M.random_mdp(3, 2, gamma=0.9, seed=5)
    with pytest.raises(ValueError, match=message):
        td.sampled_td_residual(m, np.zeros(3), **kwargs)


def test_stationary_distribution_refuses_several_and_clips_transients():
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0  # two absorbing states
    m = M.TabularMDP(P=P, R=np.zeros((2, 1)), gamma=0.9, mu=np.array([0.5, 0.5]))
    with pytest.raises(
        ValueError, match=r"^the chain of pi has several stationary distributions$"
    ):
        td.stationary_distribution(m, np.ones((2, 1)))
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = 1.0  # 0 is transient; 1 and 2 alternate
    P[1, 0, 2] = P[2, 0, 1] = 1.0
    m = M.TabularMDP(P=P, R=np.zeros((3, 1)), gamma=0.9, mu=np.ones(3) / 3)
    d = td.stationary_distribution(m, np.ones((3, 1)))
    assert np.all(d >= 0) and np.allclose(d, [0.0, 0.5, 0.5])


def test_linear_td_runs_with_one_feature_and_messages():
    m = M.random_mdp(3, 2, gamma=0.5, seed=6)
    pi = M.random_policy(3, 2, seed=7)
    out = td.linear_td_runs(m, pi, np.ones((3, 1)), 4, 2, seed=0)
    assert out.shape == (2, 3) and np.allclose(out[:, 0:1], out)  # constant feature
    with pytest.raises(ValueError, match=r"^features must have 2 dimension"):
        td.linear_td_runs(m, pi, np.ones(3), 4, 2, seed=0)
    with pytest.raises(ValueError, match=r"^n_steps must"):
        td.linear_td_runs(m, pi, np.ones((3, 1)), 0, 2, seed=0)


def _linear_case():
    return M.random_mdp(3, 2, gamma=0.5, seed=6), M.random_policy(3, 2, seed=7)


def test_linear_td_runs_random_states():
    m, pi = _linear_case()
    eye = np.eye(3)
    default = td.linear_td_runs(m, pi, eye, 50, 2, sampling="random_states", seed=1)
    uniform = td.linear_td_runs(
        m, pi, eye, 50, 2, sampling="random_states", state_dist=np.ones(3) / 3, seed=1
    )
    assert np.array_equal(default, uniform)
    again = td.linear_td_runs(m, pi, eye, 50, 2, sampling="random_states", seed=1)
    assert np.array_equal(default, again)
    # always state 2: tabular TD touches only V(2)
    only2 = td.linear_td_runs(
        m, pi, eye, 50, 2, sampling="random_states", state_dist=[0.0, 0.0, 1.0], seed=1
    )
    assert np.all(only2[:, :2] == 0.0) and np.all(only2[:, 2] != 0.0)
    # the edges of the admitted ranges
    td.linear_td_runs(m, pi, eye, 2, 1, alpha0=1.0, power=1.0, seed=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_steps": 1}, r"^n_steps must be at least 2"),
        ({"n_runs": 0}, r"^n_runs must"),
        ({"sampling": "other"}, r"^sampling must be"),
        (
            {"state_dist": np.ones(3) / 3},
            r"^state_dist is only used with sampling='random_states'$",
        ),
        (
            {"sampling": "random_states", "state_dist": [0.5, 0.5]},
            r"^state_dist must have shape",
        ),
        (
            {"sampling": "random_states", "state_dist": [0.5, 0.6, -0.1]},
            r"^state_dist ",
        ),
        ({"alpha0": 0.0}, r"^alpha0 must lie in \(0, 1\]"),
        ({"power": 0.5}, r"^power must lie in \(0\.5, 1\]"),
        ({"power": 1.5}, r"^power must lie in \(0\.5, 1\]"),
    ],
)
def test_linear_td_runs_messages(kwargs, message):
    m, pi = _linear_case()
    args = {"n_steps": 4, "n_runs": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        td.linear_td_runs(m, pi, np.eye(3), **args)


def test_linear_td_runs_averages_the_second_half_by_hand():
    # one state, one action, reward 1: delta = 1 + gamma theta - theta, no randomness
    m = M.TabularMDP(P=np.ones((1, 1, 1)), R=np.ones((1, 1)), gamma=0.5, mu=np.ones(1))
    theta, kept = 0.0, []
    for t in range(5):
        theta += (1.0 + t / 100.0) ** -0.7 * (1.0 + 0.5 * theta - theta)
        if t >= 2:
            kept.append(theta)
    got = td.linear_td_runs(m, np.ones((1, 1)), np.ones((1, 1)), 5, 2, seed=0)
    assert np.allclose(got, np.mean(kept))


def test_td0_refuses_a_schedule_above_one_and_names_n_steps():
    m = M.random_mdp(2, 2, gamma=0.9, seed=60)
    pi = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"^alpha\(1\) returned 1\.5; step sizes must lie in \(0, 1\]$"):
        td.td0(m, pi, lambda n: 1.5, 5, seed=0)
    td.td0(m, pi, lambda n: 1.0, 5, seed=0)  # 1 is allowed
    with pytest.raises(ValueError, match=r"^n_steps must"):
        td.td0_runs(m, pi, 0.1, 0, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.ones(3), np.full(3, 1 / 3)), r"^features must"),
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.ones((3, 1, 1)), np.full(3, 1 / 3)), r"^features must"),
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.ones((2, 1)), np.full(3, 1 / 3)),
         r"^features must have shape \(3, k\) with k >= 1, got \(2, 1\)$"),
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.ones((3, 1)), np.full(2, 0.5)), r"^state_dist must have shape"),
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.ones((3, 1)), np.full(3, 0.5)), r"^state_dist must sum to 1"),
        (lambda m, pi: td.linear_td_fixed_point(m, pi, np.zeros((3, 1)), np.full(3, 1 / 3)),
         r"^the linear TD system is singular for these features and state_dist$"),
        (lambda m, pi: td.weighted_projection(np.ones(3), np.ones((3, 1)), np.full(3, 0.5)), r"^state_dist must sum to 1"),
        (lambda m, pi: td.weighted_projection(np.ones(2), np.ones((3, 1)), np.full(3, 1 / 3)), r"^values must have shape"),
        (lambda m, pi: td.weighted_projection(np.ones(3), np.ones(3), np.full(3, 1 / 3)), r"^features must"),
        (lambda m, pi: td.weighted_projection(np.ones(3), np.ones((3, 1, 1)), np.full(3, 1 / 3)), r"^features must"),
    ],
)
def test_linear_td_messages(call, message):
    m = M.random_mdp(3, 2, gamma=0.9, seed=61)
    with pytest.raises(ValueError, match=message):
        call(m, np.full((3, 2), 0.5))


def test_weighted_projection_one_feature_with_a_single_positive_feature():
    # one feature per state, equal weights: the projection of v on span{phi} is
    # phi (phi . v) / (phi . phi)
    phi, v = np.array([1.0, 2.0, 0.0]), np.array([3.0, 1.0, 5.0])
    got = td.weighted_projection(v, phi[:, None], np.full(3, 1 / 3))
    assert np.allclose(got, phi * (phi @ v) / (phi @ phi))


def _linear_td_reference(m, pi, Phi, n_steps, n_runs, state_dist, seed):
    """linear_td_runs written plainly: one run at a time, all uniforms drawn at once.

    NumPy's generator fills arrays from one stream in C order, so drawing the
    ``(n_steps, 3, n_runs)`` uniforms in one call consumes the stream exactly as the
    companion's chunks of 4096 steps do; the values must agree to rounding.
    """
    rng = np.random.default_rng(seed)
    s0 = np.minimum((rng.random((n_runs, 1)) >= np.cumsum(m.mu)).sum(axis=1), 2)
    u = rng.random((n_steps, 3, n_runs))
    out = []
    for r in range(n_runs):
        theta, total, s = np.zeros(Phi.shape[1]), np.zeros(Phi.shape[1]), s0[r]
        for t in range(n_steps):
            if state_dist is not None:
                s = int(np.searchsorted(np.cumsum(state_dist), u[t, 0, r], side="right"))
            a = int(np.searchsorted(np.cumsum(pi[s]), u[t, 1, r], side="right"))
            s2 = int(np.searchsorted(np.cumsum(m.P[s, a]), u[t, 2, r], side="right"))
            delta = m.R[s, a] + m.gamma * Phi[s2] @ theta - Phi[s] @ theta
            theta = theta + (1.0 + t / 100.0) ** -0.7 * delta * Phi[s]
            if t >= n_steps // 2:
                total += theta
            s = s2
        out.append(Phi @ (total / (n_steps - n_steps // 2)))
    return np.array(out)


@pytest.mark.parametrize("state_dist", [None, [0.2, 0.5, 0.3]])
def test_linear_td_runs_matches_a_plain_version_across_chunks(state_dist):
    # 4100 steps: two chunks of uniforms (4096 + 4); the third column of the uniforms
    # draws s', the first the state of "random_states" sampling, the second the action
    m, pi = _linear_case()
    Phi = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 1.0]])
    sampling = "trajectory" if state_dist is None else "random_states"
    got = td.linear_td_runs(
        m, pi, Phi, 4100, 2, sampling=sampling, state_dist=state_dist, seed=3
    )
    want = _linear_td_reference(m, pi, Phi, 4100, 2, state_dist, 3)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)


def _td0_reference(m, pi, alpha, n_steps, n_runs, state_dist, marks, seed):
    """td0_runs written plainly: one run at a time, all uniforms drawn at once (the same
    stream as the companion's blocks of 4096 steps), tabular TD(0) with a step size
    that is a function of the state's visit count."""
    rng = np.random.default_rng(seed)
    S = m.n_states
    s0 = np.minimum((rng.random((n_runs, 1)) >= np.cumsum(m.mu)).sum(axis=1), S - 1)
    if state_dist is not None:  # random_states draws no start state
        rng = np.random.default_rng(seed)
    u = rng.random((marks[-1], 3, n_runs))
    out = np.empty((len(marks), n_runs, S))
    for r in range(n_runs):
        V, visits, s = np.zeros(S), np.zeros(S, dtype=int), s0[r]
        for t in range(marks[-1]):
            if state_dist is not None:
                s = int(np.searchsorted(np.cumsum(state_dist), u[t, 0, r], side="right"))
            a = int(np.searchsorted(np.cumsum(pi[s]), u[t, 1, r], side="right"))
            s2 = int(np.searchsorted(np.cumsum(m.P[s, a]), u[t, 2, r], side="right"))
            visits[s] += 1
            V[s] += alpha(visits[s]) * (m.R[s, a] + m.gamma * V[s2] - V[s])
            s = s2
            if t + 1 in marks:
                out[marks.index(t + 1), r] = V
    return out


@pytest.mark.parametrize("state_dist", [None, [0.2, 0.5, 0.3]])
def test_td0_runs_matches_a_plain_version_across_blocks(state_dist):
    m, pi = _linear_case()
    marks = [1, 4096, 4100]
    alpha = lambda n: (1.0 + n) ** -0.6
    sampling = "trajectory" if state_dist is None else "random_states"
    got = td.td0_runs(m, pi, alpha, 4100, 2, sampling=sampling, state_dist=state_dist,
                      checkpoints=marks, seed=4)
    want = _td0_reference(m, pi, alpha, 4100, 2, state_dist, marks, 4)
    assert got.shape == (3, 2, 3)
    assert np.allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampling": "random_states", "state_dist": [0.5, 0.5]}, r"^state_dist must have shape \(3,\)"),
        ({"sampling": "random_states", "state_dist": [0.5, 0.5, 0.0]},
         r"^state_dist must give every state a positive probability$"),
        ({"checkpoints": [[1, 2]]}, r"^checkpoints must be increasing integers in \[1, n_steps=10\]"),
        ({"checkpoints": []}, r"^checkpoints must be increasing"),
        ({"checkpoints": [1.0, 2.0]}, r"^checkpoints must be increasing"),
        ({"checkpoints": [2, 2]}, r"^checkpoints must be increasing"),
        ({"checkpoints": [0, 2]}, r"^checkpoints must be increasing"),
        ({"checkpoints": [2, 11]}, r"^checkpoints must be increasing"),
    ],
)
def test_td0_runs_messages(kwargs, message):
    m, pi = _linear_case()
    with pytest.raises(ValueError, match=message):
        td.td0_runs(m, pi, 0.5, 10, 2, seed=0, **kwargs)


def test_td0_runs_accepts_the_edges():
    m, pi = _linear_case()
    out = td.td0_runs(m, pi, 0.5, 10, 2, sampling="random_states",
                      state_dist=[0.25, 0.25, 0.5], checkpoints=[1, 10], seed=0)
    assert out.shape == (2, 2, 3)
    assert td.td0_runs(m, pi, 0.5, 10, 2, checkpoints=np.array([10]), seed=0).shape == (1, 2, 3)
    every = td.td0_runs(m, pi, 0.5, 3, 2, checkpoints=[1, 2, 3], seed=0)  # steps of 1
    assert np.array_equal(every[-1], td.td0_runs(m, pi, 0.5, 3, 2, seed=0)[0])


# ------------------------------------------------- step sizes of the vectorised runs
def test_evaluate_steps_constant_path_does_not_call_the_schedule():
    def step(n):
        raise AssertionError("a constant schedule is not called")

    step.constant = 0.3
    assert td._evaluate_steps(step, np.array([1, 2])) == 0.3
    assert td._evaluate_steps(td._step_size(0.25), np.array([4, 5])) == 0.25


def test_evaluate_steps_calls_a_vectorised_schedule_once_with_the_counts():
    calls = []

    def alpha(n):
        calls.append(n)
        return 1.0 / (1.0 + np.asarray(n))

    counts = np.array([1, 3, 7])
    got = td._evaluate_steps(alpha, counts)
    assert got.dtype == np.float64 and np.allclose(got, [1 / 2, 1 / 4, 1 / 8])
    assert len(calls) == 1 and isinstance(calls[0], np.ndarray) and np.array_equal(calls[0], counts)
    # whatever the schedule's dtype, the step sizes are float64
    got = td._evaluate_steps(lambda n: (0.5 / np.asarray(n)).astype(np.float32), counts)
    assert got.dtype == np.float64 and np.allclose(got, [0.5, 0.5 / 3, 0.5 / 7])


def test_evaluate_steps_falls_back_to_one_count_at_a_time():
    calls = []

    def alpha(n):  # refuses arrays
        calls.append(n)
        if not isinstance(n, int):
            raise TypeError("scalars only")
        return 0.5 / n

    got = td._evaluate_steps(alpha, np.array([1, 2]))
    assert np.allclose(got, [0.5, 0.25]) and calls[1:] == [1, 2]
    # a schedule returning the wrong shape is also evaluated count by count
    got = td._evaluate_steps(lambda n: 0.5 if isinstance(n, int) else np.array([0.5]), np.array([1, 2]))
    assert np.array_equal(got, [0.5, 0.5])


@pytest.mark.parametrize(
    "alpha, message",
    [
        (lambda n: np.where(n == 3, 2.0, 0.5), r"^alpha\(3\) returned 2\.0; step sizes must lie in \(0, 1\]$"),
        (lambda n: np.where(n == 3, 0.0, 0.5), r"^alpha\(3\) returned 0\.0; "),
        (lambda n: np.where(n == 3, np.nan, 0.5), r"^alpha\(3\) returned nan; "),
        (lambda n: np.where(n == 3, -0.5, 0.5), r"^alpha\(3\) returned -0\.5; "),
        (lambda n: np.where(n == 3, 2.0, 1.0), r"^alpha\(3\) returned 2\.0; "),  # 1 is allowed
    ],
)
def test_evaluate_steps_names_the_first_bad_count(alpha, message):
    with pytest.raises(ValueError, match=message):
        td._evaluate_steps(alpha, np.array([1, 2, 3, 3]))
    assert np.array_equal(td._evaluate_steps(lambda n: 0 * n + 1.0, np.array([1, 2])), [1.0, 1.0])
