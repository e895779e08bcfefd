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
(``zoo.companion_ppo_config``, which raises on an entry it cannot map), except in
``ppo_cartpole_defaults``, where it runs its own ``PPOConfig()`` defaults (tuned on
CartPole on seeds 5-14; the benchmark seeds start at 100) against the same SB3 runs.
Where the Zoo normalises, the companion's env is wrapped in ``benchmarks/normalize.py``,
SB3's ``VecNormalize`` arithmetic on gymnasium's next-step autoreset.

A file is ``"complete": true`` only when the seeds run are the task's planned seeds;
``--seeds k`` with fewer seeds writes ``complete: false``, and an incomplete result never
replaces a complete file (it goes to ``<task>.json.partial`` beside it). Summaries are
``benchmarks/report.py``'s ``summarise``.

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

import normalize  # noqa: E402
import zoo  # noqa: E402
from benchmarks import report  # noqa: E402  (THE summaries: medians, ratio of medians)

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
    """A ``wrap_env`` for ``train_ppo`` that normalises as SB3's ``VecNormalize`` does
    (``benchmarks/normalize.py``: SB3's arithmetic on gymnasium's next-step autoreset), and
    a dict that receives the wrapper (its frozen statistics are used at evaluation)."""
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
        holder["env"] = normalize.VecNormalize(envs, **kw)
        return holder["env"]

    holder["kwargs"] = kw
    return wrap, holder


def frozen(holder: dict) -> Callable[[np.ndarray], np.ndarray]:
    """Observation normalisation with the statistics as they are now (no update)."""
    if "env" not in holder:
        return lambda o: o
    return holder["env"].normalizer.frozen()


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
@dataclasses.dataclass
class Setup:
    """What one task runs on each side."""

    spec: zoo.ZooSpec
    companion_config: Any
    budget: int
    tuning: str
    differences: list[str]
    run_companion: Callable[[Task, zoo.ZooSpec, Any, int], dict]
    budget_companion: dict = dataclasses.field(default_factory=dict)
    budget_peer: dict = dataclasses.field(default_factory=dict)


COMMON_DIFFERENCES = [
    "Environments: the companion steps gymnasium's vector API (CartPole: one NumPy computation "
    "for all copies; others: SyncVectorEnv, next-step autoreset, whose reset steps are not "
    "counted); the peer steps SB3's DummyVecEnv of Monitor-wrapped copies.",
    "Updates are evaluated after every update of each learner; the two learners update at "
    "their own intervals, so the step at which a run is first seen solved is quantised "
    "differently on each side.",
]

CARTPOLE_RERUNS = (
    "CartPole-v1 was run on the benchmark seeds 100-119 several times while the evaluation "
    "protocol was developed (no hyperparameter of either side changed between those runs)"
)


