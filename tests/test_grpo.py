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


@pytest.mark.parametrize("loss_type, kwargs, weights", [
    ("grpo", {}, [[1 / 2, 0, 0], [1 / 6, 1 / 6, 1 / 6]]),
    ("bnpo", {}, [[1 / 4, 0, 0], [1 / 4, 1 / 4, 1 / 4]]),
    ("dapo", {"group_size": 2}, [[1 / 4, 0, 0], [1 / 4, 1 / 4, 1 / 4]]),
    ("dapo", {"group_size": 1}, [[1 / 2, 0, 0], [1 / 6, 1 / 6, 1 / 6]]),
    ("dr_grpo", {"max_completion_length": 5}, [[1 / 10, 0, 0], [1 / 10, 1 / 10, 1 / 10]]),
])
def test_grpo_loss_token_weights(loss_type, kwargs, weights):
    mask, adv = _batch()
    logp = torch.zeros(2, 3, requires_grad=True)
    grpo.grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.0, loss_type=loss_type, **kwargs).backward()
    assert torch.allclose(logp.grad, -adv[:, None] * torch.tensor(weights))


def test_dapo_is_a_token_mean_per_group_not_over_the_batch():
    # two groups of two outputs: lengths (1, 1) and (3, 3)
    mask = torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]])
    w = grpo.aggregation_weights("dapo", mask, group_size=2)
    assert np.allclose(w[0, 0], 1 / 2 * 1 / 2) and np.allclose(w[2, 0], 1 / 2 * 1 / 6)
    batch_mean = mask.numpy() / mask.sum().item()                       # the "bnpo" normaliser
    assert not grpo.aggregation_weights_match("dapo", mask, batch_mean, group_size=2)
    assert grpo.aggregation_weights_match("bnpo", mask, batch_mean)


def test_dr_grpo_normaliser_is_the_generation_limit_not_the_padded_width():
    mask, _ = _batch()
    padded = mask.numpy() / (2 * 3)                                     # T = 3, the padded width
    limit = mask.numpy() / (2 * 8)
    assert grpo.aggregation_weights_match("dr_grpo", mask, limit, max_completion_length=8)
    assert not grpo.aggregation_weights_match("dr_grpo", mask, padded, max_completion_length=8)
    with pytest.raises(ValueError, match="max_completion_length"):
        grpo.aggregation_weights("dr_grpo", mask)


def test_grpo_loss_clipping_and_kl():
    mask, adv = _batch()
    logp_old = torch.zeros(2, 3)
    logp = torch.full((2, 3), np.log(1.5))            # ratio 1.5: clipped at 1.2 for A > 0, not for A < 0
    loss = grpo.grpo_loss(logp, logp_old, logp, adv, mask, clip_eps=0.2, beta=0.0, loss_type="bnpo")
    per_token = torch.tensor([[1.2 * 2, 0, 0], [-1.5, -1.5, -1.5]])
    assert loss.item() == pytest.approx(-(per_token * mask).sum().item() / 4)
    with_kl = grpo.grpo_loss(logp, logp_old, logp_old, adv, mask, clip_eps=0.2, beta=0.5, loss_type="bnpo")
    k3 = 1 / 1.5 - np.log(1 / 1.5) - 1
    assert with_kl.item() == pytest.approx(loss.item() + 0.5 * k3)
    unclipped = grpo.grpo_loss(logp, logp_old, logp, adv, mask, clip_eps=None, beta=0.0, loss_type="bnpo")
    assert unclipped.item() == pytest.approx(-(1.5 * 2 - 1.5 * 3) / 4)


_Z = torch.zeros(2, 3)
_M, _A = _batch()


