"""The benchmark suite: the companion's PPO and TRPO against Stable-Baselines3 / sb3-contrib.

One command runs every task of ``benchmarks/tasks.py`` (``TASKS``), one after the other in
this process, with torch on one thread, and writes ``benchmarks/results/<task>.json`` (the
format is documented in ``tasks.py``), then the scaling table ``results/scaling.json``::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/suite.py                 # everything
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/suite.py --tasks ppo_cartpole,scaling
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/suite.py --quick         # minutes

``--quick`` is a smoke test (2 seeds, the CartPole tasks only); its files are marked
``"quick": true`` and go to ``results/quick/`` so that they never overwrite a measurement.

The peer runs the RL Zoo's published hyperparameters, read from the installed ``rl_zoo3``
package's ``hyperparams/*.yml`` (``benchmarks/zoo.py``), built as the Zoo builds them and
trained with ``learn(total_timesteps=n_timesteps)``, so that its schedules anneal as
published. The companion runs the same hyperparameters mapped onto its config
(``zoo.companion_ppo_config``), except PPO on CartPole, where it runs ``PPOConfig()``:
its defaults were tuned on that task on seeds 5-14, and the benchmark seeds start at 100.

The measure (the protocol of the first CartPole benchmark, kept for every task). Both
clocks start before the learner builds its environments and networks. After *every*
update of either learner, training is paused (the clock too) and the greedy policy plays
``N_EVAL_EPISODES`` episodes side by side from the fixed evaluation seed ``EVAL_SEED``
(``companion.ppo.evaluate_policy``, the same function for both sides; observations are
normalised with the learner's frozen statistics when the task normalises them). The run
is solved at the first evaluation whose mean return reaches the task's target, and stops
there; the steps and training seconds at that evaluation are recorded. SB3 is evaluated
in ``_on_rollout_start`` (after the update on the previous rollout) and in
``_on_training_end`` (after the last update). A run not solved within the budget counts
with its final steps and seconds. Before each task, each side does one short untimed
warm-up run; the order of the two sides alternates from seed to seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parent)
)  # run as a script: sibling modules
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # and the companion

from tasks import (  # noqa: E402
    FIRST_SEED,
    N_EVAL_EPISODES,
    RESULTS_DIR,
    SCALING_ENVS,
    SCALING_FILE,
    SCALING_NUM_ENVS,
    TASKS,
    Task,
    task as task_named,
)

import zoo  # noqa: E402

EVAL_SEED = (
    10_000  # evaluation episodes start from this seed (evaluate_policy's default)
)
QUICK_DIR = RESULTS_DIR / "quick"
QUICK_TASKS = ("ppo_cartpole", "trpo_cartpole")
QUICK_SEEDS = 2
VERBOSE = bool(os.environ.get("BENCH_VERBOSE"))  # print every evaluation (long runs)


# --------------------------------------------------------------------------- provenance
def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    return dict(
        cpu_model=cpu,
        n_cpus=os.cpu_count(),
        platform=platform.platform(),
        python=platform.python_version(),
        load_average_start=list(os.getloadavg()),
    )


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in (
        "torch",
        "numpy",
        "gymnasium",
        "stable_baselines3",
        "sb3_contrib",
        "rl_zoo3",
        "box2d",
    ):
        try:
            out[pkg] = version(pkg.replace("_", "-"))
        except PackageNotFoundError:
            out[pkg] = None
    return out


def provenance(t_start: float, mach: dict) -> dict:
    mach = dict(mach, load_average_end=list(os.getloadavg()))
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        wall_seconds=time.perf_counter() - t_start,
        torch_threads=torch.get_num_threads(),
        machine=mach,
        versions=versions(),
    )


# --------------------------------------------------------------------------- measuring
class Clock:
    """Training time (wall clock minus evaluations) since the clock was built, and the evaluations."""

    def __init__(
        self, env_id: str, target: float, n_eval: int = N_EVAL_EPISODES
    ) -> None:
        self.env_id, self.target, self.n_eval = env_id, target, n_eval
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.solved_at: tuple[int, float] | None = None
        self.evaluations: list[list[float]] = []

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds

    def evaluate(self, steps: int, act: Callable[[np.ndarray], np.ndarray]) -> bool:
        """Evaluate the greedy policy now (``steps`` env steps taken); True once solved."""
        from companion.ppo import evaluate_policy

        t0 = time.perf_counter()
        train_seconds = t0 - self.start - self.eval_seconds
        score = evaluate_policy(act, self.env_id, self.n_eval, seed=EVAL_SEED)
        self.evaluations.append([int(steps), float(score), float(train_seconds)])
        if VERBOSE:
            print(
                f"    eval steps={int(steps)} return={score:.1f} train_seconds={train_seconds:.1f}",
                flush=True,
            )
        self.eval_seconds += time.perf_counter() - t0
        if score >= self.target and self.solved_at is None:
            self.solved_at = (int(steps), train_seconds)
        return self.solved_at is not None

    def result(self, final_steps: int) -> dict:
        solved = self.solved_at is not None
        seconds = self.solved_at[1] if solved else self.train_seconds()
        total = self.train_seconds()
        return dict(
            solved=solved,
            steps=self.solved_at[0] if solved else int(final_steps),
            seconds=float(seconds),
            sps=float(final_steps) / total,
            evaluations=self.evaluations,
        )


def obs_normaliser(spec: zoo.ZooSpec) -> tuple[Callable | None, dict]:
    """A ``wrap_env`` for ``train_ppo`` that normalises like SB3's ``VecNormalize`` (running
    mean/variance of observations, clipped to +-clip_obs; rewards divided by the running
    standard deviation of the discounted return, clipped to +-clip_reward), and a dict
    that receives the observation wrapper (its frozen statistics are used at evaluation)."""
    holder: dict = {}
    if not spec.normalize:
        return None, holder
    kw = dict(
        norm_obs=True,
        norm_reward=True,
        clip_obs=10.0,
        clip_reward=10.0,
        gamma=0.99,
        epsilon=1e-8,
    )
    kw.update(spec.normalize_kwargs)

    def wrap(envs: Any) -> Any:
        from gymnasium.wrappers.vector import (
            ClipReward,
            NormalizeObservation,
            NormalizeReward,
            TransformObservation,
        )

        if kw["norm_obs"]:
            envs = holder["obs"] = NormalizeObservation(envs, epsilon=kw["epsilon"])
            c = kw["clip_obs"]
            envs = TransformObservation(
                envs, lambda o: np.clip(o, -c, c), envs.observation_space
            )
        if kw["norm_reward"]:
            envs = NormalizeReward(envs, gamma=kw["gamma"], epsilon=kw["epsilon"])
            envs = ClipReward(envs, -kw["clip_reward"], kw["clip_reward"])
        return envs

    holder["kwargs"] = kw
    return wrap, holder


def frozen(holder: dict) -> Callable[[np.ndarray], np.ndarray]:
    """Observation normalisation with the statistics as they are now (no update)."""
    if "obs" not in holder:
        return lambda o: o
    rms, kw = holder["obs"].obs_rms, holder["kwargs"]
    mean, std = rms.mean.copy(), np.sqrt(rms.var + kw["epsilon"])
    return lambda o: np.clip((o - mean) / std, -kw["clip_obs"], kw["clip_obs"])


def run_companion_ppo(t: Task, spec: zoo.ZooSpec, config: Any, seed: int) -> dict:
    from companion.ppo import train_ppo

    clock = Clock(t.env_id, t.target)
    wrap, holder = obs_normaliser(spec)

    def callback(agent: Any, steps: int) -> bool:
        norm = frozen(holder)
        with torch.no_grad():
            return clock.evaluate(
                steps,
                lambda o: agent.greedy(
                    torch.as_tensor(norm(o), dtype=torch.float32)
                ).numpy(),
            )

    _, hist = train_ppo(
        t.env_id, config, seed=seed, progress=False, callback=callback, wrap_env=wrap
    )
    return clock.result(hist.env_steps[-1])


def run_peer(t: Task, spec: zoo.ZooSpec, seed: int, budget: int) -> dict:
    """SB3 PPO or sb3-contrib TRPO as the Zoo builds it, ``learn(budget)``, evaluated after each update."""
    from stable_baselines3.common.callbacks import BaseCallback

    clock = Clock(t.env_id, t.target)  # started before env and model are built

    class EvalAfterUpdate(BaseCallback):
        solved = False

        def _evaluate(self) -> None:
            vn = self.model.get_vec_normalize_env()
            if vn is not None and vn.norm_obs:
                mean, std = vn.obs_rms.mean.copy(), np.sqrt(vn.obs_rms.var + vn.epsilon)
                c = vn.clip_obs
                norm = lambda o: np.clip((o - mean) / std, -c, c)  # noqa: E731 (frozen copy)
            else:
                norm = lambda o: o  # noqa: E731
            self.solved = clock.evaluate(
                self.num_timesteps,
                lambda o: self.model.predict(norm(o), deterministic=True)[0],
            )

        def _on_rollout_start(
            self,
        ) -> None:  # the model was just updated on the last rollout
            if self.num_timesteps > 0 and not self.solved:
                self._evaluate()

        def _on_training_end(self) -> None:  # the final update has no next rollout
            if not self.solved:
                self._evaluate()

        def _on_step(self) -> bool:  # False stops training
            return not self.solved

    model, _ = zoo.sb3_model(spec, seed)
    model.learn(total_timesteps=budget, callback=EvalAfterUpdate())
    return clock.result(model.num_timesteps)


def trpo_available() -> str | None:
    """None when ``companion.trpo.train_trpo`` has what the TRPO tasks need (a
    ``callback``, ``TRPOConfig.total_timesteps``), else what is missing."""
    import inspect

    import companion.trpo as ctrpo

    if "callback" not in inspect.signature(ctrpo.train_trpo).parameters:
        return "companion.trpo.train_trpo has no callback argument"
    if "total_timesteps" not in {f.name for f in dataclasses.fields(ctrpo.TRPOConfig)}:
        return "companion.trpo.TRPOConfig has no total_timesteps field"
    return None


def run_companion_trpo(t: Task, spec: zoo.ZooSpec, config: Any, seed: int) -> dict:
    """The companion's TRPO (``companion.trpo.train_trpo``), evaluated after every update
    through its ``callback(policy, env_steps)``; returning True stops it."""
    import companion.trpo as ctrpo

    clock = Clock(t.env_id, t.target)
    last = {"steps": 0}

    def callback(policy: Any, steps: int) -> bool:
        last["steps"] = steps
        with torch.no_grad():
            return clock.evaluate(steps, lambda o: _greedy(policy, o))

    ctrpo.train_trpo(config, seed=seed, progress=False, callback=callback)
    return clock.result(last["steps"])


def _greedy(policy: Any, obs: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(obs, dtype=torch.float32)
    if hasattr(policy, "greedy"):
        return policy.greedy(x).numpy()
    out = policy(x)
    return out.argmax(-1).numpy()


# --------------------------------------------------------------------------- task setup
def summarise(values: list[float]) -> dict:
    """``{"median", "low", "high"}``: the median over seeds with its 95% bootstrap interval."""
    from companion.stats import bootstrap_ci

    values = [float(v) for v in values]
    if len(values) < 2:
        v = float(np.median(values))
        return dict(median=v, low=v, high=v)
    ci = bootstrap_ci(np.asarray(values), statistic="median")
    return dict(median=ci.estimate, low=ci.low, high=ci.high)


def summaries(per_seed: list[dict]) -> tuple[dict, dict]:
    summary = {}
    for side in ("companion", "peer"):
        rows = [r[side] for r in per_seed]
        summary[side] = {
            k: summarise([r[k] for r in rows]) for k in ("steps", "seconds", "sps")
        }
        summary[side]["solved"] = int(sum(r["solved"] for r in rows))
        summary[side]["n"] = len(rows)
    ratio = {
        k: summarise([r["companion"][k] / r["peer"][k] for r in per_seed])
        for k in ("steps", "seconds")
    }
    return summary, ratio


@dataclasses.dataclass
class Setup:
    """What one task runs on each side."""

    spec: zoo.ZooSpec
    companion_config: Any
    budget: int
    tuning: str
    differences: list[str]
    run_companion: Callable[[Task, zoo.ZooSpec, Any, int], dict]


COMMON_DIFFERENCES = [
    "Environments: the companion steps gymnasium's vector API (CartPole: one NumPy computation "
    "for all copies; others: SyncVectorEnv, next-step autoreset, whose reset steps are not "
    "counted); the peer steps SB3's DummyVecEnv of Monitor-wrapped copies.",
    "Updates are evaluated after every update of each learner; the two learners update at "
    "their own intervals, so the step at which a run is first seen solved is quantised "
    "differently on each side.",
]


def setup(t: Task, budget: int | None = None) -> Setup:
    """The Zoo entry, the companion's config, the disclosed differences and tuning for ``t``."""
    from companion.ppo import PPOConfig

    spec = zoo.zoo_spec(t.algo, t.env_id)
    budget = spec.n_timesteps if budget is None else int(budget)
    diffs = list(COMMON_DIFFERENCES)
    if t.algo == "ppo":
        if t.name == "ppo_cartpole":
            config = PPOConfig(total_timesteps=budget)
            tuning = (
                "companion: PPOConfig() defaults, tuned on CartPole-v1 on seeds 5-14 before "
                "this suite; peer: the Zoo's published (tuned) hyperparameters; nothing tuned "
                "on the benchmark seeds (>= 100)"
            )
            diffs.append(
                "The companion runs its own defaults PPOConfig() (8 envs x 64 steps, 6 epochs "
                "of 4 minibatches, lr 2.5e-3 annealed, clip 0.2 constant), not the Zoo's "
                "(8 x 32, 20 epochs, batch 256, lr 1e-3 and clip 0.2 annealed)."
            )
        else:
            config = zoo.companion_ppo_config(spec, total_timesteps=budget)
            tuning = (
                "none: both sides run the Zoo's published hyperparameters; nothing tuned on "
                "the benchmark seeds (>= 100)"
            )
        if spec.normalize:
            diffs.append(
                "Normalisation (Zoo 'normalize'): the peer uses SB3's VecNormalize; the "
                "companion wraps its vector env in gymnasium's NormalizeObservation (+ clip "
                "at +-10) and NormalizeReward (+ ClipReward +-10), the same running-statistics "
                "scheme and gamma; both evaluate with the frozen observation statistics."
            )
        if spec.model_kwargs.get("use_sde"):
            diffs.append(
                f"Exploration: the peer uses generalised state-dependent exploration (gSDE, "
                f"sde_sample_freq {spec.model_kwargs.get('sde_sample_freq', -1)}) as the Zoo "
                "specifies; the companion has no gSDE and samples a diagonal Gaussian with a "
                "state-independent learned log-std (initial 0, as SB3's default)."
            )
        return Setup(spec, config, budget, tuning, diffs, run_companion_ppo)
    if t.algo == "trpo":
        config = companion_trpo_config(spec, budget)
        tuning = "none: the companion's TRPO runs the Zoo's published TRPO hyperparameters mapped onto TRPOConfig"
        diffs += trpo_differences(spec)
        return Setup(spec, config, budget, tuning, diffs, run_companion_trpo)
    raise ValueError(f"unknown algo {t.algo!r}")


