"""The toy experiment of Chapter 7 (``book/07_grpo.md``): GRPO, PPO and REINFORCE on a
digit-sum task with a verifiable reward, with many seeds trained at once.

* :class:`DigitSumTask`: prompts are two digits ``(a, b)``; an answer is 1 to
  ``max_len`` digits then ``EOS``; the reward is 1 when the digits sum to ``a + b``.
  The held-out prompts are digit *combinations* never seen in training, in either order.
* A small GRU policy, written with a leading *model* dimension so that ``S`` independent
  copies (one per seed, or per seed and learning rate) train in one batched computation:
  :func:`init_gru`, :func:`token_logp`, :func:`sample`.
* :func:`supervised_warmup` (the reference model), :func:`train_rl` (GRPO, PPO with a
  value head, REINFORCE with a group-mean baseline, all with the same samples, gradient
  steps and loss aggregation) and :func:`sweep_learning_rates`.

The losses themselves are in :mod:`companion.grpo`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from companion._validate import check_positive_int
from companion.grpo import LOSS_TYPES, group_advantages, grpo_loss, kl_k3

__all__ = [
    "DigitSumTask",
    "init_gru",
    "token_logp",
    "sample",
    "success_rate",
    "supervised_warmup",
    "METHODS",
    "RLConfig",
    "RLHistory",
    "train_rl",
    "sweep_learning_rates",
    "tensor_bytes",
    "compare",
]

METHODS = ("grpo", "ppo", "reinforce")


# ----------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class DigitSumTask:
    """Prompts ``(a, b)`` of two digits; the answer must be 1..``max_len`` digits summing to ``a + b``, then ``EOS``.

    Vocabulary: digits ``0..9`` are tokens ``0..9``, ``EOS`` is token 10. The reward is 1
    if the output (up to its first ``EOS``) has between 1 and ``max_len`` digits that sum
    to :math:`a + b`, else 0: a verifiable, outcome-only reward. ``n_heldout`` unordered
    digit combinations :math:`\\{a, b\\}` (chosen with ``seed``) are held out in both
    orders, so no training prompt contains a held-out combination.
    """

    max_len: int = 4
    n_heldout: int = 10
    seed: int = 0

    EOS = 10
    VOCAB = 11

    def __post_init__(self) -> None:
        check_positive_int(self.max_len, "max_len")
        if self.max_len > 6:
            raise ValueError(f"max_len must be at most 6, got {self.max_len}")
        if isinstance(self.n_heldout, bool) or not isinstance(self.n_heldout, (int, np.integer)):
            raise ValueError(f"n_heldout must be an integer, got {self.n_heldout!r}")
        if not 0 <= self.n_heldout <= 45:
            raise ValueError(f"n_heldout must be in [0, 45] (of 55 combinations), got {self.n_heldout}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_pairs, heldout_pairs)``, integer arrays of shape ``(n, 2)``."""
        combos = [(a, b) for a in range(10) for b in range(a, 10)]
        perm = np.random.default_rng(self.seed).permutation(len(combos))
        held = {combos[i] for i in perm[: self.n_heldout]}
        all_pairs = [(a, b) for a in range(10) for b in range(10)]
        is_held = np.array([(min(p), max(p)) in held for p in all_pairs])
        arr = np.array(all_pairs)
        return arr[~is_held], arr[is_held]

    def reward(self, prompts: Any, outputs: Any) -> np.ndarray:
        """Rewards (0 or 1) for ``outputs`` of shape ``(..., max_len + 1)`` and ``prompts`` of shape ``(..., 2)``.

        Tokens after the first ``EOS`` are ignored; an output with no ``EOS`` earns 0.
        Prompts must be digits and outputs tokens of the vocabulary, with matching
        leading shapes.
        """
        p = np.asarray(prompts)
        o = np.asarray(outputs)
        if p.ndim < 1 or p.shape[-1] != 2:
            raise ValueError(f"prompts must have shape (..., 2), got {p.shape}")
        if o.ndim < 1 or o.shape[-1] != self.max_len + 1:
            raise ValueError(f"outputs must have shape (..., {self.max_len + 1}), got {o.shape}")
        if p.shape[:-1] != o.shape[:-1]:
            raise ValueError(f"prompts {p.shape} and outputs {o.shape} must describe the same number of answers")
        for name, x, hi in (("prompts", p, 9), ("outputs", o, self.EOS)):
            if not np.issubdtype(x.dtype, np.integer) and not np.all(np.mod(x, 1) == 0):
                raise ValueError(f"{name} must hold integer tokens")
            if x.size and (x.min() < 0 or x.max() > hi):
                raise ValueError(f"{name} must hold tokens in [0, {hi}], got values in [{x.min()}, {x.max()}]")
        o = o.astype(np.int64)
        is_eos = o == self.EOS
        has_eos = is_eos.any(-1)
        n_digits = np.where(has_eos, is_eos.argmax(-1), o.shape[-1])
        before = np.arange(o.shape[-1]) < n_digits[..., None]
        total = np.where(before, o, 0).sum(-1)
        ok = has_eos & (n_digits >= 1) & (total == p.astype(np.int64).sum(-1))
        return ok.astype(np.float64)

    def demonstration_table(self) -> dict[int, list[np.ndarray]]:
        """For each target ``0..18``, the digit strings of each feasible length (for the warm-up)."""
        table: dict[int, list[np.ndarray]] = {}
        for n in range(1, self.max_len + 1):
            grid = np.stack(np.meshgrid(*[np.arange(10)] * n, indexing="ij"), -1).reshape(-1, n)
            sums = grid.sum(1)
            for target in range(19):
                rows = grid[sums == target]
                if len(rows):
                    table.setdefault(target, []).append(rows)
        return table


