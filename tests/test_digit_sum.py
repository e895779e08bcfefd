"""Tests of companion.digit_sum (the toy experiment of Chapter 7)."""

import numpy as np
import pytest
import torch

from companion import digit_sum


def test_digit_sum_task_reward_and_split():
    task = digit_sum.DigitSumTask()
    E = task.EOS
    prompts = np.array([[3, 4], [3, 4], [3, 4], [0, 0], [9, 9]])
    outputs = np.array([[7, E, E, E, E], [3, 4, E, E, E], [3, 3, E, E, E], [E, E, E, E, E], [9, 9, 0, 0, 0]])
    assert list(task.reward(prompts, outputs)) == [1, 1, 0, 0, 0]   # empty answer and no EOS earn nothing
    train, held = task.pairs()
    assert len(train) == 80 and len(held) == 20
    assert not {tuple(p) for p in train} & {tuple(p) for p in held}
    rng = np.random.default_rng(0)
    demo = task.demonstration(np.array([9, 8]), rng)
    assert demo[-1] == E and sum(demo[:-1]) == 17


def test_sampling_and_logp_are_consistent():
    policy = digit_sum.GRUPolicy(seed=0)
    prompts = np.array([[1, 2], [3, 4], [5, 6]])
    tokens, mask = digit_sum.sample_outputs(policy, prompts, 4, torch.Generator().manual_seed(0))
    assert tokens.shape == mask.shape == (3, 5)
    assert torch.all(mask[:, 0] == 1)
    logp = digit_sum.sequence_logp(policy, torch.as_tensor(prompts), tokens)
    assert logp.shape == (3, 5) and torch.all(logp <= 0)


@pytest.mark.slow
def test_grpo_improves_over_the_reference():
    task = digit_sum.DigitSumTask()
    ref = digit_sum.GRUPolicy(seed=0)
    digit_sum.supervised_warmup(ref, task, n_steps=60)
    policy = digit_sum.GRUPolicy(seed=0)
    policy.load_state_dict(ref.state_dict())
    _, held = task.pairs()
    before = digit_sum.success_rate(ref, task, held, n_samples=32, seed=1)
    hist = digit_sum.train_rl(policy, ref, task, digit_sum.RLConfig(n_steps=150), seed=0)
    after = digit_sum.success_rate(policy, task, held, n_samples=32, seed=2)
    assert after > before + 0.1 and len(hist.heldout_success) == 16
    with pytest.raises(ValueError, match="value_head"):
        digit_sum.train_rl(digit_sum.GRUPolicy(), ref, task, digit_sum.RLConfig(method="ppo", n_steps=1))