def companion_trpo_config(spec: zoo.ZooSpec, budget: int) -> Any:
    """Map the Zoo's TRPO entry onto ``companion.trpo.TRPOConfig`` with the correspondence
    its docstring gives (sb3-contrib's defaults where the Zoo is silent; SB3's ``MlpPolicy``
    has orthogonal initialisation and Adam eps 1e-5)."""
    import companion.trpo as ctrpo

    kw = spec.model_kwargs
    lr = kw.get("learning_rate", zoo.Schedule(1e-3))
    if isinstance(lr, zoo.Schedule) and lr.linear:
        raise NotImplementedError("a lin_ learning rate for TRPO's value network")
    return ctrpo.TRPOConfig(
        env_id=spec.env_id,
        num_envs=spec.n_envs,
        n_steps=int(kw.get("n_steps", 2048)),
        total_timesteps=int(budget),
        max_kl=float(kw.get("target_kl", 0.01)),
        gamma=float(kw.get("gamma", 0.99)),
        gae_lambda=float(kw.get("gae_lambda", 0.95)),
        normalize_advantage=bool(kw.get("normalize_advantage", True)),
        cg_iters=int(kw.get("cg_max_steps", 15)),
        damping=float(kw.get("cg_damping", 0.1)),
        line_search_shrink=float(kw.get("line_search_shrinking_factor", 0.8)),
        line_search_max_iter=int(kw.get("line_search_max_iter", 10)),
        vf_lr=float(lr.initial if isinstance(lr, zoo.Schedule) else lr),
        adam_eps=1e-5,
        vf_epochs=int(kw.get("n_critic_updates", 10)),
        vf_batch_size=int(kw.get("batch_size", 128)),
        hidden=(64, 64),
        ortho_init=True,
        log_std_init=0.0,
    )


