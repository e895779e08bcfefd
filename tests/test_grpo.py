"""Tests of companion.grpo."""

import numpy as np
import pytest
import torch

from companion import grpo


def test_group_advantages_by_hand():
    adv = grpo.group_advantages(np.array([[1.0, 0.0]]), eps=1e-12)
    assert adv == pytest.approx(np.array([[1 / np.sqrt(2), -1 / np.sqrt(2)]]))   # sample std of (1, 0) is 1/sqrt(2)
    assert np.all(grpo.group_advantages(np.full((2, 4), 3.0)) == 0)
    assert grpo.group_advantages(np.array([[1.0, 0.0, 0.0]]), scale=False) == pytest.approx(np.array([[2 / 3, -1 / 3, -1 / 3]]))


def test_group_advantages_numpy_and_torch_agree():
    r = np.random.default_rng(0).normal(size=(5, 6))
    a_np = grpo.group_advantages(r)
    a_t = grpo.group_advantages(torch.as_tensor(r))
    assert isinstance(a_t, torch.Tensor) and np.allclose(a_t.numpy(), a_np)
    assert np.allclose(a_np.mean(1), 0) and np.allclose(a_np.std(1, ddof=1), 1, atol=1e-3)


def test_group_advantages_refuses_bad_input():
    with pytest.raises(ValueError, match="G >= 2"):
        grpo.group_advantages(np.ones((3, 1)))
    with pytest.raises(ValueError, match="shape"):
        grpo.group_advantages(np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        grpo.group_advantages(np.array([[1.0, np.nan]]))


def test_kl_k3_unbiased_nonnegative_and_types():
    p = np.array([0.2, 0.5, 0.3])
    q = np.array([0.4, 0.4, 0.2])
    k3 = grpo.kl_k3(np.log(p), np.log(q))
    assert np.all(k3 >= 0) and p @ k3 == pytest.approx(np.sum(p * np.log(p / q)))
    t = grpo.kl_k3(torch.log(torch.tensor(p)), torch.log(torch.tensor(q)))
    assert np.allclose(t.numpy(), k3)
    assert grpo.kl_k3(np.zeros(2), np.zeros(2)) == pytest.approx(np.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        grpo.kl_k3(np.zeros(2), np.zeros(3))


def _batch():
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    return mask, torch.tensor([2.0, -1.0])


@pytest.mark.parametrize("loss_type, weights", [
    ("grpo", [[1 / 2, 0, 0], [1 / 6, 1 / 6, 1 / 6]]),
    ("dapo", [[1 / 4, 0, 0], [1 / 4, 1 / 4, 1 / 4]]),
    ("dr_grpo", [[1 / 6, 0, 0], [1 / 6, 1 / 6, 1 / 6]]),
])
def test_grpo_loss_token_weights(loss_type, weights):
    mask, adv = _batch()
    logp = torch.zeros(2, 3, requires_grad=True)
    grpo.grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.0, loss_type=loss_type).backward()
    assert torch.allclose(logp.grad, -adv[:, None] * torch.tensor(weights))


def test_grpo_loss_clipping_and_kl():
    mask, adv = _batch()
    logp_old = torch.zeros(2, 3)
    logp = torch.full((2, 3), np.log(1.5))            # ratio 1.5: clipped at 1.2 for A > 0, not for A < 0
    loss = grpo.grpo_loss(logp, logp_old, logp, adv, mask, clip_eps=0.2, beta=0.0, loss_type="dapo")
    per_token = torch.tensor([[1.2 * 2, 0, 0], [-1.5, -1.5, -1.5]])
    assert loss.item() == pytest.approx(-(per_token * mask).sum().item() / 4)
    with_kl = grpo.grpo_loss(logp, logp_old, logp_old, adv, mask, clip_eps=0.2, beta=0.5, loss_type="dapo")
    k3 = 1 / 1.5 - np.log(1 / 1.5) - 1
    assert with_kl.item() == pytest.approx(loss.item() + 0.5 * k3)


def test_grpo_loss_refuses_bad_input():
    mask, adv = _batch()
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="loss_type"):
        grpo.grpo_loss(z, z, z, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="shape of logp"):
        grpo.grpo_loss(z, torch.zeros(2, 2), z, adv, mask)
    with pytest.raises(ValueError, match="advantages"):
        grpo.grpo_loss(z, z, z, torch.zeros(3), mask)
    with pytest.raises(ValueError, match="at least one valid token"):
        grpo.grpo_loss(z, z, z, adv, torch.zeros(2, 3))
