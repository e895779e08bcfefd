"""The benchmark suite's tasks and the format of its results (pure data: no SB3 import).

Read by the runner (``benchmarks/suite.py``), by ``benchmarks/report.py`` (the README's
headline) and by the book's "Benchmarks" page, so that all three agree on what was
planned, what counts as solved and where each result lives.

Results format: one JSON file per task, ``benchmarks/results/<task name>.json``::

    {
      "config": {
        "task": "ppo_acrobot", "algo": "ppo", "env_id": "Acrobot-v1",
        "peer": "Stable-Baselines3 PPO",             # the library compared with
        "seeds": [...], "n_seeds": int,              # the seeds run
        "planned_seeds": int,                        # the task's n_seeds
        "complete": bool,                            # true only when seeds == the task's planned
                                                     # seeds (100 .. 100 + n_seeds - 1); files
                                                     # written during a run, or by --seeds k with
                                                     # fewer seeds, say false (not a result)
        "quick": bool,
        "budget": int,                               # env steps per run (the Zoo's n_timesteps)
        "zoo_budget": int,
        "budget_companion": {"rule": str, "batch": int, "updates": int,
                             "env_step_slots": int}, # what the companion can run within budget:
                                                     # PPO floor(budget / batch) updates (TRPO
                                                     # ceil); slots include gymnasium's autoreset
                                                     # slots, its reported steps exclude them
        "budget_peer": {"rule": str, "batch": int, "updates": int, "env_steps": int},
                                                     # SB3 runs while num_timesteps < budget:
                                                     # ceil(budget / batch) updates
        "target": float, "n_eval_episodes": 10, "eval_seed": int,
        "zoo_hyperparams": {...},                    # as read from rl_zoo3's hyperparams/*.yml
        "companion_config": {...},                   # dataclasses.asdict of the config used
        "tuning": str,                               # what was tuned, on which seeds
        "differences": [str, ...],                   # disclosed differences between the sides
        "date": "YYYY-MM-DD", "wall_seconds": float, "torch_threads": 1,
        "machine": {"cpu_model": str, "n_cpus": int, "platform": str, "python": str,
                    "load_average_start": [..], "load_average_end": [..]},
        "versions": {"torch": ..., "gymnasium": ..., "stable_baselines3": ..., ...}
      },
      "per_seed": [
        {"seed": int,
         "companion": {"solved": bool, "steps": int, "seconds": float, "sps": float,
                       "evaluations": [[env_steps, mean_return, train_seconds], ...]},
         "peer": {... same keys ...}},
        ...
      ],
      "summary": {"companion": {"steps": IV, "seconds": IV, "sps": IV, "solved": int, "n": int},
                  "peer": {...}},               # null while fewer than 2 seeds are done
      "ratio": {"steps": IV, "seconds": IV}      # median companion / median peer (+ "determined")
    }

``summary`` and ``ratio`` are ``benchmarks/report.py``'s ``summarise(per_seed)``, the one
implementation (the runner writes them with it; the tests recompute them with it). The
ratio's interval is a two-sample bootstrap of the ratio of the two sides' medians (the
libraries share no randomness, so runs are not paired by seed); ``determined`` is false
when a side solved half of its seeds or fewer.

where ``IV = {"median": m, "low": l, "high": h}`` is the median over seeds with a 95%
bootstrap interval (``companion.stats.bootstrap_ci``). ``steps`` and ``seconds`` are to the
first evaluation whose mean greedy return reaches ``target`` (evaluation time excluded);
a run not solved within ``budget`` counts with its final steps and seconds (so the
medians are still medians to solve while more than half of a side's runs solved; the
ratio is marked undetermined otherwise).

Scaling: ``benchmarks/results/scaling.json``::

    {"config": {... same provenance keys ..., "repeats": int, "timed_updates": int,
                "sync_env_ids": [str], "note": str},  # note: what is timed on each side
     "rows": [{"env_id": str, "library": "companion" | "companion_sync" | "peer",
               "num_envs": int,
               "env_steps": int,                      # timed env steps of one repeat
               "rollout_sps": float, "update_sps": float, "total_sps": float,
                                                      # medians over the repeats
               "rollout_sps_all": [float], "update_sps_all": [float],
               "total_sps_all": [float],              # each repeat (a fresh run: one
                                                      # untimed update, then the timed ones)
               "repeats": int}, ...]}

``library`` ``"companion"`` is the companion on its own vector env (CartPole: gymnasium's
NumPy-vectorised implementation); ``"companion_sync"`` (CartPole only) the companion on a
``gymnasium.vector.SyncVectorEnv`` of Python copies, as SB3 steps a ``DummyVecEnv`` of
Python copies, so that the rollout rates compare the learners, not the environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCALING_FILE = RESULTS_DIR / "scaling.json"
SCALING_NUM_ENVS = (1, 2, 4, 8, 16, 32, 64)
SCALING_ENVS = ("CartPole-v1", "Pendulum-v1")
N_EVAL_EPISODES = 10
FIRST_SEED = 100  # benchmark seeds start here; anything tuned was tuned on seeds below 100


@dataclass(frozen=True)
class Task:
    """One comparison: ``algo`` on ``env_id`` against ``peer`` over ``n_seeds`` seeds."""

    name: str
    algo: str  # "ppo" or "trpo"
    env_id: str
    peer: str
    n_seeds: int
    target: float  # mean greedy return over N_EVAL_EPISODES that counts as solved
    variant: str = ""  # what sets this task apart from another on the same env and learner
    like_for_like: bool = True  # False: a side runs settings the other does not share

    @property
    def title(self) -> str:
        """How tables name the task, e.g. "PPO CartPole-v1 (companion's tuned defaults)"."""
        return f"{self.algo.upper()} {self.env_id}" + (f" ({self.variant})" if self.variant else "")

    @property
    def seeds(self) -> list[int]:
        return list(range(FIRST_SEED, FIRST_SEED + self.n_seeds))

    @property
    def results_file(self) -> Path:
        return RESULTS_DIR / f"{self.name}.json"


TASKS: tuple[Task, ...] = (
    Task("ppo_cartpole", "ppo", "CartPole-v1", "Stable-Baselines3 PPO", 20, 475.0),
    # the companion's own PPOConfig() defaults (tuned on CartPole, seeds 5-14) against the
    # same Zoo-configured SB3 runs: what tuning buys, not a like-for-like comparison
    Task("ppo_cartpole_defaults", "ppo", "CartPole-v1", "Stable-Baselines3 PPO", 20, 475.0,
         "companion's tuned defaults", like_for_like=False),
    Task("ppo_acrobot", "ppo", "Acrobot-v1", "Stable-Baselines3 PPO", 10, -100.0),
    Task("ppo_pendulum", "ppo", "Pendulum-v1", "Stable-Baselines3 PPO", 10, -200.0,
         "peer with gSDE"),
    Task("ppo_lunarlander", "ppo", "LunarLander-v3", "Stable-Baselines3 PPO", 5, 200.0),
    Task("trpo_cartpole", "trpo", "CartPole-v1", "sb3-contrib TRPO", 10, 475.0),
    Task("trpo_pendulum", "trpo", "Pendulum-v1", "sb3-contrib TRPO", 10, -200.0,
         "peer with gSDE"),
)


def task(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming the known ones otherwise."""
    for t in TASKS:
        if t.name == name:
            return t
    raise ValueError(f"task must be one of {[t.name for t in TASKS]}, got {name!r}")