# ----------------------------------------------------------------------------- a batched GRU


def init_gru(seeds: Any, hidden: int = 64, out_dim: int = DigitSumTask.VOCAB) -> dict[str, Any]:
    """Parameters of ``S = len(seeds)`` independent GRU models, stacked along a leading dimension.

    Each model embeds the two prompt digits (its initial state is
    :math:`\\tanh(W[e_a; e_b] + b)`), then a GRU reads the previous token (token ``VOCAB``
    starts the answer) and a linear head gives ``out_dim`` outputs (next-token logits, or
    ``out_dim=1`` for a value). Initialisation follows PyTorch's defaults, model ``s``
    from ``torch.manual_seed(seeds[s])``.
    """
    import torch

    seeds = [int(s) for s in np.atleast_1d(seeds)]
    H = check_positive_int(hidden, "hidden")
    check_positive_int(out_dim, "out_dim")
    V = DigitSumTask.VOCAB + 1
    shapes = {
        "embed": ((V, H), None),
        "w_prompt": ((2 * H, H), 2 * H),
        "b_prompt": ((H,), 2 * H),
        "w_ih": ((H, 3 * H), H),
        "w_hh": ((H, 3 * H), H),
        "b_ih": ((3 * H,), H),
        "b_hh": ((3 * H,), H),
        "w_out": ((H, out_dim), H),
        "b_out": ((out_dim,), H),
    }
    params: dict[str, list[Any]] = {k: [] for k in shapes}
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        for name, (shape, fan_in) in shapes.items():
            if fan_in is None:
                params[name].append(torch.randn(shape, generator=g))
            else:
                bound = 1 / math.sqrt(fan_in)
                params[name].append((torch.rand(shape, generator=g) * 2 - 1) * bound)
    return {k: torch.stack(v).requires_grad_(True) for k, v in params.items()}


def _embed(params: dict[str, Any], tokens: Any) -> Any:
    """Embeddings of ``tokens`` ``(S, B, ...)`` with model ``s``'s table: ``(S, B, ..., H)``."""
    E = params["embed"]
    S, V, H = E.shape
    offset = (np.arange(S) * V).reshape((S,) + (1,) * (tokens.ndim - 1))
    import torch

    return E.reshape(S * V, H)[tokens + torch.as_tensor(offset)]