def trpo_differences(spec: zoo.ZooSpec) -> list[str]:
    out = [
        "Trust region: sb3-contrib's line search bounds the mean KL(pi_new || pi_old), the "
        "companion's KL(pi_old || pi_new) (equal to second order; same max_kl / target_kl)."
    ]
    if spec.model_kwargs.get("use_sde"):
        out.append(
            "Exploration: the peer uses gSDE (sde_sample_freq "
            f"{spec.model_kwargs.get('sde_sample_freq', -1)}) as the Zoo specifies; the "
            "companion samples a diagonal Gaussian with a state-independent log-std."
        )
    return out


def warm_up(t: Task, s: Setup) -> None:
    """One short untimed run of each side (imports, lazy initialisation, env registration)."""
    small = dataclasses.replace(s.spec, model_kwargs=dict(s.spec.model_kwargs))
    n_envs = s.spec.n_envs
    small.model_kwargs.update(n_steps=32, batch_size=n_envs * 32)
    small.model_kwargs["n_epochs" if t.algo == "ppo" else "n_critic_updates"] = 1
    if t.algo == "ppo":
        cfg = dataclasses.replace(
            s.companion_config,
            n_steps=32,
            n_epochs=1,
            n_minibatches=1,
            total_timesteps=s.companion_config.num_envs * 32,
        )
    else:
        n = s.companion_config.num_envs * 32
        cfg = dataclasses.replace(
            s.companion_config, n_steps=32, total_timesteps=n, vf_batch_size=n
        )
    s.run_companion(t, small, cfg, 1_000)
    run_peer(t, small, 1_000, n_envs * 32)


