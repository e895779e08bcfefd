"""Tests of companion.gae."""

import numpy as np
import pytest
import torch

from companion.gae import gae, k_step_advantage, lambda_returns
from companion.pg import reward_to_go


def plain_gae(r, v, nv, term, trunc, gamma, lam):
    """Independent reference: the definition sum_l (gamma lam)^l delta_{t+l}, cut at episode ends."""
    T = len(r)
    delta = [r[t] + gamma * (1 - term[t]) * nv[t] - v[t] for t in range(T)]
    out = np.zeros(T)
    for t in range(T):
        total, weight = 0.0, 1.0
        for j in range(t, T):
            total += weight * delta[j]
            if term[j] or trunc[j]:
                break
            weight *= gamma * lam
        out[t] = total
    return out


def test_gae_single_terminal_reward_constant_value():
    # SB3-style hand case: reward 1 at the last step, V = 0.5 everywhere, terminated at the end
    r = np.array([0.0, 0.0, 1.0])
    v = np.full(3, 0.5)
    adv = gae(r, v, v, [0, 0, 1], [0, 0, 0], gamma=1.0, lam=1.0)
    assert adv == pytest.approx([0.5, 0.5, 0.5])          # return 1 minus V = 0.5 at every step
    adv0 = gae(r, v, v, [0, 0, 1], [0, 0, 0], gamma=1.0, lam=0.0)
    assert adv0 == pytest.approx([0.0, 0.0, 0.5])         # lambda = 0: the TD residuals


def test_gae_matches_definition_with_mixed_episode_ends():
    rng = np.random.default_rng(0)
    T = 40
    r, v, nv = rng.normal(size=T), rng.normal(size=T), rng.normal(size=T)
    term, trunc = rng.random(T) < 0.1, rng.random(T) < 0.1
    for lam in (0.0, 0.5, 0.95, 1.0):
        assert np.allclose(gae(r, v, nv, term, trunc, 0.9, lam), plain_gae(r, v, nv, term, trunc, 0.9, lam))


def test_gae_batched_equals_columns_and_torch():
    rng = np.random.default_rng(1)
    T, N = 25, 6
    args = [rng.normal(size=(T, N)) for _ in range(3)] + [rng.random((T, N)) < 0.1, rng.random((T, N)) < 0.05]
    out = gae(*args, gamma=0.99, lam=0.9)
    for n in range(N):
        assert np.allclose(out[:, n], gae(*(a[:, n] for a in args), gamma=0.99, lam=0.9))
    out_t = gae(*(torch.as_tensor(a) for a in args), gamma=0.99, lam=0.9)
    assert isinstance(out_t, torch.Tensor) and np.allclose(out_t.numpy(), out)


def test_lambda_one_is_monte_carlo_minus_value_and_returns():
    rng = np.random.default_rng(2)
    r, v = rng.normal(size=10), rng.normal(size=10)
    term = np.zeros(10)
    term[-1] = 1
    nv = np.append(v[1:], 123.0)                        # the value after a terminal step is ignored
    assert np.allclose(gae(r, v, nv, term, np.zeros(10), 0.9, 1.0), reward_to_go(r, 0.9) - v)
    assert np.allclose(lambda_returns(r, v, nv, term, np.zeros(10), 0.9, 1.0), reward_to_go(r, 0.9))


def test_truncation_bootstraps_and_termination_does_not():
    ones = np.ones(1)
    assert gae(ones, 0 * ones, 5 * ones, [1], [0], 0.5, 0.9) == pytest.approx([1.0])
    assert gae(ones, 0 * ones, 5 * ones, [0], [1], 0.5, 0.9) == pytest.approx([3.5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(values=np.zeros(4)), "values must have shape"),
        (dict(terminated=[0, 2, 0]), "0/1 or bool"),
        (dict(rewards=[np.nan, 0, 0]), "NaN"),
        (dict(gamma=1.5), "gamma must lie in"),
        (dict(lam=-0.1), "lam must lie in"),
    ],
)
def test_gae_refuses_bad_input(kwargs, message):
    args = dict(rewards=np.zeros(3), values=np.zeros(3), next_values=np.zeros(3), terminated=[0, 0, 0],
                truncated=[0, 0, 0], gamma=0.9, lam=0.9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        gae(**args)


def test_gae_refuses_mixed_torch_numpy_and_bad_rank():
    with pytest.raises(ValueError, match="must all be tensors"):
        gae(torch.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), 0.9, 0.9)
    with pytest.raises(ValueError, match=r"\(T,\) or \(T, N\)"):
        z = np.zeros((2, 2, 2))
        gae(z, z, z, z, z, 0.9, 0.9)


def test_k_step_advantage_by_hand_and_against_gae():
    assert k_step_advantage([1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], 0.5, 2) == pytest.approx([1.5, 1.5, 1.0])
    rng = np.random.default_rng(3)
    r, v = rng.normal(size=12), rng.normal(size=13)
    # k = 1 is the TD residual; k >= T is GAE(lambda = 1) with a bootstrap at the end
    assert np.allclose(k_step_advantage(r, v, 0.9, 1), r + 0.9 * v[1:] - v[:-1])
    trunc = np.zeros(12)
    trunc[-1] = 1
    assert np.allclose(k_step_advantage(r, v, 0.9, 50), gae(r, v[:-1], v[1:], np.zeros(12), trunc, 0.9, 1.0))
    with pytest.raises(ValueError, match="values must have shape"):
        k_step_advantage(r, v[:-1], 0.9, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        k_step_advantage(r, v, 0.9, 0)
    assert np.all(np.isfinite(k_step_advantage(r, v, 0.0, 3)))  # gamma = 0 is fine
