"""Tests of companion.digit_sum (the toy experiment of Chapter 7)."""

import numpy as np
import pytest
import torch

from companion import digit_sum as ds

E = ds.DigitSumTask.EOS


def test_reward_by_hand():
    task = ds.DigitSumTask()
    prompts = np.array([[3, 4], [3, 4], [3, 4], [0, 0], [9, 9], [9, 9]])
    outputs = np.array([[7, E, E, E, E], [3, 4, E, 1, 2], [3, 3, E, E, E], [E, E, E, E, E],
                        [9, 9, 0, 0, 0], [9, 9, 0, 0, E]])
    # tokens after EOS ignored; an empty answer and an answer without EOS earn nothing
    assert list(task.reward(prompts, outputs)) == [1, 1, 0, 0, 0, 1]
    assert task.reward(prompts[None], outputs[None]).shape == (1, 6)


@pytest.mark.parametrize("prompts, outputs, match", [
    (np.array([[3, 4], [1, 1]]), np.array([[7, E, E, E, E]]), "same number"),
    (np.array([[3, 4]]), np.array([[7, 11, E, E, E]]), r"outputs must hold tokens in \[0, 10\]"),
    (np.array([[3, 4]]), np.array([[7, -1, E, E, E]]), "outputs must hold tokens"),
    (np.array([[3, 10]]), np.array([[7, E, E, E, E]]), "prompts must hold tokens"),
    (np.array([[3, 4]]), np.array([[7, E, E, E]]), r"shape \(\.\.\., 5\)"),
    (np.array([[3, 4, 1]]), np.array([[7, E, E, E, E]]), r"shape \(\.\.\., 2\)"),
    (np.array([[3, 4]]), np.array([[7.5, E, E, E, E]]), "integer"),
])
def test_reward_refuses_bad_input(prompts, outputs, match):
    with pytest.raises(ValueError, match=match):
        ds.DigitSumTask().reward(prompts, outputs)


def test_split_holds_out_combinations_in_both_orders():
    train, held = ds.DigitSumTask(n_heldout=10, seed=3).pairs()
    assert len(train) + len(held) == 100
    seen = {(min(p), max(p)) for p in map(tuple, train)}
    assert not seen & {(min(p), max(p)) for p in map(tuple, held)}
    assert len({(min(p), max(p)) for p in map(tuple, held)}) == 10


@pytest.mark.parametrize("kwargs, match", [
    ({"max_len": 0}, "max_len"), ({"max_len": 7}, "max_len"), ({"max_len": 2.0}, "max_len"),
    ({"n_heldout": -1}, "n_heldout"), ({"n_heldout": 46}, "n_heldout"), ({"n_heldout": 1.5}, "n_heldout"),
    ({"seed": -1}, "seed"), ({"seed": "0"}, "seed"),
])
def test_task_config_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.DigitSumTask(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "a2c"}, "method"), ({"n_steps": 0}, "n_steps"), ({"prompts_per_step": 0}, "prompts_per_step"),
    ({"group_size": 1}, "group_size"), ({"inner_updates": 0}, "inner_updates"), ({"lr": 0.0}, "lr"),
    ({"lr": float("nan")}, "lr"), ({"clip_eps": -0.2}, "clip_eps"), ({"beta": float("nan")}, "beta"),
    ({"beta": -1.0}, "beta"), ({"loss_type": "bnpo"}, "loss_type"), ({"loss_type": "x"}, "loss_type"),
    ({"scale_advantages": 1}, "scale_advantages"), ({"max_grad_norm": 0}, "max_grad_norm"),
    ({"eval_every": 0}, "eval_every"), ({"eval_samples": 0}, "eval_samples"),
])
def test_rl_config_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ds.RLConfig(**kwargs)


def test_demonstrations_are_correct_answers():
    task = ds.DigitSumTask()
    table = task.demonstration_table()
    assert sorted(table) == list(range(19))
    for target, options in table.items():
        assert all(np.all(rows.sum(1) == target) for rows in options)
    assert [len(r[0]) for r in table[0]] == [1, 2, 3, 4] and [len(r[0]) for r in table[18]] == [2, 3, 4]


def test_batched_models_are_independent_and_logp_matches_sampling():
    params = ds.init_gru([0, 1, 2], hidden=8)
    single = ds.init_gru([1], hidden=8)
    assert all(torch.equal(params[k][1], single[k][0]) for k in params)
    prompts = torch.as_tensor(np.array([[[1, 2], [3, 4]]] * 3))
    tokens, mask = ds.sample(params, prompts, 4, torch.Generator().manual_seed(0))
    assert tokens.shape == mask.shape == (3, 2, 5) and torch.all(mask[..., 0] == 1)
    logp = ds.token_logp(params, prompts, tokens)
    logp1 = ds.token_logp(single, prompts[1:2], tokens[1:2])
    assert torch.allclose(logp[1:2], logp1, atol=1e-6)        # model 1 does not see the others
    full = ds.token_logp(params, prompts, tokens, full=True)
    assert torch.allclose(full.exp().sum(-1), torch.ones(3, 2, 5), atol=1e-5)


def test_train_rl_runs_each_method_and_gives_one_column_per_model():
    task = ds.DigitSumTask()
    ref, losses = ds.supervised_warmup(task, [0, 1], n_steps=3, batch=8, hidden=8)
    assert losses.shape == (3, 2)
    for method in ds.METHODS:
        cfg = ds.RLConfig(method=method, n_steps=3, prompts_per_step=2, group_size=4, eval_every=2, eval_samples=2)
        _, h = ds.train_rl(ref, ref, task, cfg, seed=0)
        assert h.train_reward.shape == h.kl_exact.shape == (3, 2) and h.heldout_success.shape == (3, 2)
        assert h.eval_step == [0, 2, 3] and np.all(h.kl_exact >= -1e-6)
        assert (h.critic_bytes > 0) == (method == "ppo")
    with pytest.raises(ValueError, match="config"):
        ds.train_rl(ref, ref, task, {"method": "grpo"})


def test_sweep_shape():
    cfg = ds.RLConfig(n_steps=2, prompts_per_step=2, group_size=2, eval_every=5, eval_samples=1)
    out = ds.sweep_learning_rates(ds.DigitSumTask(), cfg, [1e-3, 1e-2], [5, 6, 7], hidden=8, sft_steps=2, last=1)
    assert out.shape == (2, 3)
    with pytest.raises(ValueError, match="lrs"):
        ds.sweep_learning_rates(ds.DigitSumTask(), cfg, [0.0], [5])
