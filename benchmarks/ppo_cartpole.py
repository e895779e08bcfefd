"""Benchmark: the companion's PPO against Stable-Baselines3's PPO on CartPole-v1.

Both run in this process, on this machine, with torch limited to one thread, seed by
seed, alternating which library goes first so that drifts in machine load fall on both.

Settings.
* SB3 runs the RL Zoo's published configuration for CartPole-v1 (hyperparams/ppo.yml:
  8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98, lambda 0.8, learning rate and
  clip range 1e-3 and 0.2 linearly annealed, no entropy bonus, n_timesteps 1e5). Its
  linear schedules anneal over the ``total_timesteps`` given to ``learn``, so ``learn``
  is called with the Zoo's 1e5: SB3 runs exactly the published configuration.
* The companion runs ``PPOConfig()``, whose ``total_timesteps`` is also 1e5. Its defaults
  were tuned on this task, on seeds 5-14; the benchmark's seeds start at 100 so that
  they do not overlap.

Environments (disclosed, and measured). The companion steps gymnasium's NumPy-vectorised
CartPole (all copies in one array computation); SB3 steps a ``DummyVecEnv`` of separate
``Monitor``-wrapped CartPole copies, as the Zoo does. ``env_step_cost`` in the results
times a fixed number of random-action steps in each, so the reader can see how much of
the wall-clock difference is the environment rather than the learner.

The measure. After *every* update of either learner, training is paused and the greedy
policy plays 10 evaluation episodes; the run is solved when their mean return reaches
475, and the environment-step count recorded is the learner's count at that evaluation
(transitions actually taken; the companion does not count its autoreset steps). SB3
updates every 256 steps, the companion every 512 steps of which about 494 count, so the
companion's first passing evaluation can come up to one update (~250 steps) later than
SB3's would for the same learning curve: a small bias against the companion, disclosed.
For SB3 the evaluation happens at the start of the next rollout, i.e. *after* the update
on the rollout that just ended (SB3 calls ``_on_rollout_end`` before its update), and
its final update is evaluated in ``_on_training_end``. Reported per seed: environment
steps and wall-clock seconds (evaluation excluded) until solved; a run not solved within
the budget counts with the budget's steps and its full time. Both clocks start before
the learner builds its environments, networks and optimiser (``train_ppo`` builds them
inside; for SB3 the clock starts before ``make_vec_env`` and ``PPO(...)``), so
construction is charged to both.
Summaries: the median over seeds with a 95% bootstrap interval, for each learner, and
the ratio companion / SB3 computed seed by seed (paired), as a median with a 95%
bootstrap interval (``companion.stats.bootstrap_ci``).

Before the timed runs, each library does one short untimed warm-up run, so that imports
and lazy initialisation are not charged to the first seed.

Usage (from the repository root, with ``benchmarks/requirements.txt`` installed)::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ppo_cartpole.py            # 20 seeds
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ppo_cartpole.py --quick    # 2 seeds, smoke test
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from companion.ppo import PPOConfig, evaluate_policy, train_ppo
from companion.stats import bootstrap_ci

ENV_ID, TARGET, N_EVAL = "CartPole-v1", 475.0, 10
# Evaluation is after every update. The results' ``eval_every`` field (read by report.py)
# holds the smaller update interval, SB3's 8 x 32 = 256 steps; the companion's is 512.
EVAL_EVERY = 256
BUDGET = 100_000  # the Zoo's n_timesteps for CartPole-v1; also PPOConfig's default
FIRST_SEED = 100  # the companion's defaults were tuned on seeds 5-14


class Clock:
    """Wall-clock time spent outside evaluations; started when the clock is built."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.solved_at: tuple[int, float] | None = None
        self.evaluations: list[tuple[int, float]] = []

    def evaluate(self, steps: int, act) -> bool:
        """Evaluate the greedy policy now (``steps`` env steps taken); True once solved."""
        t0 = time.perf_counter()
        train_seconds = t0 - self.start - self.eval_seconds
        score = evaluate_policy(act, ENV_ID, N_EVAL)
        self.evaluations.append((int(steps), float(score)))
        self.eval_seconds += time.perf_counter() - t0
        if score >= TARGET:
            self.solved_at = (int(steps), train_seconds)
            return True
        return False

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds

    def result(self, final_steps: int) -> dict:
        solved = self.solved_at is not None
        return dict(
            solved=solved,
            steps=self.solved_at[0] if solved else int(final_steps),
            seconds=self.solved_at[1] if solved else self.train_seconds(),
            evaluations=self.evaluations,
        )


def run_companion(seed: int, budget: int) -> dict:
    clock = Clock()

    def callback(agent, steps):
        with torch.no_grad():
            return clock.evaluate(
                steps, lambda o: agent.greedy(torch.as_tensor(o, dtype=torch.float32)).numpy()
            )

    _, hist = train_ppo(ENV_ID, PPOConfig(total_timesteps=budget), seed=seed, progress=False,
                        callback=callback)
    res = clock.result(hist.env_steps[-1])
    res["sps"] = hist.env_steps[-1] / clock.train_seconds()
    return res


def run_sb3(seed: int, budget: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start: float):
        return lambda progress_remaining: progress_remaining * start

    clock = Clock()  # started before env and model are built, as for the companion

    class EvalAfterUpdate(BaseCallback):
        """Evaluate at the start of a rollout: the model has just been updated on the last one."""

        solved = False

        def _on_rollout_start(self) -> None:
            if self.num_timesteps > 0 and not self.solved:
                self.solved = clock.evaluate(
                    self.num_timesteps, lambda o: self.model.predict(o, deterministic=True)[0]
                )

        def _on_training_end(self) -> None:  # the final update has no next rollout
            if not self.solved:
                self.solved = clock.evaluate(
                    self.num_timesteps, lambda o: self.model.predict(o, deterministic=True)[0]
                )

        def _on_step(self) -> bool:  # False stops training
            return not self.solved

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2),
                seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=budget, callback=EvalAfterUpdate())
    res = clock.result(model.num_timesteps)
    res["sps"] = model.num_timesteps / clock.train_seconds()
    return res