def env_step_cost(
    env_id: str, n_vector_steps: int = 5_000, num_envs: int = 8, seed: int = 0
) -> dict:
    """Microseconds per random-action env step: the companion's vector env vs SB3's DummyVecEnv."""
    from stable_baselines3.common.env_util import make_vec_env

    from companion.rollout import make_vector_env

    gym_envs = make_vector_env(env_id, num_envs, seed)
    space = gym_envs.action_space
    space.seed(seed)
    actions = [space.sample() for _ in range(n_vector_steps)]
    t0 = time.perf_counter()
    for a in actions:
        gym_envs.step(a)
    out = {
        "gymnasium_vector_us": (time.perf_counter() - t0)
        / (n_vector_steps * num_envs)
        * 1e6
    }
    gym_envs.close()
    sb3_envs = make_vec_env(env_id, n_envs=num_envs, seed=seed)
    sb3_envs.reset()
    t0 = time.perf_counter()
    for a in actions:
        sb3_envs.step(a)
    out["sb3_dummyvecenv_us"] = (
        (time.perf_counter() - t0) / (n_vector_steps * num_envs) * 1e6
    )
    sb3_envs.close()
    out["n_steps"] = n_vector_steps * num_envs
    return out


def run_task(
    t: Task,
    seeds: list[int],
    quick: bool,
    out_dir: Path,
    budget: int | None = None,
    warmup: bool = True,
    log: Callable[[str], None] = print,
    deadline: float | None = None,
) -> dict:
    """Run one task over ``seeds``, write ``out_dir/<task>.json`` and return the results.

    ``deadline`` (a ``time.time()``): no seed is started when the longest seed so far
    would end after it; the file then holds the seeds done (``n_seeds``) and says why
    (``stopped_early``)."""
    mach = machine()
    t_start = time.perf_counter()
    s = setup(t, budget)
    if warmup:
        warm_up(t, s)
    per_seed = []
    longest, stopped = 0.0, None
    for i, seed in enumerate(seeds):
        if deadline is not None and time.time() + longest > deadline:
            stopped = (
                f"deadline: {len(per_seed)} of {len(seeds)} seeds run; the next seed "
                f"(up to {longest:.0f} s, the longest so far) would have ended after "
                f"{datetime.datetime.fromtimestamp(deadline, datetime.timezone.utc):%H:%M} UTC"
            )
            log(f"{t.name}: stopped, {stopped}")
            break
        t_seed = time.perf_counter()
        sides = [
            (
                "companion",
                lambda sd: s.run_companion(t, s.spec, s.companion_config, sd),
            ),
            ("peer", lambda sd: run_peer(t, s.spec, sd, s.budget)),
        ]
        row: dict = {"seed": seed}
        for name, fn in sides if i % 2 == 0 else sides[::-1]:
            res = fn(seed)
            row[name] = res
            log(
                f"{t.name} seed {seed} {name:<9} solved={res['solved']!s:<5} steps={res['steps']:>8} "
                f"seconds={res['seconds']:8.2f} steps/s={res['sps']:8.0f}"
            )
        per_seed.append(
            {"seed": seed, "companion": row["companion"], "peer": row["peer"]}
        )
        # written after every seed, so that a run stopped between seeds leaves an honest
        # file (n_seeds = the seeds done, "complete": false)
        results = _task_results(t, s, per_seed, quick, t_start, mach, complete=False)
        path = _write(results, out_dir, t.name)
        longest = max(longest, time.perf_counter() - t_seed)
    if not per_seed:
        log(f"{t.name}: no seed run, nothing written")
        return {}
    results = _task_results(t, s, per_seed, quick, t_start, mach, complete=True)
    if stopped:
        results["config"]["stopped_early"] = stopped
    path = _write(results, out_dir, t.name)
    summary, ratio = results["summary"], results["ratio"]
    c, p = summary["companion"], summary["peer"]
    log(
        f"{t.name}: solved companion {c['solved']}/{c['n']}, peer {p['solved']}/{p['n']}; ratio "
        f"steps {_iv(ratio['steps'])}, seconds {_iv(ratio['seconds'])}; "
        f"{results['config']['wall_seconds']:.0f} s; wrote {path}"
    )
    return results