def _initial_state(params: dict[str, Any], prompts: Any) -> Any:
    import torch

    e = _embed(params, prompts)  # (S, B, 2, H)
    e = e.reshape(e.shape[0], e.shape[1], -1)
    return torch.tanh(torch.baddbmm(params["b_prompt"][:, None], e, params["w_prompt"]))


def _gru_step(params: dict[str, Any], x: Any, h: Any) -> Any:
    import torch

    gi = torch.baddbmm(params["b_ih"][:, None], x, params["w_ih"])
    gh = torch.baddbmm(params["b_hh"][:, None], h, params["w_hh"])
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def _outputs(params: dict[str, Any], prompts: Any, tokens: Any) -> Any:
    """Head outputs before each token of ``tokens`` (teacher forcing): ``(S, B, T, out_dim)``."""
    import torch

    S, B, T = tokens.shape
    start = torch.full((S, B, 1), DigitSumTask.VOCAB, dtype=torch.long)
    inputs = _embed(params, torch.cat([start, tokens[..., :-1]], -1))
    h = _initial_state(params, prompts)
    outs = []
    for t in range(T):
        h = _gru_step(params, inputs[:, :, t], h)
        outs.append(h)
    hs = torch.stack(outs, 2).reshape(S, B * T, -1)
    return torch.baddbmm(params["b_out"][:, None], hs, params["w_out"]).reshape(S, B, T, -1)


def token_logp(params: dict[str, Any], prompts: Any, tokens: Any, full: bool = False) -> Any:
    """Per-token :math:`\\log\\pi(o_t \\mid q, o_{<t})`, shape ``(S, B, T)`` (``full=True``: all ``(S, B, T, V)``)."""
    import torch

    logp = torch.log_softmax(_outputs(params, prompts, tokens), -1)
    return logp if full else logp.gather(-1, tokens[..., None]).squeeze(-1)


def sample(params: dict[str, Any], prompts: Any, max_len: int, generator: Any) -> tuple[Any, Any]:
    """Sample one answer per prompt from each model: ``(tokens, mask)``, both ``(S, B, max_len + 1)``.

    Generation stops at ``EOS`` or after ``max_len + 1`` tokens; ``mask`` marks the tokens
    up to and including the first ``EOS``; later positions hold ``EOS``.
    """
    import torch

    S, B, _ = prompts.shape
    T = max_len + 1
    tokens = torch.full((S, B, T), DigitSumTask.EOS, dtype=torch.long)
    mask = torch.zeros((S, B, T))
    with torch.no_grad():
        h = _initial_state(params, prompts)
        tok = torch.full((S, B), DigitSumTask.VOCAB, dtype=torch.long)
        alive = torch.ones((S, B), dtype=torch.bool)
        for t in range(T):
            h = _gru_step(params, _embed(params, tok), h)
            logits = torch.baddbmm(params["b_out"][:, None], h, params["w_out"])
            probs = torch.softmax(logits, -1).reshape(S * B, -1)
            nxt = torch.multinomial(probs, 1, generator=generator).reshape(S, B)
            tokens[:, :, t] = torch.where(alive, nxt, DigitSumTask.EOS)
            mask[:, :, t] = alive.float()
            alive = alive & (nxt != DigitSumTask.EOS)
            tok = tokens[:, :, t]
    return tokens, mask


def success_rate(params: dict[str, Any], task: DigitSumTask, pairs: np.ndarray, n_samples: int = 16,
                 seed: int = 0) -> np.ndarray:
    """Per model, the fraction of sampled answers with reward 1: ``n_samples`` answers to each prompt of ``pairs``."""
    import torch

    check_positive_int(n_samples, "n_samples")
    S = params["embed"].shape[0]
    prompts = np.broadcast_to(np.repeat(np.asarray(pairs), n_samples, axis=0), (S, len(pairs) * n_samples, 2))
    tokens, _ = sample(params, torch.as_tensor(np.ascontiguousarray(prompts)), task.max_len,
                       torch.Generator().manual_seed(seed))
    return task.reward(prompts, tokens.numpy()).mean(1)


def tensor_bytes(tensors: Any) -> int:
    """Bytes held by a collection of tensors (read from the tensors: ``numel * element_size``)."""
    return int(sum(t.numel() * t.element_size() for t in tensors if t is not None))


