"""Tests of ``companion.pg`` that kill mutants the other tests let survive (tests/MUTATION.md)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch

from companion import mdp as M
from companion import pg


def stuck_case(gamma=0.9):
    """Two states, two actions; every step goes to state 0 and the start is state 0,
    so state 1 is never reached: its conditional expectations are NaN."""
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    R = np.array([[1.0, -2.0], [5.0, 7.0]])
    m = M.TabularMDP(P=P, R=R, gamma=gamma, mu=np.array([1.0, 0.0]))
    pi = np.array([[0.25, 0.75], [0.5, 0.5]])
    return m, pi


def stuck_values(gamma, H):
    """E[R_t | s_t = 0, a_t = a] and E[R_t | s_t = 0] written out for stuck_case."""
    r_pi = 0.25 * 1.0 + 0.75 * -2.0
    R0 = np.array([1.0, -2.0])
    q = np.array(
        [R0 + sum(gamma ** (j - t) * r_pi for j in range(t + 1, H)) for t in range(H)]
    )
    v = np.array([sum(gamma ** (j - t) * r_pi for j in range(t, H)) for t in range(H)])
    return q, v


def test_conditional_expectations_are_nan_where_unreachable():
    m, pi = stuck_case()
    q, v = stuck_values(0.9, 3)
    got = pg.conditional_reward_to_go(m, pi, 3)
    assert np.allclose(got[:, 0, :], q)
    assert np.all(np.isnan(got[:, 1, :]))
    got_v = pg.conditional_state_reward_to_go(m, pi, 3)
    assert np.allclose(got_v[:, 0], v)
    assert np.all(np.isnan(got_v[:, 1]))


def test_conditional_state_reward_to_go_uses_the_given_gamma():
    m, pi = stuck_case(gamma=0.9)
    _, v = stuck_values(0.5, 3)
    got = pg.conditional_state_reward_to_go(m, pi, 3, gamma=0.5)
    assert np.allclose(got[:, 0], v)


def test_enumeration_gaps_skip_unreachable_entries():
    m, pi = stuck_case()
    q, v = stuck_values(0.9, 3)
    v_table = np.stack([v, np.full(3, 99.0)], axis=1)  # state 1: any value
    q_table = np.stack([q, np.full((3, 2), 99.0)], axis=1)
    assert pg.v_enumeration_gap(m, pi, v_table) == pytest.approx(0.0, abs=1e-12)
    assert pg.q_enumeration_gap(m, pi, q_table) == pytest.approx(0.0, abs=1e-12)
    v_table[1, 0] += 0.5
    q_table[2, 0, 1] -= 0.25
    assert pg.v_enumeration_gap(m, pi, v_table) == pytest.approx(0.5)
    assert pg.q_enumeration_gap(m, pi, q_table) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda m, pi: pg.v_enumeration_gap(m, pi, np.zeros(3)),
            r"^v_table must have 2 dimension",
        ),
        (
            lambda m, pi: pg.v_enumeration_gap(m, pi, np.zeros((3, 3))),
            r"^v_table must have shape \(H, 2\), got \(3, 3\)$",
        ),
        (
            lambda m, pi: pg.q_enumeration_gap(m, pi, np.zeros((3, 2))),
            r"^q_table must have 3 dimension",
        ),
        (
            lambda m, pi: pg.exact_gradient_gap(m, np.zeros((2, 3)), np.zeros((2, 2))),
            r"^theta must have shape \(2, 2\)",
        ),
        (
            lambda m, pi: pg.exact_gradient_gap(m, np.zeros((2, 2)), np.zeros((2, 3))),
            r"^grad must have shape \(2, 2\)",
        ),
        (
            lambda m, pi: pg.value_baseline(m, pi, np.array([[0, 2]])),
            r"^states must lie in \[0, 2\)$",
        ),
        (
            lambda m, pi: pg.value_baseline(m, pi, np.array([[-1, 0]])),
            r"^states must lie in \[0, 2\)$",
        ),
        (
            lambda m, pi: pg.softmax_stability_gap(3),
            r"^softmax must be callable, got int$",
        ),
        (
            lambda m, pi: pg.jacobian_asymmetry(lambda x: x, [np.nan]),
            r"^theta contains NaN",
        ),
    ],
)
def test_messages_name_the_argument(call, message):
    m, pi = stuck_case()
    with pytest.raises(ValueError, match=message):
        call(m, pi)


def test_value_baseline_accepts_the_last_state():
    m, pi = stuck_case()
    b, J = pg.value_baseline(m, pi, np.array([[0, 1], [1, 1]]))
    V = pg.finite_horizon_v(m, pi, 2)
    assert np.allclose(b, [[V[0, 0], V[1, 1]], [V[0, 1], V[1, 1]]])
    assert J == pytest.approx(V[0, 0])


def test_discounted_return_torch_keeps_float32():
    m = M.random_mdp(3, 2, gamma=0.8, seed=4)
    theta = np.random.default_rng(5).normal(size=(3, 2))
    pi = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
    P_pi = np.einsum("sa,sat->st", pi, m.P)
    want = m.mu @ np.linalg.solve(np.eye(3) - 0.8 * P_pi, (pi * m.R).sum(1))
    got = pg.discounted_return_torch(m, torch.tensor(theta, dtype=torch.float32))
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_softmax_stability_gap_feeds_the_documented_logits():
    seen = []

    def record(x):
        seen.append(np.array(x))
        return np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])

    assert pg.softmax_stability_gap(record) == pytest.approx(0.0, abs=1e-15)
    base = np.array([[1000.0, 0.0, -1000.0], [3.0, 3.0, 3.0]])
    assert len(seen) == 2
    assert np.array_equal(seen[0], base) and np.array_equal(seen[1], base + 7.0)


def test_softmax_stability_gap_of_the_naive_formula_warns_nothing():
    def naive(x):
        return np.exp(x) / np.exp(x).sum(1, keepdims=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pg.softmax_stability_gap(naive) == float("inf")


def test_softmax_stability_gap_accepts_exact_fractions():
    third = Fraction(1, 3)

    def exact(x):
        return [[Fraction(1), Fraction(0), Fraction(0)], [third, third, third]]

    assert pg.softmax_stability_gap(exact) == pytest.approx(0.0, abs=1e-15)


def test_log_derivative_fd_gap_refuses_zero_probability():
    x = sp.Symbol("x", real=True)
    with pytest.raises(ValueError, match=r"^prob must be positive at point, got 0"):
        pg.log_derivative_fd_gap(x**2, [x], {x: 0.0})


def test_log_derivative_fd_gap_is_relative_to_a_small_derivative():
    x = sp.Symbol("x", real=True)
    prob = sp.Rational(1, 1000) * sp.exp(x)  # derivative 1e-3 at 0
    gap = pg.log_derivative_fd_gap(prob, [x], {x: 0.0}, form=lambda p, d: 2 * p * d)
    assert gap == pytest.approx(1.0, rel=1e-6)  # |2e-3 - 1e-3| / 1e-3


def test_jacobian_asymmetry_of_unit_and_zero_fields():
    def shift(x):  # Jacobian [[0, 1], [0, 0]]: largest entry 1, asymmetry 1
        return torch.stack([x[1], 0 * x[0]])

    assert pg.jacobian_asymmetry(shift, [0.3, -0.2]) == pytest.approx(1.0)
    assert pg.jacobian_asymmetry(lambda x: 0 * x, [0.3, -0.2]) == 0.0


@pytest.mark.parametrize(
    "theta",
    [torch.zeros(2, 3, dtype=torch.float64), torch.tensor([[0.0, np.nan], [0, 0]])],
)
def test_gradient_field_refuses_a_bad_tensor(theta):
    m, _ = stuck_case()
    with pytest.raises(
        ValueError, match=r"^theta must be a finite tensor of shape \(2, 2\)$"
    ):
        pg.gradient_field(m, theta, 2)


def test_gradient_field_types():
    m = M.random_mdp(3, 2, gamma=0.8, seed=6)
    theta = np.random.default_rng(7).normal(size=(3, 2))
    want = pg.gradient_field(m, theta, 3)
    assert isinstance(want, np.ndarray) and want.shape == (3, 2)
    got = pg.gradient_field(m, torch.tensor(theta, dtype=torch.float32), 3)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert np.allclose(got.numpy(), want, atol=1e-6)


def test_score_refuses_the_action_past_the_end():
    with pytest.raises(ValueError, match=r"^\(state, action\) must lie in"):
        pg.score(np.zeros((2, 2)), 0, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: pg.finite_horizon_v(m, np.full((2, 2), 0.5), 0), r"^horizon must"),
        (
            lambda m: pg.autograd_finite_horizon_gradient(m, np.zeros((2, 3)), 2),
            r"^theta must have shape \(2, 2\)",
        ),
        (
            lambda m: pg.enumerated_estimates(m, np.zeros((3, 2)), 2, np.zeros),
            r"^theta must have shape \(2, 2\)",
        ),
        (
            lambda m: pg.enumerated_estimates(m, np.zeros((2, 2)), 2, 5),
            r"^estimate must be callable, got int$",
        ),
    ],
)
def test_more_messages_name_the_argument(call, message):
    m, _ = stuck_case()
    with pytest.raises(ValueError, match=message):
        call(m)


def test_enumerated_estimates_are_float():
    m, _ = stuck_case()
    probs, g = pg.enumerated_estimates(
        m, np.zeros((2, 2)), 2, lambda s, a, r: [[int(s[0]), 1], [0, 2]]
    )
    assert g.dtype == np.float64 and g.shape == (16, 2, 2)
    assert probs.sum() == pytest.approx(1.0)


def _finite_horizon_return_numpy(m, pi, H):
    V = np.zeros(m.n_states)
    for _ in range(H):
        V = np.array(
            [
                sum(
                    pi[s, a] * (m.R[s, a] + m.gamma * m.P[s, a] @ V)
                    for a in range(m.n_actions)
                )
                for s in range(m.n_states)
            ]
        )
    return m.mu @ V


def _low_precision_policy(dtype):
    pi = torch.softmax(torch.tensor([[0.3, -1.1], [2.0, 0.7], [0.1, 0.2]]), 1)
    return pi.to(dtype)


def test_finite_horizon_return_checks_a_float16_tensor_in_float64():
    m = M.random_mdp(3, 2, gamma=0.8, seed=8)
    with pytest.raises(ValueError, match=r"^pi must sum to 1"):
        pg.finite_horizon_return(m, _low_precision_policy(torch.float16), 3)


def test_finite_horizon_return_keeps_a_float32_tensor():
    dtype = torch.float32
    m = M.random_mdp(3, 2, gamma=0.8, seed=8)
    pi = _low_precision_policy(dtype)
    sums = pi.double().sum(1).numpy()
    assert np.max(np.abs(sums - 1)) > 1e-12  # rows sum to 1 only in low precision
    got = pg.finite_horizon_return(m, pi, 3)
    assert got.dtype == dtype
    want = _finite_horizon_return_numpy(m, pi.double().numpy(), 3)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_reinforce_gradient_accepts_whole_float_indices():
    theta = np.array([[0.2, -0.4], [1.0, 0.5]])
    r = [1.0, -0.5, 2.0]
    ints = pg.reinforce_gradient(theta, [0, 1, 1], [1, 0, 1], r, 0.9)
    floats = pg.reinforce_gradient(theta, [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], r, 0.9)
    assert np.array_equal(ints, floats)


@pytest.mark.parametrize(
    "states, actions",
    [([0, 2], [0, 1]), ([-1, 0], [0, 1]), ([0, 1], [0, 2]), ([0, 1], [-1, 0])],
)
def test_reinforce_gradient_refuses_indices_out_of_range(states, actions):
    with pytest.raises(ValueError, match=r"^states must lie in \[0, 2\) and actions"):
        pg.reinforce_gradient(np.zeros((2, 2)), states, actions, [1.0, 1.0])


@pytest.mark.parametrize(
    "theta, rewards, message",
    [
        (np.zeros(2), [1.0], r"^theta must have 2 dimension"),
        (np.zeros((2, 2)), 1.0, r"^rewards must have 1 dimension"),
    ],
)
def test_reinforce_gradient_messages(theta, rewards, message):
    with pytest.raises(ValueError, match=message):
        pg.reinforce_gradient(theta, [0], [0], rewards)


def test_enumerate_trajectories_of_two_steps():
    m = M.random_mdp(2, 2, gamma=0.9, seed=9)
    pi = M.random_policy(2, 2, seed=10)
    states, actions, probs = pg.enumerate_trajectories(m, pi, 2)
    for (s0, s1), (a0, a1), p in zip(states, actions, probs):
        assert p == pytest.approx(m.mu[s0] * pi[s0, a0] * m.P[s0, a0, s1] * pi[s1, a1])
    assert probs.sum() == pytest.approx(1.0)


def _bandit(n_actions):
    P = np.ones((1, n_actions, 1))
    return M.TabularMDP(P=P, R=np.zeros((1, n_actions)), gamma=0.5, mu=np.ones(1))


def test_enumerate_trajectories_limit():
    m = _bandit(1415)  # 1415**2 = 2_002_225 trajectories of two steps
    with pytest.raises(ValueError, match=r"^\(S\*A\)\^horizon = 2002225 trajectories"):
        pg.enumerate_trajectories(m, np.full((1, 1415), 1 / 1415), 2)
    m = _bandit(2_000_001)
    with pytest.raises(ValueError, match=r"^\(S\*A\)\^horizon = 2000001 trajectories"):
        pg.enumerate_trajectories(m, np.full((1, 2_000_001), 1 / 2_000_001), 1)
    m = _bandit(2_000_000)  # exactly the limit: enumerated
    _, _, probs = pg.enumerate_trajectories(m, np.full((1, 2_000_000), 5e-7), 1)
    assert probs.shape == (2_000_000,)


def test_symbolic_softmax_entries():
    with pytest.raises(ValueError, match=r"^n_actions must"):
        pg.symbolic_softmax(2, 0)
    theta, pi = pg.symbolic_softmax(1, 3)
    assert theta[0, 0].is_real is True
    at_zero = {x: 0 for x in theta}
    assert [pi[0, a].subs(at_zero) for a in range(3)] == [sp.Rational(1, 3)] * 3


def test_symbolic_trajectory_probability_by_hand():
    pi = sp.Matrix(2, 2, lambda s, a: sp.Symbol(f"pi{s}{a}"))
    P = [
        [[sp.Symbol(f"P{s}{a}{t}") for t in range(2)] for a in range(2)]
        for s in range(2)
    ]
    mu = [sp.Symbol("mu0"), sp.Symbol("mu1")]
    got = pg.symbolic_trajectory_probability(pi, P, mu, [0, 1, 0], [1, 0])
    want = mu[0] * pi[0, 1] * P[0][1][1] * pi[1, 0] * P[1][0][0]
    assert sp.expand(got - want) == 0


def test_symbolic_is_zero_of_one_and_of_sample_points():
    x = sp.Symbol("x")
    assert pg.symbolic_is_zero(sp.Integer(1)) is False
    assert pg.symbolic_is_zero(x - 10) is False
    assert pg.symbolic_is_zero(sp.prod([x - k for k in range(1, 9)])) is False
    # zero at every point k/10 (k = 1..8) the check samples, yet not zero
    tricky = sp.prod([x - sp.Rational(k, 10) for k in range(1, 9)])
    with pytest.raises(RuntimeError, match=r"^could not decide whether"):
        pg.symbolic_is_zero(tricky)


def test_enumerated_estimates_message_of_a_wrong_shape():
    m, _ = stuck_case()
    with pytest.raises(
        ValueError, match=r"^estimate must return shape \(2, 2\), got \(3,\)$"
    ):
        pg.enumerated_estimates(m, np.zeros((2, 2)), 1, lambda s, a, r: np.zeros(3))


class _TwoStepEnv:
    """One copy; every episode lasts two steps (reward 1 each), float64 observations;
    gymnasium's next-step autoreset: the step after an end only resets (reward 0)."""

    def __init__(self):
        import gymnasium as gym

        self.single_action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, seed=None):
        self.t = 0
        return np.zeros((1, 3)), {}

    def step(self, actions):
        if self.t == 2:  # autoreset step
            self.t = 0
            return (
                np.zeros((1, 3)),
                np.zeros(1),
                np.zeros(1, bool),
                np.zeros(1, bool),
                {},
            )
        self.t += 1
        done = np.array([self.t == 2])
        return np.full((1, 3), float(self.t)), np.ones(1), done, np.zeros(1, bool), {}