def budgets(
    algo: str, config: Any, spec: zoo.ZooSpec, budget: int
) -> tuple[dict, dict]:
    """Updates and env steps each side can take within ``budget``: ``(companion, peer)``.

    The companion's PPO runs ``floor(budget / batch)`` updates and its batch counts every
    env-step slot, gymnasium's autoreset slots included (its reported steps count only real
    transitions, so they are at most ``env_step_slots``); its TRPO runs
    ``ceil(budget / batch)`` updates. SB3 / sb3-contrib collect rollouts while
    ``num_timesteps < budget``: ``ceil(budget / batch)`` updates of ``batch`` steps.
    """
    batch_c = config.num_envs * config.n_steps
    updates_c = budget // batch_c if algo == "ppo" else -(-budget // batch_c)
    batch_p = spec.n_envs * int(spec.model_kwargs.get("n_steps", 2048))
    updates_p = -(-budget // batch_p)
    companion = dict(
        rule=("floor" if algo == "ppo" else "ceil") + "(budget / batch) updates; slots "
        "include autoreset slots, reported steps exclude them",
        batch=batch_c,
        updates=updates_c,
        env_step_slots=updates_c * batch_c,
    )
    peer = dict(
        rule="until num_timesteps >= budget: ceil(budget / batch) updates",
        batch=batch_p,
        updates=updates_p,
        env_steps=updates_p * batch_p,
    )
    return companion, peer


def budget_difference(algo: str, companion: dict, peer: dict) -> str:
    rule = "floor" if algo == "ppo" else "ceil"
    return (
        f"Budget: the companion runs {rule}(budget / batch) = {companion['updates']} updates of "
        f"{companion['batch']} env-step slots ({companion['env_step_slots']:,} slots, autoreset "
        f"slots included, so it sees fewer real transitions); the peer runs until num_timesteps "
        f">= budget, {peer['updates']} updates of {peer['batch']} ({peer['env_steps']:,} steps)."
    )


VALUE_LOSS_DIFFERENCE = (
    "Value loss: the companion's is 0.5 * MSE * vf_coef (CleanRL's convention), SB3's is "
    "MSE * vf_coef, so with the same vf_coef the companion's critic gradient is half SB3's; "
    "both sides have separate actor and critic networks and Adam ignores a gradient's scale "
    "(up to its eps), so this matters only through the global gradient-norm clip "
    "(max_grad_norm), in which the companion's critic gradient weighs half as much."
)


def setup(t: Task, budget: int | None = None) -> Setup:
    """The Zoo entry, the companion's config, the disclosed differences and tuning for ``t``."""
    from companion.ppo import PPOConfig

    spec = zoo.zoo_spec(t.algo, t.env_id)
    budget = spec.n_timesteps if budget is None else int(budget)
    diffs = list(COMMON_DIFFERENCES)
    if t.algo == "ppo":
        if t.name == "ppo_cartpole_defaults":
            config = PPOConfig(total_timesteps=budget)
            tuning = (
                "companion: PPOConfig() defaults, tuned on CartPole-v1 on seeds 5-14 before "
                "this suite; peer: the Zoo's published (tuned) hyperparameters; nothing tuned "
                "on the benchmark seeds (>= 100); " + CARTPOLE_RERUNS
            )
            diffs.append(
                "The companion runs its own defaults PPOConfig() (8 envs x 64 steps, 6 epochs "
                "of 4 minibatches, lr 2.5e-3 annealed, clip 0.2 constant), not the Zoo's "
                "(8 x 32, 20 epochs, batch 256, lr 1e-3 and clip 0.2 annealed): what the "
                "companion's tuning buys, not a like-for-like comparison."
            )
        else:
            config = zoo.companion_ppo_config(spec, total_timesteps=budget)
            tuning = (
                "none: both sides run the Zoo's published hyperparameters; nothing tuned on "
                "the benchmark seeds (>= 100)"
            )
            if t.env_id == "CartPole-v1":
                tuning += "; " + CARTPOLE_RERUNS
        diffs.append(VALUE_LOSS_DIFFERENCE)
        if spec.normalize:
            diffs.append(
                "Normalisation (Zoo 'normalize'): the peer uses SB3's VecNormalize; the "
                "companion uses benchmarks/normalize.py, SB3's arithmetic on gymnasium's "
                "next-step autoreset (tested equal on the same stream), except that a reset "
                "observation enters the statistics one step later; both evaluate with the "
                "frozen observation statistics."
            )
        if spec.model_kwargs.get("use_sde"):
            diffs.append(
                f"Exploration: the peer uses generalised state-dependent exploration (gSDE, "
                f"sde_sample_freq {spec.model_kwargs.get('sde_sample_freq', -1)}) as the Zoo "
                "specifies; the companion has no gSDE and samples a diagonal Gaussian with a "
                "state-independent learned log-std (initial 0, as SB3's default)."
            )
        run = run_companion_ppo
    elif t.algo == "trpo":
        config = companion_trpo_config(spec, budget)
        tuning = "none: the companion's TRPO runs the Zoo's published TRPO hyperparameters mapped onto TRPOConfig"
        diffs += trpo_differences(spec)
        run = run_companion_trpo
    else:
        raise ValueError(f"unknown algo {t.algo!r}")
    bc, bp = budgets(t.algo, config, spec, budget)
    diffs.append(budget_difference(t.algo, bc, bp))
    return Setup(spec, config, budget, tuning, diffs, run, bc, bp)


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
        "Line search: the companion's accepts a step when the mean KL(old || new) is at most "
        "max_kl, sb3-contrib's constrains the mean KL(new || old); the two agree to second "
        "order in the step."
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
        # file (n_seeds = the seeds done, "complete": false); a complete file already there
        # is kept, and the progress goes next to it (<task>.json.partial)
        results = _task_results(t, s, per_seed, quick, t_start, mach, complete=False)
        path = _write(results, out_dir, t.name, log)
        longest = max(longest, time.perf_counter() - t_seed)
    if not per_seed:
        log(f"{t.name}: no seed run, nothing written")
        return {}
    # complete only when the seeds run are the task's planned seeds (--seeds k < planned,
    # another first seed, or a run stopped by --deadline leaves complete: false)
    complete = [r["seed"] for r in per_seed] == t.seeds
    results = _task_results(t, s, per_seed, quick, t_start, mach, complete=complete)
    if stopped:
        results["config"]["stopped_early"] = stopped
    path = _write(results, out_dir, t.name, log)
    summary, ratio = results["summary"], results["ratio"]
    if summary is None:
        log(f"{t.name}: {len(per_seed)} seed, no summary; wrote {path}")
        return results
    c, p = summary["companion"], summary["peer"]
    log(
        f"{t.name}: solved companion {c['solved']}/{c['n']}, peer {p['solved']}/{p['n']}; ratio "
        f"steps {_iv(ratio['steps'])}, seconds {_iv(ratio['seconds'])}; "
        f"{results['config']['wall_seconds']:.0f} s; wrote {path}"
    )
    return results


def _is_complete_result(path: Path) -> bool:
    try:
        cfg = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(cfg.get("complete", True)) and not cfg.get("quick", False)


def _write(
    results: dict, out_dir: Path, name: str, log: Callable[[str], None] = print
) -> Path:
    """Write ``out_dir/<name>.json``. An incomplete result never replaces a complete one
    (it goes to ``<name>.json.partial`` instead); a complete one replacing a complete one
    says so."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    complete = bool(results["config"].get("complete", True))
    if path.exists() and _is_complete_result(path):
        if not complete:
            path = path.with_name(path.name + ".partial")
        else:
            old = json.loads(path.read_text())["config"]
            log(
                f"{name}: replacing the complete result in {path} "
                f"({old.get('n_seeds')} seeds, {old.get('date')})"
            )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)
    if complete:
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
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
    # report.summarise is THE summary; it needs two seeds for an interval (null before)
    summary, ratio = report.summarise(per_seed) if len(per_seed) >= 2 else (None, None)
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
        budget_companion=s.budget_companion,
        budget_peer=s.budget_peer,
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


def resummarise(path: Path, task: str | None = None, disclose: bool = True) -> dict:
    """Rewrite a results file's summary and ratio with ``report.summarise`` of its per-seed
    rows (the rows are not touched). ``task`` renames the task (``config.task`` and the
    file name). ``disclose`` refreshes the disclosures that do not depend on how the run
    went (``differences``, ``tuning``, ``budget_companion``, ``budget_peer``) from
    :func:`setup`, keeping the file's own normalisation sentence (its runs used whatever
    normaliser the suite had then)."""
    res = json.loads(path.read_text())
    cfg = res["config"]
    if task is not None:
        cfg["task"] = task
    if disclose:
        t = task_named(cfg["task"])
        s = setup(t, cfg["budget"])
        old_norm = [
            d for d in cfg.get("differences", []) if d.startswith("Normalisation")
        ]
        diffs = [d for d in s.differences if not d.startswith("Normalisation")]
        cfg.update(
            differences=diffs[:2] + old_norm + diffs[2:],
            tuning=s.tuning,
            budget_companion=s.budget_companion,
            budget_peer=s.budget_peer,
            planned_seeds=t.n_seeds,
            complete=[r["seed"] for r in res["per_seed"]] == t.seeds,
        )
    res["summary"], res["ratio"] = report.summarise(res["per_seed"])
    out = path.with_name(f"{cfg['task']}.json")
    out.write_text(json.dumps(res, indent=1))
    if out != path:
        path.unlink()
    return res


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
SCALING_REPEATS = (
    5  # fresh runs per point (each: one untimed update, then SCALING_TIMED timed)
)
SCALING_SYNC_ENVS = ("CartPole-v1",)  # envs with a NumPy-vectorised implementation


def sync_vector_env(env_id: str, num_envs: int) -> Callable[[Any], Any]:
    """A ``wrap_env`` for ``train_ppo`` that swaps the vector env it was given for a
    ``gymnasium.vector.SyncVectorEnv`` of Python copies (next-step autoreset, as
    ``make_vector_env`` builds for environments without a vectorised implementation); the
    collector resets it with the run's seed."""
    import gymnasium as gym

    def wrap(envs: Any) -> Any:
        envs.close()
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")

    return wrap