def env_step_cost(n_vector_steps: int = 5_000, num_envs: int = 8, seed: int = 0) -> dict:
    """Microseconds per environment step of random actions: gymnasium's vector CartPole
    (what the companion steps) against SB3's DummyVecEnv of Monitor-wrapped copies."""
    from stable_baselines3.common.env_util import make_vec_env

    from companion.rollout import make_vector_env

    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=(n_vector_steps, num_envs))
    out = {}
    gym_envs = make_vector_env(ENV_ID, num_envs, seed)
    t0 = time.perf_counter()
    for a in actions:
        gym_envs.step(a)
    out["gymnasium_vector_us"] = (time.perf_counter() - t0) / (n_vector_steps * num_envs) * 1e6
    gym_envs.close()
    sb3_envs = make_vec_env(ENV_ID, n_envs=num_envs, seed=seed)
    sb3_envs.reset()
    t0 = time.perf_counter()
    for a in actions:
        sb3_envs.step(a)
    out["sb3_dummyvecenv_us"] = (time.perf_counter() - t0) / (n_vector_steps * num_envs) * 1e6
    sb3_envs.close()
    out["n_steps"] = n_vector_steps * num_envs
    return out


def interval(values, statistic: str = "median") -> dict:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        v = float(np.median(values))
        return dict(median=v, low=v, high=v, estimate=v)
    ci = bootstrap_ci(values, statistic=statistic)
    return dict(median=ci.estimate, estimate=ci.estimate, low=ci.low, high=ci.high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (from 100 on)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 seeds (results marked quick; not a measurement)")
    parser.add_argument("--budget", type=int, default=BUDGET,
                        help="env steps per run (the Zoo's 1e5; SB3's schedules anneal over it)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "ppo_cartpole.json")
    args = parser.parse_args()
    n_seeds = 2 if args.quick else args.seeds
    if n_seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(1)
    import gymnasium
    import stable_baselines3

    # warm-up, untimed: first calls pay for imports and lazy initialisation on both sides
    run_companion(seed=1_000, budget=1024)
    run_sb3(seed=1_000, budget=512)
    seeds = list(range(FIRST_SEED, FIRST_SEED + n_seeds))
    per_seed = []
    t_start = time.perf_counter()
    for i, seed in enumerate(seeds):
        order = (("companion", run_companion), ("sb3", run_sb3))
        row = {"seed": seed}
        for name, fn in order if i % 2 == 0 else order[::-1]:
            res = fn(seed, args.budget)
            row[name] = res
            print(f"seed {seed} {name:<9} solved={res['solved']!s:<5} steps={res['steps']:>7} "
                  f"seconds={res['seconds']:7.2f} steps/s={res['sps']:8.0f}", flush=True)
        per_seed.append(row)

    summary, ratio = {}, {}
    for name in ("companion", "sb3"):
        summary[name] = {k: interval([r[name][k] for r in per_seed]) for k in ("steps", "seconds", "sps")}
        summary[name]["solved"] = int(sum(r[name]["solved"] for r in per_seed))
        summary[name]["n"] = len(per_seed)
    for k in ("steps", "seconds"):
        ratio[k] = interval([r["companion"][k] / r["sb3"][k] for r in per_seed])
    cost = env_step_cost()

    print(f"\n{'':<10}{'median steps [95% CI]':>30}{'median seconds [95% CI]':>28}{'solved':>8}")
    for name, s in summary.items():
        st, se = s["steps"], s["seconds"]
        print(f"{name:<10}{st['median']:>12.0f} [{st['low']:>7.0f}, {st['high']:>7.0f}]"
              f"{se['median']:>12.2f} [{se['low']:>6.2f}, {se['high']:>6.2f}]"
              f"{s['solved']:>6}/{s['n']}")
    for k, v in ratio.items():
        print(f"ratio companion / SB3, {k} (median of per-seed ratios): "
              f"{v['estimate']:.2f} [{v['low']:.2f}, {v['high']:.2f}]")
    print(f"random-action env steps: gymnasium vector {cost['gymnasium_vector_us']:.2f} us/step, "
          f"SB3 DummyVecEnv+Monitor {cost['sb3_dummyvecenv_us']:.2f} us/step")

    config = dict(
        n_seeds=len(seeds), seeds=seeds, quick=bool(args.quick), budget=args.budget,
        eval_every=EVAL_EVERY, eval_schedule="after every update of either learner",
        n_eval_episodes=N_EVAL, target=TARGET,
        date=datetime.date.today().isoformat(),
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
                f"with 1 thread",
        versions=dict(torch=torch.__version__, gymnasium=gymnasium.__version__,
                      stable_baselines3=stable_baselines3.__version__),
        wall_seconds=time.perf_counter() - t_start,
        note=("SB3: RL Zoo CartPole-v1 configuration, learn(1e5), evaluated after each "
              "update (256 steps) and after its last; companion: PPOConfig() (defaults tuned "
              "on seeds 5-14), evaluated after each update (512 steps, ~494 counted). "
              "Both clocks include building environments, networks and optimiser."),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(config=config, per_seed=per_seed, summary=summary,
                                        ratio=ratio, env_step_cost=cost), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