@pytest.mark.parametrize("min_steps, n_episodes", [(2, 1), (3, 2), (4, 2)])
def test_collect_episodes_stops_once_enough_steps_are_complete(min_steps, n_episodes):
    torch.manual_seed(0)
    policy = torch.nn.Linear(3, 2)
    episodes = pg._collect_episodes(
        _TwoStepEnv(), policy, np.random.default_rng(0), min_steps, 0, "cpu"
    )
    assert len(episodes) == n_episodes
    for obs, act, rew in episodes:
        assert np.array_equal(obs, [[0.0] * 3, [1.0] * 3])
        assert np.array_equal(rew, [1.0, 1.0]) and act.shape == (2,)


class _OneStepEnvs:
    """Three copies; every episode is one step (reward 1); copy i observes i; the step
    after an end only resets (gymnasium's next-step autoreset). Records the actions."""

    def __init__(self):
        import gymnasium as gym

        self.single_action_space = gym.spaces.Discrete(3)
        self.obs = np.arange(3.0)[:, None] * np.ones((3, 2))
        self.sent, self.resetting = [], False

    def reset(self, seed=None):
        self.resetting = False
        return self.obs.copy(), {}

    def step(self, actions):
        self.sent.append(np.array(actions))
        done = np.full(3, not self.resetting)
        rewards = np.zeros(3) if self.resetting else np.ones(3)
        self.resetting = not self.resetting
        return self.obs.copy(), rewards, done, np.zeros(3, bool), {}