# ----------------------------------------------------------------------------- optimisation


class _Adam:
    """Adam (Kingma & Ba) on stacked parameters with one learning rate per model.

    Element-wise, so model ``s`` evolves exactly as if it had its own optimiser;
    gradients are clipped per model to ``max_grad_norm`` (global norm over its tensors).
    """

    def __init__(self, params: dict[str, Any], lr: Any, max_grad_norm: float | None = 1.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        import torch

        self.params = params
        S = next(iter(params.values())).shape[0]
        self.lr = torch.as_tensor(np.broadcast_to(np.asarray(lr, dtype=np.float32), (S,)).copy())
        self.max_grad_norm = max_grad_norm
        self.betas, self.eps, self.t = betas, eps, 0
        self.m = {k: torch.zeros_like(v) for k, v in params.items()}
        self.v = {k: torch.zeros_like(v) for k, v in params.items()}

    def state_tensors(self) -> list[Any]:
        return [*self.m.values(), *self.v.values()]

    def step(self) -> None:
        import torch

        with torch.no_grad():
            grads = {k: p.grad for k, p in self.params.items()}
            S = self.lr.shape[0]
            if self.max_grad_norm is not None:
                sq = sum(g.reshape(S, -1).pow(2).sum(1) for g in grads.values())
                factor = torch.clamp(self.max_grad_norm / (sq.sqrt() + 1e-6), max=1.0)
            else:
                factor = torch.ones(S)
            self.t += 1
            b1, b2 = self.betas
            for k, p in self.params.items():
                shape = (S,) + (1,) * (p.ndim - 1)
                g = grads[k] * factor.reshape(shape)
                self.m[k].mul_(b1).add_(g, alpha=1 - b1)
                self.v[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = self.m[k] / (1 - b1**self.t)
                v_hat = self.v[k] / (1 - b2**self.t)
                p.sub_(self.lr.reshape(shape) * m_hat / (v_hat.sqrt() + self.eps))
                p.grad = None


def _detach(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in params.items()}


def supervised_warmup(task: DigitSumTask, seeds: Any, n_steps: int = 60, batch: int = 64, lr: float = 3e-3,
                      hidden: int = 64) -> tuple[dict[str, Any], np.ndarray]:
    """The "SFT" stage, for each seed: teacher-forced cross-entropy on random correct answers to training prompts.

    A demonstration for target :math:`s` has a length drawn uniformly among the feasible
    ones, then a uniformly random digit string of that length summing to :math:`s`.
    Returns the parameters (detached: they are the frozen *reference models*) and the
    losses, shape ``(n_steps, S)``. Kept short on purpose: the reference has a modest
    success rate that RL then improves.
    """
    import torch

    seeds = [int(s) for s in np.atleast_1d(seeds)]
    check_positive_int(n_steps, "n_steps")
    check_positive_int(batch, "batch")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    S, T = len(seeds), task.max_len + 1
    params = init_gru(seeds, hidden)
    opt = _Adam(params, lr, max_grad_norm=None)
    rng = np.random.default_rng([1, *seeds])
    train_pairs, _ = task.pairs()
    table = task.demonstration_table()
    losses = np.zeros((n_steps, S))
    for step in range(n_steps):
        prompts = train_pairs[rng.integers(len(train_pairs), size=(S, batch))]
        tokens = np.full((S, batch, T), task.EOS)
        mask = np.zeros((S, batch, T))
        for idx in np.ndindex(S, batch):
            options = table[int(prompts[idx].sum())]
            rows = options[rng.integers(len(options))]
            digits = rows[rng.integers(len(rows))]
            tokens[idx][: len(digits)] = digits
            mask[idx][: len(digits) + 1] = 1
        m = torch.as_tensor(mask, dtype=torch.float32)
        logp = token_logp(params, torch.as_tensor(prompts), torch.as_tensor(tokens))
        per_model = -(logp * m).sum((1, 2)) / m.sum((1, 2))
        per_model.sum().backward()
        opt.step()
        losses[step] = per_model.detach().numpy()
    return _detach(params), losses


# ----------------------------------------------------------------------------- RL


@dataclass(frozen=True)
class RLConfig:
    """Settings of :func:`train_rl`. Every method sees the same samples, takes the same
    number of gradient steps per batch and aggregates its per-token loss the same way;
    the methods differ only in their advantages, clipping and KL penalty."""

    method: str = "grpo"
    """``"grpo"`` (group advantages, clipping, KL penalty), ``"ppo"`` (a GRU value head of
    the policy's size, advantage ``R - V(t)`` normalised per batch, clipping, KL penalty)
    or ``"reinforce"`` (group-mean baseline ``r - mean(r)``, no clipping, no KL)."""
    n_steps: int = 150
    """Batches (the sample budget is ``n_steps * prompts_per_step * group_size`` answers per model)."""
    prompts_per_step: int = 16
    """Prompts per batch."""
    group_size: int = 8
    """Answers sampled per prompt (:math:`G`), for every method."""
    inner_updates: int = 2
    """Gradient steps per batch (:math:`\\mu` in DeepSeekMath), for every method."""
    lr: float = 3e-3
    """Adam learning rate of the policy (and of the critic for PPO)."""
    clip_eps: float = 0.2
    """Ratio clipping :math:`\\epsilon` (GRPO and PPO)."""
    beta: float = 0.04
    """Weight of the k3 KL penalty to the reference policy (GRPO and PPO)."""
    loss_type: str = "grpo"
    """Aggregation of the per-token loss (:data:`companion.grpo.LOSS_TYPES`), for every method."""
    scale_advantages: bool = True
    """GRPO: divide group advantages by the group's standard deviation (``False``: Dr. GRPO)."""
    max_grad_norm: float = 1.0
    """Per-model gradient-norm clipping."""
    eval_every: int = 25
    """Evaluate the held-out success rate every this many batches."""
    eval_samples: int = 16
    """Answers sampled per held-out prompt at each evaluation."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("n_steps", "prompts_per_step", "inner_updates", "eval_every", "eval_samples"):
            check_positive_int(getattr(self, name), name)
        if check_positive_int(self.group_size, "group_size") < 2:
            raise ValueError(f"group_size must be at least 2, got {self.group_size}")
        for name in ("lr", "clip_eps", "max_grad_norm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not math.isfinite(self.beta) \
                or self.beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if self.loss_type not in LOSS_TYPES or self.loss_type == "bnpo":
            raise ValueError(f"loss_type must be 'grpo', 'dapo' or 'dr_grpo' (per model), got {self.loss_type!r}")
        if not isinstance(self.scale_advantages, bool):
            raise ValueError(f"scale_advantages must be a bool, got {self.scale_advantages!r}")


@dataclass
class RLHistory:
    """Records of :func:`train_rl`, one column per model (seed)."""

    train_reward: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Mean reward of each batch, ``(n_steps, S)``."""
    kl_k3: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Per-token k3 estimate of KL(pi_old || pi_ref) on each batch's tokens, ``(n_steps, S)``."""
    kl_exact: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Per-token exact KL(pi_old || pi_ref) over the vocabulary, averaged over the batch's positions, ``(n_steps, S)``."""
    mean_length: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Digits per answer, ``(n_steps, S)``."""
    eval_step: list[int] = field(default_factory=list)
    heldout_success: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """Held-out success rate at each evaluation, ``(n_evals, S)``."""
    seconds_per_batch: float = 0.0
    """CPU seconds (process time) per batch, all models together, evaluation excluded."""
    policy_bytes: int = 0
    """Bytes of the policy's weights, gradients and Adam moments (all models)."""
    critic_bytes: int = 0
    """Bytes of the critic's weights, gradients and Adam moments (PPO; 0 otherwise)."""


def train_rl(init_params: dict[str, Any], reference: dict[str, Any], task: DigitSumTask, config: RLConfig,
             seed: int = 0, lr: Any = None, progress: bool = False) -> tuple[dict[str, Any], RLHistory]:
    """Fine-tune copies of ``init_params`` (``S`` stacked models) with ``config.method``; returns ``(params, history)``.

    Model ``s`` draws its own prompts and answers and has reference ``reference[s]``.
    ``lr`` overrides ``config.lr`` with one value per model (for :func:`sweep_learning_rates`).
    """
    import torch
    from companion.progress import tqdm

    if not isinstance(config, RLConfig):
        raise ValueError(f"config must be an RLConfig, got {type(config).__name__}")
    S = init_params["embed"].shape[0]
    if reference["embed"].shape[0] != S:
        raise ValueError(f"reference has {reference['embed'].shape[0]} models, init_params has {S}")
    H = init_params["w_hh"].shape[1]
    P, G, T = config.prompts_per_step, config.group_size, task.max_len + 1
    lr = config.lr if lr is None else lr
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([2, seed])
    train_pairs, heldout = task.pairs()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in init_params.items()}
    opt = _Adam(params, lr, config.max_grad_norm)
    critic = critic_opt = None
    if config.method == "ppo":
        critic = init_gru([10_000 + seed + s for s in range(S)], H, out_dim=1)
        critic_opt = _Adam(critic, lr, config.max_grad_norm)
    hist = RLHistory(*(np.zeros((config.n_steps, S)) for _ in range(4)))
    evals = []
    clip = None if config.method == "reinforce" else config.clip_eps
    beta = 0.0 if config.method == "reinforce" else config.beta
    train_seconds = 0.0
    for step in tqdm(range(config.n_steps), desc=config.method, disable=not progress):
        if step % config.eval_every == 0:
            hist.eval_step.append(step)
            evals.append(success_rate(params, task, heldout, config.eval_samples, seed=10_000 + step))
        t0 = time.process_time()
        prompts_np = np.repeat(train_pairs[rng.integers(len(train_pairs), size=(S, P))], G, axis=1)
        prompts = torch.as_tensor(prompts_np)
        tokens, mask = sample(params, prompts, task.max_len, gen)
        rewards = torch.as_tensor(task.reward(prompts_np, tokens.numpy()), dtype=torch.float32)  # (S, P*G)
        with torch.no_grad():
            full_old = token_logp(params, prompts, tokens, full=True)
            full_ref = token_logp(reference, prompts, tokens, full=True)
            logp_old = full_old.gather(-1, tokens[..., None]).squeeze(-1)
            logp_ref = full_ref.gather(-1, tokens[..., None]).squeeze(-1)
            if config.method == "ppo":
                values = _outputs(critic, prompts, tokens).squeeze(-1)
                adv = (rewards[..., None] - values) * mask  # gamma = lambda = 1: A_t = R - V(t)
                n = mask.sum((1, 2), keepdim=True)
                mu = adv.sum((1, 2), keepdim=True) / n
                sd = (((adv - mu) * mask).pow(2).sum((1, 2), keepdim=True) / (n - 1)).sqrt()
                advantages = ((adv - mu) / (sd + 1e-8)).reshape(S * P * G, T)
            else:
                scale = config.scale_advantages and config.method == "grpo"
                advantages = group_advantages(rewards.reshape(S * P, G), scale=scale).reshape(S * P * G)
        flat = {"mask": mask.reshape(-1, T), "logp_old": logp_old.reshape(-1, T), "logp_ref": logp_ref.reshape(-1, T)}
        for _ in range(config.inner_updates):
            logp = token_logp(params, prompts, tokens).reshape(-1, T)
            # the mean over all S * P * G answers (or S * P groups) is the mean over models of
            # each model's loss: multiply by S so that each model gets its own loss's gradient
            loss = S * grpo_loss(logp, flat["logp_old"], flat["logp_ref"], advantages, flat["mask"],
                                 clip_eps=clip, beta=beta, loss_type=config.loss_type,
                                 max_completion_length=T, group_size=G)
            loss.backward()
            opt.step()
            if critic is not None:
                v = _outputs(critic, prompts, tokens).squeeze(-1)
                v_loss = (((v - rewards[..., None]) ** 2) * mask).sum((1, 2)) / mask.sum((1, 2))
                v_loss.sum().backward()
                critic_opt.step()
        train_seconds += time.process_time() - t0
        with torch.no_grad():
            m = mask
            hist.train_reward[step] = rewards.mean(1).numpy()
            hist.kl_k3[step] = ((kl_k3(logp_old, logp_ref) * m).sum((1, 2)) / m.sum((1, 2))).numpy()
            exact = (full_old.exp() * (full_old - full_ref)).sum(-1)
            hist.kl_exact[step] = ((exact * m).sum((1, 2)) / m.sum((1, 2))).numpy()
            hist.mean_length[step] = (m.sum(2).mean(1) - 1).numpy()
    hist.eval_step.append(config.n_steps)
    evals.append(success_rate(params, task, heldout, config.eval_samples, seed=10_000 + config.n_steps))
    hist.heldout_success = np.array(evals)
    hist.seconds_per_batch = train_seconds / config.n_steps
    with torch.no_grad():
        for p in params.values():
            p.grad = torch.zeros_like(p)  # a gradient buffer is held during training: count it
        hist.policy_bytes = tensor_bytes([*params.values(), *(p.grad for p in params.values()),
                                          *opt.state_tensors()])
        if critic is not None:
            hist.critic_bytes = tensor_bytes([*critic.values(), *critic.values(), *critic_opt.state_tensors()])
    return _detach(params), hist


def sweep_learning_rates(task: DigitSumTask, config: RLConfig, lrs: Any, seeds: Any, hidden: int = 64,
                         sft_steps: int = 60, last: int = 25) -> np.ndarray:
    """Mean *training* reward over the last ``last`` batches, for each learning rate (rows) and seed (columns).

    All ``len(lrs) * len(seeds)`` runs train at once (one model each). Select with
    ``lrs[argmax(result.mean(1))]``; held-out prompts play no part in the choice. Use seeds
    that differ from the experiment's.
    """
    lrs = [float(x) for x in lrs]
    seeds = [int(s) for s in seeds]
    if not lrs or any(not (math.isfinite(x) and x > 0) for x in lrs):
        raise ValueError(f"lrs must be positive numbers, got {lrs}")
    check_positive_int(last, "last")
    ref, _ = supervised_warmup(task, seeds, n_steps=sft_steps, hidden=hidden)
    stacked = {k: v.repeat(len(lrs), *([1] * (v.ndim - 1))) for k, v in ref.items()}
    per_model_lr = np.repeat(lrs, len(seeds))
    _, hist = train_rl(stacked, stacked, task, config, seed=min(seeds), lr=per_model_lr)
    return hist.train_reward[-last:].mean(0).reshape(len(lrs), len(seeds))


def compare(a: Any, b: Any, name_a: str, name_b: str, seed: int = 0) -> tuple[Any, str]:
    """Paired comparison over seeds: the 95% bootstrap interval of ``a - b`` and a verdict.

    The verdict is ``"<name_a> higher"`` or ``"<name_b> higher"`` only when the interval
    excludes 0, and ``"not resolved"`` otherwise (:func:`companion.stats.paired_difference_ci`).
    """
    from companion.stats import paired_difference_ci

    d = paired_difference_ci(a, b, seed=seed)
    if d.low > 0:
        return d, f"{name_a} higher"
    if d.high < 0:
        return d, f"{name_b} higher"
    return d, "not resolved"


if __name__ == "__main__":  # python -m companion.digit_sum: the learning-rate sweep of Chapter 7
    import torch

    torch.set_num_threads(1)
    SWEEP_SEEDS = [100, 101, 102]
    LRS = [1e-3, 3e-3, 1e-2, 3e-2]
    for method in METHODS:
        result = sweep_learning_rates(DigitSumTask(), RLConfig(method=method), LRS, SWEEP_SEEDS)
        best = LRS[int(np.argmax(result.mean(1)))]
        rows = ", ".join(f"{lr:g}: {r:.3f}" for lr, r in zip(LRS, result.mean(1)))
        print(f"{method:>10}: mean training reward (last 25 batches) {rows} -> lr = {best:g}")