def _write(results: dict, out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    return path


def _task_results(
    t: Task,
    s: "Setup",
    per_seed: list,
    quick: bool,
    t_start: float,
    mach: dict,
    complete: bool,
) -> dict:
    summary, ratio = summaries(per_seed)
    seeds = [r["seed"] for r in per_seed]
    config = dict(
        task=t.name,
        algo=t.algo,
        env_id=t.env_id,
        peer=t.peer,
        seeds=seeds,
        n_seeds=len(seeds),
        planned_seeds=t.n_seeds,
        complete=complete,
        quick=bool(quick),
        budget=s.budget,
        zoo_budget=s.spec.n_timesteps,
        target=t.target,
        n_eval_episodes=N_EVAL_EPISODES,
        eval_seed=EVAL_SEED,
        eval_schedule="after every update of either learner; the run stops once solved",
        zoo_file=f"rl_zoo3/hyperparams/{t.algo}.yml",
        zoo_hyperparams=zoo.raw_for_json(s.spec.raw),
        companion_config=_jsonable(dataclasses.asdict(s.companion_config)),
        tuning=s.tuning,
        differences=s.differences,
    )
    extra = {}
    if complete and t.env_id == "CartPole-v1" and t.algo == "ppo" and not quick:
        extra["env_step_cost"] = env_step_cost(t.env_id)
    config.update(provenance(t_start, mach))
    return dict(config=config, per_seed=per_seed, summary=summary, ratio=ratio, **extra)


def _iv(iv: dict) -> str:
    return f"{iv['median']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)
    return x


# --------------------------------------------------------------------------- scaling
SCALING_N_STEPS, SCALING_EPOCHS, SCALING_MINIBATCHES, SCALING_TIMED = 128, 4, 4, 3


def scale_companion(env_id: str, num_envs: int, seed: int = 0) -> dict:
    from companion.ppo import PPOConfig, train_ppo

    batch = num_envs * SCALING_N_STEPS
    cfg = PPOConfig(
        total_timesteps=batch * (1 + SCALING_TIMED),
        num_envs=num_envs,
        n_steps=SCALING_N_STEPS,
        n_epochs=SCALING_EPOCHS,
        n_minibatches=SCALING_MINIBATCHES,
        anneal_lr=False,
    )
    marks: list[tuple[str, float]] = [("start", time.perf_counter())]
    train_ppo(
        env_id,
        cfg,
        seed=seed,
        progress=False,
        on_rollout=lambda agent, ro: marks.append(("rollout", time.perf_counter())),
        callback=lambda agent, steps: (
            marks.append(("update", time.perf_counter())) or False
        ),
    )
    return _split_times(marks, batch)


def scale_peer(env_id: str, num_envs: int, seed: int = 0) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    batch = num_envs * SCALING_N_STEPS
    marks: list[tuple[str, float]] = []

    class Marks(BaseCallback):
        def _on_rollout_start(self) -> None:
            marks.append(("update" if marks else "start", time.perf_counter()))

        def _on_rollout_end(self) -> None:
            marks.append(("rollout", time.perf_counter()))

        def _on_training_end(self) -> None:
            marks.append(("update", time.perf_counter()))

        def _on_step(self) -> bool:
            return True

    env = make_vec_env(env_id, n_envs=num_envs, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=SCALING_N_STEPS,
        batch_size=batch // SCALING_MINIBATCHES,
        n_epochs=SCALING_EPOCHS,
        seed=seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=batch * (1 + SCALING_TIMED), callback=Marks())
    return _split_times(marks, batch)


def _split_times(marks: list[tuple[str, float]], batch: int) -> dict:
    """Rollout and update seconds of each update from the marks, skipping the first (warm-up)."""
    rollouts, updates, prev = [], [], None
    for kind, t in marks:
        if kind == "rollout":
            rollouts.append(t - prev)
        elif kind == "update":
            updates.append(t - prev)
        prev = t
    rollouts, updates = rollouts[1:], updates[1:]
    if not rollouts or len(rollouts) != len(updates):
        raise RuntimeError(f"unexpected timing marks {[k for k, _ in marks]}")
    steps = batch * len(rollouts)
    r, u = sum(rollouts), sum(updates)
    return dict(
        env_steps=steps,
        rollout_sps=steps / r,
        update_sps=steps / u,
        total_sps=steps / (r + u),
    )


def run_scaling(
    out_file: Path,
    num_envs: tuple[int, ...] = SCALING_NUM_ENVS,
    envs: tuple[str, ...] = SCALING_ENVS,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    mach = machine()
    t_start = time.perf_counter()
    scale_companion("CartPole-v1", 2)  # warm-up, untimed
    scale_peer("CartPole-v1", 2)
    rows = []
    for env_id in envs:
        for n in num_envs:
            for lib, fn in (("companion", scale_companion), ("peer", scale_peer)):
                r = dict(env_id=env_id, library=lib, num_envs=n, **fn(env_id, n))
                rows.append(r)
                log(
                    f"scaling {env_id} {lib:<9} num_envs={n:>3} rollout {r['rollout_sps']:8.0f} "
                    f"update {r['update_sps']:8.0f} total {r['total_sps']:8.0f} steps/s"
                )
    config = dict(
        task="scaling",
        algo="ppo",
        peer="Stable-Baselines3 PPO",
        quick=quick,
        n_steps=SCALING_N_STEPS,
        n_epochs=SCALING_EPOCHS,
        n_minibatches=SCALING_MINIBATCHES,
        warmup_updates=1,
        timed_updates=SCALING_TIMED,
        num_envs=list(num_envs),
        env_ids=list(envs),
        note=(
            "fixed settings for both libraries (MLP 64x64, n_steps 128 per env, 4 epochs of 4 "
            "minibatches, constant lr); rollout = collecting the batch (SB3: including its "
            "GAE, computed at the end of collect_rollouts; companion: GAE is in the update); "
            "update = the rest until the next rollout; first update untimed"
        ),
    )
    config.update(provenance(t_start, mach))
    results = dict(config=config, rows=rows)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(results, indent=1))
    log(f"scaling: {config['wall_seconds']:.0f} s; wrote {out_file}")
    return results


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> None:
    names = [t.name for t in TASKS] + ["scaling"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tasks",
        default=None,
        help=f"comma-separated, in order (default: all): {','.join(names)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK_SEEDS} seeds, {', '.join(QUICK_TASKS)}; results marked quick, "
        f"written to {QUICK_DIR}",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per task (from 100 on); default: the task's",
    )
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="env steps per run instead of the Zoo's n_timesteps (smoke tests only)",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=None,
        help="first seed (default 100); below 100 the run is marked quick (cost measurements)",
    )
    parser.add_argument(
        "--deadline",
        default=None,
        help="HH:MM (UTC, today): start no seed that would end after it (fewer seeds, recorded)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="where results go (default: results/)",
    )
    args = parser.parse_args(argv)
    selected = (
        args.tasks.split(",")
        if args.tasks
        else (list(QUICK_TASKS) if args.quick else names)
    )
    for n in selected:
        if n not in names:
            parser.error(f"unknown task {n!r}; known: {names}")
    if args.seeds is not None and args.seeds < 1:
        parser.error("--seeds must be at least 1")
    off_seeds = args.first_seed is not None and args.first_seed < FIRST_SEED
    quick = args.quick or args.budget is not None or off_seeds
    out_dir = args.out_dir or (QUICK_DIR if quick else RESULTS_DIR)
    deadline = None
    if args.deadline:
        hh, mm = (int(x) for x in args.deadline.split(":"))
        now = datetime.datetime.now(datetime.timezone.utc)
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    for n in selected:
        if n == "scaling":
            run_scaling(out_dir / SCALING_FILE.name, quick=quick)
            continue
        t = task_named(n)
        missing = trpo_available() if t.algo == "trpo" else None
        if missing:
            print(f"{n}: skipped, {missing}", flush=True)
            continue
        k = (
            args.seeds
            if args.seeds is not None
            else (QUICK_SEEDS if args.quick else t.n_seeds)
        )
        first = t.seeds[0] if args.first_seed is None else args.first_seed
        seeds = list(range(first, first + k))
        run_task(
            t,
            seeds,
            quick,
            out_dir,
            budget=args.budget,
            log=lambda m: print(m, flush=True),
            deadline=deadline,
        )
    print(f"suite: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