def test_collect_episodes_draws_one_uniform_per_copy():
    torch.manual_seed(0)
    policy = torch.nn.Linear(2, 3)
    envs = _OneStepEnvs()
    episodes = pg._collect_episodes(envs, policy, np.random.default_rng(5), 30, 0, "cpu")
    # by hand: inverse-CDF sampling, one uniform per copy and step, from the same stream
    rng = np.random.default_rng(5)
    with torch.no_grad():
        p = torch.softmax(policy(torch.as_tensor(envs.obs, dtype=torch.float32)), -1)
    cum = p.cumsum(-1).numpy().astype(np.float64)
    want = [np.minimum((rng.random((3, 1)) >= cum).sum(1), 2) for _ in envs.sent]
    assert np.array_equal(np.array(envs.sent), np.array(want))
    assert len({tuple(a) for a in want}) > 1  # the copies do not share one draw
    recorded = [int(act[0]) for _, act, _ in episodes]
    assert recorded == [int(a) for a in np.concatenate(want[::2])]
    assert all(rew.dtype == np.float64 for _, _, rew in episodes)


def test_train_reinforce_defaults_seed_0_and_a_progress_bar(monkeypatch):
    import companion.progress

    shown, descs, postfix = [], [], []

    class Bar:  # records what the bar would show, shows nothing
        def __init__(self, it):
            self.it = it

        def __iter__(self):
            return iter(self.it)

        def set_postfix(self, **kw):
            postfix.append(kw)

    def spy(*args, **kwargs):
        shown.append(kwargs.pop("disable", None))
        descs.append(kwargs.get("desc"))
        return Bar(args[0])

    monkeypatch.setattr(companion.progress, "tqdm", spy)
    config = pg.ReinforceConfig(n_epochs=2, steps_per_epoch=40, num_envs=2, hidden=(4,))
    _, default = pg.train_reinforce(config)
    _, zero = pg.train_reinforce(config, seed=0, progress=False)
    _, one = pg.train_reinforce(config, seed=1, progress=False)
    assert shown == [False, True, True]  # shown by default, hidden on request
    assert descs == ["REINFORCE (reward_to_go)"] * 3
    assert default.mean_return == zero.mean_return != one.mean_return
    assert postfix[:2] == [{"mean_return": f"{r:.1f}"} for r in default.mean_return]
    # the loss is computed in float32 (weights, observations and policy), so each
    # recorded value is a float32 number
    assert all(isinstance(x, float) and float(np.float32(x)) == x for x in default.loss)


