"""The toy experiment of Chapter 7 (``book/07_grpo.md``): a digit-sum task with a
verifiable reward, a small GRU policy, a supervised warm-up and three RL trainers (GRPO,
PPO with a value head, REINFORCE with a group-mean baseline). The losses themselves are
in :mod:`companion.grpo`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion._validate import check_positive_int
from companion.grpo import group_advantages, grpo_loss, kl_k3

@dataclass(frozen=True)
class DigitSumTask:
    """Prompts are two digits :math:`(a, b)`; the policy must emit 1 to ``max_len`` digits summing to :math:`a + b`, then stop.

    Vocabulary: digits ``0..9`` are tokens ``0..9``, ``EOS`` is token 10. The reward is 1
    if the output (up to ``EOS``) has between 1 and ``max_len`` digits that sum to
    :math:`a + b`, else 0: a verifiable, outcome-only reward. Pairs are split into a
    training set and held-out pairs that no update ever sees.
    """

    max_len: int = 4
    n_heldout: int = 20
    seed: int = 0

    EOS = 10
    VOCAB = 11

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_pairs, heldout_pairs)``, arrays of shape ``(n, 2)``."""
        all_pairs = np.array([(a, b) for a in range(10) for b in range(10)])
        perm = np.random.default_rng(self.seed).permutation(len(all_pairs))
        return all_pairs[perm[self.n_heldout:]], all_pairs[perm[: self.n_heldout]]

    def reward(self, prompts: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """Rewards for ``outputs`` of shape ``(B, max_len + 1)`` (tokens after ``EOS`` are ignored)."""
        rewards = np.zeros(len(outputs))
        for i, (p, out) in enumerate(zip(prompts, outputs)):
            out = [int(tok) for tok in out]
            if self.EOS not in out:
                continue                                   # never stopped: no reward
            digits = out[: out.index(self.EOS)]
            if 1 <= len(digits) <= self.max_len and sum(digits) == int(p[0] + p[1]):
                rewards[i] = 1.0
        return rewards

    def demonstration(self, prompt: np.ndarray, rng: np.random.Generator) -> list[int]:
        """A random correct output for ``prompt`` (digits then ``EOS``), for the supervised warm-up."""
        target = int(prompt[0] + prompt[1])
        while True:
            n = int(rng.integers(1, self.max_len + 1))
            digits = rng.integers(0, 10, size=n)
            if digits.sum() == target:
                return [*map(int, digits), self.EOS]


class GRUPolicy:
    """A tiny autoregressive policy: embeds the two prompt digits, then a GRU emits tokens.

    ``value_head=True`` adds a separate GRU critic of the same size that predicts, at
    every generated position, the expected final reward (used by the PPO baseline).
    """

    def __init__(self, hidden: int = 64, value_head: bool = False, seed: int = 0) -> None:
        import torch
        import torch.nn as nn

        torch.manual_seed(seed)
        V = DigitSumTask.VOCAB
        self.embed = nn.Embedding(V + 1, hidden)      # token V is the start-of-output token
        self.prompt = nn.Linear(2 * hidden, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, V)
        self.modules = [self.embed, self.prompt, self.gru, self.head]
        self.critic = None
        if value_head:
            self.critic = nn.ModuleDict({"embed": nn.Embedding(V + 1, hidden), "prompt": nn.Linear(2 * hidden, hidden),
                                         "gru": nn.GRU(hidden, hidden, batch_first=True), "head": nn.Linear(hidden, 1)})

    def policy_parameters(self) -> list[Any]:
        return [p for m in self.modules for p in m.parameters()]

    def critic_parameters(self) -> list[Any]:
        return [] if self.critic is None else list(self.critic.parameters())

    def state_dict(self) -> dict:
        return {i: {k: v.clone() for k, v in m.state_dict().items()} for i, m in enumerate(self.modules)}

    def load_state_dict(self, state: dict) -> None:
        for i, m in enumerate(self.modules):
            m.load_state_dict(state[i])

    @staticmethod
    def _initial_state(embed: Any, project: Any, prompts: Any) -> Any:
        """GRU initial state from the two embedded prompt digits: shape ``(1, B, hidden)``."""
        import torch

        return torch.tanh(project(embed(prompts).reshape(prompts.shape[0], -1)))[None]

    @staticmethod
    def _inputs(prompts: Any, tokens: Any) -> Any:
        import torch

        start = torch.full((tokens.shape[0], 1), DigitSumTask.VOCAB, dtype=torch.long)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def logits(self, prompts: Any, tokens: Any) -> Any:
        """Next-token logits at every position, teacher-forced on ``tokens``: shape ``(B, T, V)``."""
        h0 = self._initial_state(self.embed, self.prompt, prompts)
        out, _ = self.gru(self.embed(self._inputs(prompts, tokens)), h0)
        return self.head(out)

    def values(self, prompts: Any, tokens: Any) -> Any:
        """Critic's value before each generated token: shape ``(B, T)``."""
        c = self.critic
        h0 = self._initial_state(c["embed"], c["prompt"], prompts)
        out, _ = c["gru"](c["embed"](self._inputs(prompts, tokens)), h0)
        return c["head"](out).squeeze(-1)


def sample_outputs(policy: GRUPolicy, prompts: np.ndarray, max_len: int, generator: Any) -> tuple[Any, Any]:
    """Sample one output per prompt; returns ``(tokens, mask)`` of shape ``(B, max_len + 1)``.

    Generation stops at ``EOS`` or after ``max_len + 1`` tokens; ``mask`` marks the tokens
    up to and including ``EOS``.
    """
    import torch

    B = len(prompts)
    p = torch.as_tensor(prompts, dtype=torch.long)
    with torch.no_grad():
        h = policy._initial_state(policy.embed, policy.prompt, p)
        tok = torch.full((B, 1), DigitSumTask.VOCAB, dtype=torch.long)
        tokens = torch.zeros((B, max_len + 1), dtype=torch.long)
        alive = torch.ones(B, dtype=torch.bool)
        mask = torch.zeros((B, max_len + 1))
        for t in range(max_len + 1):
            out, h = policy.gru(policy.embed(tok), h)
            probs = torch.softmax(policy.head(out[:, -1]), -1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            tokens[:, t] = torch.where(alive, nxt, torch.full_like(nxt, DigitSumTask.EOS))
            mask[:, t] = alive.float()
            alive = alive & (nxt != DigitSumTask.EOS)
            tok = tokens[:, t : t + 1]
    return tokens, mask


def sequence_logp(policy: GRUPolicy, prompts: Any, tokens: Any) -> Any:
    """Per-token :math:`\\log\\pi(o_t \\mid q, o_{<t})`, shape ``(B, T)``."""
    import torch

    return torch.log_softmax(policy.logits(prompts, tokens), -1).gather(2, tokens[..., None]).squeeze(-1)


def success_rate(policy: GRUPolicy, task: DigitSumTask, pairs: np.ndarray, n_samples: int = 8, seed: int = 0) -> float:
    """Fraction of sampled outputs that earn reward 1, over ``n_samples`` samples of each prompt in ``pairs``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    prompts = np.repeat(pairs, n_samples, axis=0)
    tokens, _ = sample_outputs(policy, prompts, task.max_len, gen)
    return float(task.reward(prompts, tokens.numpy()).mean())


def supervised_warmup(policy: GRUPolicy, task: DigitSumTask, n_steps: int = 60, batch: int = 64,
                      lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Teacher-forced cross-entropy on random correct outputs for training prompts (the "SFT" stage).

    Returns the losses. Kept short on purpose: the result is the *reference model*, with a
    modest success rate that RL then improves.
    """
    import torch

    rng = np.random.default_rng(seed)
    train_pairs, _ = task.pairs()
    opt = torch.optim.Adam(policy.policy_parameters(), lr=lr)
    losses = []
    for _ in range(n_steps):
        prompts = train_pairs[rng.integers(len(train_pairs), size=batch)]
        demos = [task.demonstration(p, rng) for p in prompts]
        T = task.max_len + 1
        tokens = torch.full((batch, T), task.EOS, dtype=torch.long)
        mask = torch.zeros((batch, T))
        for i, d in enumerate(demos):
            tokens[i, : len(d)] = torch.tensor(d)
            mask[i, : len(d)] = 1
        logp = sequence_logp(policy, torch.as_tensor(prompts), tokens)
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@dataclass
class RLConfig:
    """Settings of :func:`train_rl`, shared by the three methods so they see the same samples."""

    method: str = "grpo"
    """``"grpo"``, ``"ppo"`` (learned value head, GAE) or ``"reinforce"`` (group-mean baseline)."""
    n_steps: int = 120
    """Batches of samples (the sample budget is ``n_steps * prompts_per_step * group_size`` outputs)."""
    prompts_per_step: int = 16
    """Prompts per batch."""
    group_size: int = 8
    """Outputs sampled per prompt (:math:`G`)."""
    inner_updates: int = 2
    """Gradient steps per batch (:math:`\\mu` in DeepSeekMath); REINFORCE always uses 1."""
    lr: float = 3e-3
    """Adam learning rate of the policy (and of the critic for PPO)."""
    clip_eps: float = 0.2
    """Ratio clipping :math:`\\epsilon`."""
    beta: float = 0.04
    """Weight of the k3 KL penalty to the reference policy (GRPO and PPO)."""
    loss_type: str = "grpo"
    """Aggregation of the per-token loss (:data:`LOSS_TYPES`), for GRPO."""
    scale_advantages: bool = True
    """Divide group advantages by the group's standard deviation (``False``: Dr. GRPO)."""
    eval_every: int = 10
    """Evaluate the held-out success rate every this many batches."""


@dataclass
class RLHistory:
    """Per-batch and per-evaluation records of :func:`train_rl`."""

    train_reward: list[float] = field(default_factory=list)
    kl_to_ref: list[float] = field(default_factory=list)
    mean_length: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    heldout_success: list[float] = field(default_factory=list)
    seconds: float = 0.0
    policy_params: int = 0
    critic_params: int = 0


def train_rl(policy: GRUPolicy, reference: GRUPolicy, task: DigitSumTask, config: RLConfig, seed: int = 0,
             progress: bool = False) -> RLHistory:
    """Fine-tune ``policy`` with GRPO, PPO (value head) or REINFORCE (group-mean baseline); returns the history.

    Every method draws the same number of outputs per batch: ``prompts_per_step`` prompts
    times ``group_size`` samples each. The reward arrives only at the end of an output.
    """
    import torch
    from tqdm.auto import tqdm

    if config.method not in ("grpo", "ppo", "reinforce"):
        raise ValueError(f"method must be 'grpo', 'ppo' or 'reinforce', got {config.method!r}")
    if config.method == "ppo" and policy.critic is None:
        raise ValueError("method 'ppo' needs a policy built with value_head=True")
    check_positive_int(config.group_size, "group_size")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_pairs, heldout = task.pairs()
    params = policy.policy_parameters()
    opt = torch.optim.Adam(params, lr=config.lr)
    critic_opt = torch.optim.Adam(policy.critic_parameters(), lr=config.lr) if config.method == "ppo" else None
    hist = RLHistory(policy_params=sum(p.numel() for p in params),
                     critic_params=sum(p.numel() for p in policy.critic_parameters()) if config.method == "ppo" else 0)
    G = config.group_size
    start = time.perf_counter()
    for step in tqdm(range(config.n_steps), desc=config.method, disable=not progress):
        if step % config.eval_every == 0:
            t0 = time.perf_counter()
            hist.eval_step.append(step)
            hist.heldout_success.append(success_rate(policy, task, heldout, seed=10_000 + step))
            start += time.perf_counter() - t0                          # evaluation is not training time
        prompts_np = np.repeat(train_pairs[rng.integers(len(train_pairs), size=config.prompts_per_step)], G, axis=0)
        tokens, mask = sample_outputs(policy, prompts_np, task.max_len, gen)
        rewards = task.reward(prompts_np, tokens.numpy())
        prompts = torch.as_tensor(prompts_np)
        with torch.no_grad():
            logp_old = sequence_logp(policy, prompts, tokens)
            logp_ref = sequence_logp(reference, prompts, tokens)
        r_t = torch.as_tensor(rewards, dtype=torch.float32)
        if config.method == "ppo":
            with torch.no_grad():
                values = policy.values(prompts, tokens) * mask
            # reward at the last valid token; gamma = lambda = 1 inside an output: A_t = R - V(t)
            adv_tokens = (r_t[:, None] - values) * mask
            adv_tokens = (adv_tokens - adv_tokens[mask > 0].mean()) / (adv_tokens[mask > 0].std() + 1e-8)
            advantages = adv_tokens
        elif config.method == "grpo":
            advantages = group_advantages(r_t.reshape(-1, G), scale=config.scale_advantages).reshape(-1)
        else:
            advantages = group_advantages(r_t.reshape(-1, G), scale=False).reshape(-1)
        n_inner = 1 if config.method == "reinforce" else config.inner_updates
        for _ in range(n_inner):
            logp = sequence_logp(policy, prompts, tokens)
            if config.method == "reinforce":
                loss = -((logp * mask).sum(1) * advantages).mean()
            else:
                loss = grpo_loss(logp, logp_old, logp_ref, advantages, mask, config.clip_eps, config.beta,
                                 config.loss_type if config.method == "grpo" else "dapo")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if critic_opt is not None:
                v_loss = (((policy.values(prompts, tokens) - r_t[:, None]) ** 2) * mask).sum() / mask.sum()
                critic_opt.zero_grad()
                v_loss.backward()
                critic_opt.step()
        with torch.no_grad():
            hist.train_reward.append(float(rewards.mean()))
            hist.kl_to_ref.append(float((kl_k3(logp_old, logp_ref) * mask).sum() / mask.sum()))
            hist.mean_length.append(float(mask.sum(1).mean() - 1))          # digits, not counting EOS
    hist.eval_step.append(config.n_steps)
    hist.heldout_success.append(success_rate(policy, task, heldout, seed=10_000 + config.n_steps))
    hist.seconds = time.perf_counter() - start
    return hist
