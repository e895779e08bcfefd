"""Benchmark: the companion's PPO against Stable-Baselines3's PPO on CartPole-v1.

Both run in this process, on this machine, over the same seeds, with torch limited to
one thread. SB3 uses the RL Zoo's tuned hyperparameters for CartPole-v1
(hyperparams/ppo.yml: 8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98,
lambda 0.8, learning rate and clip range 1e-3 and 0.2 linearly annealed, no entropy
bonus); the companion uses its own defaults (``PPOConfig()``).

Before the timed runs, each library does one short untimed warm-up run, so that
imports and lazy initialisation are not charged to the first seed.

The measure: every 2048 environment steps (checked at the first opportunity after each
multiple: after an update for the companion, after a vector step for SB3), training is
paused and the greedy policy plays 10 evaluation episodes; the run is solved when their
mean return reaches 475. Reported: environment steps and wall-clock seconds (evaluation
time excluded) until solved, and training steps per second.

Usage (from the repository root): ``make benchmark`` or
``python benchmarks/ppo_cartpole.py --seeds 5``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from companion.ppo import PPOConfig, evaluate_policy, train_ppo

ENV_ID, TARGET, EVAL_EVERY, N_EVAL = "CartPole-v1", 475.0, 2048, 10


class Clock:
    """Wall-clock time spent outside evaluations, and the evaluation schedule."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.next_eval = EVAL_EVERY
        self.solved_at: tuple[int, float] | None = None

    def maybe_evaluate(self, steps: int, act) -> bool:
        if steps < self.next_eval:
            return False
        t0 = time.perf_counter()
        while self.next_eval <= steps:
            self.next_eval += EVAL_EVERY
        score = evaluate_policy(act, ENV_ID, N_EVAL)
        self.eval_seconds += time.perf_counter() - t0
        if score >= TARGET:
            self.solved_at = (steps, self.train_seconds())
            return True
        return False

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds


def run_companion(seed: int, budget: int) -> dict:
    clock = Clock()

    def callback(agent, steps):
        with torch.no_grad():
            return clock.maybe_evaluate(steps, lambda o: agent.greedy(torch.as_tensor(o, dtype=torch.float32)).numpy())

    _, hist = train_ppo(ENV_ID, PPOConfig(total_timesteps=budget), seed=seed, progress=False, callback=callback)
    return dict(solved=clock.solved_at is not None, steps=clock.solved_at[0] if clock.solved_at else hist.env_steps[-1],
                seconds=clock.solved_at[1] if clock.solved_at else clock.train_seconds(),
                sps=hist.env_steps[-1] / clock.train_seconds())


def run_sb3(seed: int, budget: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start: float):
        return lambda progress_remaining: progress_remaining * start

    clock = Clock()

    class EvalCallback(BaseCallback):
        def _on_step(self) -> bool:  # False stops training
            return not clock.maybe_evaluate(self.num_timesteps, lambda o: self.model.predict(o, deterministic=True)[0])

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
    clock.start = time.perf_counter()          # model construction is not training
    model.learn(total_timesteps=budget, callback=EvalCallback())
    return dict(solved=clock.solved_at is not None, steps=clock.solved_at[0] if clock.solved_at else model.num_timesteps,
                seconds=clock.solved_at[1] if clock.solved_at else clock.train_seconds(),
                sps=model.num_timesteps / clock.train_seconds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=200_000, help="env steps before a run counts as unsolved")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ppo_cartpole.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # warm-up, untimed: first calls pay for imports and lazy initialisation on both sides
    run_companion(seed=1_000, budget=1024)
    run_sb3(seed=1_000, budget=512)
    results = {"companion": [], "sb3": []}
    for seed in range(args.seeds):
        for name, fn in (("companion", run_companion), ("sb3", run_sb3)):
            res = fn(seed, args.budget)
            results[name].append(res)
            print(f"seed {seed} {name:<9} solved={res['solved']!s:<5} steps={res['steps']:>7} "
                  f"seconds={res['seconds']:7.2f} steps/s={res['sps']:8.0f}", flush=True)

    print(f"\n{'':<10}{'median steps':>14}{'median seconds':>16}{'median steps/s':>16}{'solved':>8}")
    med = {}
    for name, rs in results.items():
        med[name] = {k: float(np.median([r[k] for r in rs])) for k in ("steps", "seconds", "sps")}
        print(f"{name:<10}{med[name]['steps']:>14.0f}{med[name]['seconds']:>16.2f}{med[name]['sps']:>16.0f}"
              f"{sum(r['solved'] for r in rs):>6}/{len(rs)}")
    ratios = {k: med["companion"][k] / med["sb3"][k] for k in ("steps", "seconds", "sps")}
    print(f"\nratios companion / SB3: env steps {ratios['steps']:.2f}, wall-clock {ratios['seconds']:.2f}, "
          f"steps per second {ratios['sps']:.2f}")
    print(f"targets: env steps <= 1 ({'met' if ratios['steps'] <= 1 else 'NOT met'}), "
          f"wall-clock <= 0.5 ({'met' if ratios['seconds'] <= 0.5 else 'NOT met'})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "medians": med, "ratios": ratios}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