class _Uniforms:
    """A stand-in for the generator: each call returns the next of ``values`` for every copy."""

    def __init__(self, values):
        self.values, self.i = values, 0

    def random(self, shape):
        u = self.values[self.i % len(self.values)]
        self.i += 1
        return np.full(shape, u)


def test_collect_episodes_inverse_cdf_edges():
    # float32 softmax whose cumulative sum ends at 0.99999994 < 1
    policy = torch.nn.Linear(2, 3)
    with torch.no_grad():
        policy.weight.zero_()
        logits = [0.40334683656692505, 0.8380263447761536, -0.7192575931549072]
        policy.bias.copy_(torch.tensor(logits))
        cum = torch.softmax(policy.bias, -1).cumsum(-1).numpy().astype(np.float64)
    assert cum[-1] < 1.0
    top = np.nextafter(1.0, 0.0)  # the largest uniform below 1
    envs = _OneStepEnvs()
    pg._collect_episodes(envs, policy, _Uniforms([cum[0], top]), 6, 0, "cpu")
    # u = F(0) exactly picks action 1 (a picks the first a with u < F(a)); a uniform
    # above the rounded F(last) still picks the last action, not one out of range
    assert [list(a) for a in envs.sent] == [[1, 1, 1], [2, 2, 2], [1, 1, 1]]