def scale_companion(
    env_id: str,
    num_envs: int,
    seed: int = 0,
    sync: bool = False,
    n_steps: int = SCALING_N_STEPS,
) -> dict:
    """One fresh run of the companion's PPO: one untimed update, then ``SCALING_TIMED``
    timed ones. ``sync``: on a SyncVectorEnv of Python copies instead of gymnasium's
    vectorised implementation (CartPole)."""
    from companion.ppo import PPOConfig, train_ppo

    batch = num_envs * n_steps
    cfg = PPOConfig(
        total_timesteps=batch * (1 + SCALING_TIMED),
        num_envs=num_envs,
        n_steps=n_steps,
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
        wrap_env=sync_vector_env(env_id, num_envs) if sync else None,
        on_rollout=lambda agent, ro: marks.append(("rollout", time.perf_counter())),
        callback=lambda agent, steps: (
            marks.append(("update", time.perf_counter())) or False
        ),
    )
    return _split_times(marks, batch)


def scale_peer(
    env_id: str, num_envs: int, seed: int = 0, n_steps: int = SCALING_N_STEPS
) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    batch = num_envs * n_steps
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
        n_steps=n_steps,
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


SCALING_KEYS = ("rollout_sps", "update_sps", "total_sps")


def scaling_row(env_id: str, library: str, num_envs: int, repeats: list[dict]) -> dict:
    """One row of scaling.json: the median of each rate over the repeats, and the repeats."""
    row = dict(
        env_id=env_id,
        library=library,
        num_envs=num_envs,
        env_steps=repeats[0]["env_steps"],
    )
    for k in SCALING_KEYS:
        row[k] = float(np.median([r[k] for r in repeats]))
    for k in SCALING_KEYS:
        row[f"{k}_all"] = [float(r[k]) for r in repeats]
    row["repeats"] = len(repeats)
    return row