@pytest.mark.parametrize("kwargs, match", [
    ({"loss_type": "ppo"}, "loss_type"),
    ({"logp_old": torch.zeros(2, 2)}, "shape of logp"),
    ({"advantages": torch.zeros(3)}, "advantages"),
    ({"advantages": torch.tensor([1.0, float("nan")])}, "advantages contains NaN"),
    ({"logp": torch.full((2, 3), float("nan"))}, "logp contains NaN"),
    ({"mask": torch.zeros(2, 3)}, "at least one valid token"),
    ({"mask": 2 * _M}, "only 0 and 1"),
    ({"mask": -_M}, "only 0 and 1"),
    ({"beta": float("nan")}, "beta"),
    ({"beta": -0.1}, "beta"),
    ({"beta": float("inf")}, "beta"),
    ({"clip_eps": 0.0}, "clip_eps"),
    ({"clip_eps": float("nan")}, "clip_eps"),
    ({"clip_eps": "0.2"}, "clip_eps"),
    ({"loss_type": "dr_grpo"}, "max_completion_length"),
    ({"loss_type": "dr_grpo", "max_completion_length": 2}, "padded width"),
    ({"loss_type": "dr_grpo", "max_completion_length": 0}, "max_completion_length"),
    ({"loss_type": "dapo"}, "group_size"),
    ({"loss_type": "dapo", "group_size": 3}, "divide"),
    ({"loss_type": "dapo", "group_size": 0}, "group_size"),
])
def test_grpo_loss_refuses_bad_input(kwargs, match):
    args = {"logp": _Z, "logp_old": _Z, "logp_ref": _Z, "advantages": _A, "mask": _M}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        grpo.grpo_loss(**args)


@pytest.mark.parametrize("rewards, kwargs, match", [
    (np.ones((3, 1)), {}, "G >= 2"),
    (np.ones(4), {}, "shape"),
    (np.array([[1.0, np.nan]]), {}, "NaN"),
    (torch.tensor([[1.0, float("nan")]]), {}, "NaN"),
    (torch.ones(3, 1), {}, "G >= 2"),
    (np.ones((2, 2)), {"eps": 0.0}, "eps"),
    (torch.ones(2, 2), {"eps": 0.0}, "eps"),
    (torch.ones(2, 2), {"eps": -1e-3}, "eps"),
    (np.ones((2, 2)), {"eps": float("nan")}, "eps"),
    (np.ones((2, 2)), {"scale": "yes"}, "scale"),
])
def test_group_advantages_refuses_bad_input(rewards, kwargs, match):
    with pytest.raises(ValueError, match=match):
        grpo.group_advantages(rewards, **kwargs)


def test_k3_gradient_is_the_gradient_of_kl_ref_pi():
    rng = np.random.default_rng(3)
    for _ in range(5):
        z, zr = 2 * rng.normal(size=6), 2 * rng.normal(size=6)
        assert grpo.k3_gradient_matches(z, zr, "ref||pi")
        assert not grpo.k3_gradient_matches(z, zr, "pi||ref")
        old = np.exp(z + rng.normal(size=6))
        old /= old.sum()
        assert not grpo.k3_gradient_matches(z, zr, "ref||pi", sampling_probs=old)


def test_kl_gradient_closed_forms_match_autograd():
    rng = np.random.default_rng(4)
    z, zr = rng.normal(size=4), rng.normal(size=4)
    t = torch.tensor(z, requires_grad=True)
    p, q = torch.softmax(t, 0), torch.softmax(torch.tensor(zr), 0)
    (p * (p.log() - q.log())).sum().backward()
    assert np.allclose(t.grad.numpy(), grpo.kl_gradient(z, zr, "pi||ref"))
    t.grad = None
    p = torch.softmax(t, 0)
    (q * (q.log() - p.log())).sum().backward()
    assert np.allclose(t.grad.numpy(), grpo.kl_gradient(z, zr, "ref||pi"))
    with pytest.raises(ValueError, match="direction"):
        grpo.kl_gradient(z, zr, "forward")
    with pytest.raises(ValueError, match="sampling_probs"):
        grpo.k3_gradient_expectation(z, zr, sampling_probs=np.ones(4))