def test_step_weights_checks_rewards():
    with pytest.raises(ValueError, match=r"^rewards must have 1 dimension"):
        pg.step_weights(np.ones((3, 2)), 0.9)
    with pytest.raises(ValueError, match=r"^rewards "):
        pg.step_weights([1.0, np.nan], 0.9)


@pytest.mark.parametrize("field", ["n_epochs", "steps_per_epoch", "num_envs"])
def test_reinforce_config_names_the_field(field):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        pg.ReinforceConfig(**{field: 0})


def test_train_reinforce_messages_and_float32_policy():
    with pytest.raises(ValueError, match=r"^config must be a ReinforceConfig, got str$"):
        pg.train_reinforce("CartPole-v1")
    config = pg.ReinforceConfig(n_epochs=1, steps_per_epoch=20, num_envs=2, hidden=(4,))
    for seed in ("3", 1.5, -1, True):
        with pytest.raises(ValueError, match=r"^seed must be a non-negative integer"):
            pg.train_reinforce(config, seed=seed, progress=False)
    with pytest.raises(ValueError, match=r"^hidden \(each width\) must"):
        pg.ReinforceConfig(hidden=(4, 0))
    # the policy is float32 even where torch's default dtype is float64
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        policy, _ = pg.train_reinforce(config, seed=0, progress=False)
    finally:
        torch.set_default_dtype(old)
    assert all(p.dtype == torch.float32 for p in policy.parameters())


def test_train_reinforce_uses_the_configured_estimator():
    # the first epoch's episodes are the same; the update differs with the estimator
    base = dict(n_epochs=1, steps_per_epoch=40, num_envs=2, hidden=(4,))
    policies = [
        pg.train_reinforce(pg.ReinforceConfig(estimator=e, **base), seed=0, progress=False)[0]
        for e in ("reward_to_go", "full_return")
    ]
    a, b = (torch.cat([p.detach().flatten() for p in pol.parameters()]) for pol in policies)
    assert not torch.equal(a, b)