def run_scaling(
    out_file: Path,
    num_envs: tuple[int, ...] = SCALING_NUM_ENVS,
    envs: tuple[str, ...] = SCALING_ENVS,
    quick: bool = False,
    repeats: int = SCALING_REPEATS,
    n_steps: int = SCALING_N_STEPS,
    log: Callable[[str], None] = print,
) -> dict:
    mach = machine()
    t_start = time.perf_counter()
    scale_companion("CartPole-v1", 2)  # warm-up, untimed
    scale_companion("CartPole-v1", 2, sync=True)
    scale_peer("CartPole-v1", 2)
    rows = []
    for env_id in envs:
        libs = [
            ("companion", lambda e, n: scale_companion(e, n, n_steps=n_steps)),
            ("peer", lambda e, n: scale_peer(e, n, n_steps=n_steps)),
        ]
        if env_id in SCALING_SYNC_ENVS:
            libs.insert(
                1,
                (
                    "companion_sync",
                    lambda e, n: scale_companion(e, n, sync=True, n_steps=n_steps),
                ),
            )
        for n in num_envs:
            reps: dict[str, list[dict]] = {lib: [] for lib, _ in libs}
            for i in range(
                repeats
            ):  # interleaved, so that slow spells hit every library
                for lib, fn in libs if i % 2 == 0 else libs[::-1]:
                    reps[lib].append(fn(env_id, n))
            for lib, _ in libs:
                r = scaling_row(env_id, lib, n, reps[lib])
                rows.append(r)
                log(
                    f"scaling {env_id} {lib:<14} num_envs={n:>3} rollout {r['rollout_sps']:8.0f} "
                    f"update {r['update_sps']:8.0f} total {r['total_sps']:8.0f} steps/s "
                    f"(median of {repeats})"
                )
    config = dict(
        task="scaling",
        algo="ppo",
        peer="Stable-Baselines3 PPO",
        quick=quick,
        n_steps=n_steps,
        n_epochs=SCALING_EPOCHS,
        n_minibatches=SCALING_MINIBATCHES,
        warmup_updates=1,
        timed_updates=SCALING_TIMED,
        repeats=repeats,
        num_envs=list(num_envs),
        env_ids=list(envs),
        sync_env_ids=[e for e in envs if e in SCALING_SYNC_ENVS],
        note=(
            "Fixed settings for both libraries (MLP 64x64, n_steps "
            f"{n_steps} per env, {SCALING_EPOCHS} epochs of {SCALING_MINIBATCHES} "
            "minibatches, constant lr). Each point is "
            f"{repeats} fresh runs (interleaved across libraries); each run's first update "
            f"is untimed and its next {SCALING_TIMED} are timed; a row holds the median over "
            "the runs of each rate and the runs' rates (*_all). Timed on each side: rollout "
            "= collecting the batch (companion: policy sampling, value of every observation "
            "and env stepping on gymnasium's vector API; SB3: the same on a DummyVecEnv of "
            "Monitor-wrapped Python copies, plus its GAE, computed at the end of "
            "collect_rollouts); update = the rest until the next rollout (companion: GAE, "
            "the epochs of minibatch steps, its per-update diagnostics; SB3: its train() "
            "and logging). library 'companion' steps CartPole with gymnasium's NumPy-"
            "vectorised CartPole (one computation for all copies) and Pendulum with a "
            "SyncVectorEnv; 'companion_sync' steps CartPole with a SyncVectorEnv of Python "
            "copies, like SB3's DummyVecEnv, so that the rollout rates compare the learners "
            "rather than the environment implementation."
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
        help="seeds per task (from 100 on); default: the task's planned seeds; fewer give "
        "complete: false, which never replaces a complete file",
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
        "--scaling-n-steps",
        type=int,
        default=SCALING_N_STEPS,
        help=f"steps per env per rollout in the scaling table (default {SCALING_N_STEPS})",
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
            run_scaling(
                out_dir / SCALING_FILE.name,
                quick=quick,
                n_steps=args.scaling_n_steps,
            )
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
