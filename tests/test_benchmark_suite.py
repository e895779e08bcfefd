"""The benchmark suite (benchmarks/suite.py, benchmarks/zoo.py): fast checks only.

Parsing of the RL Zoo's hyperparameter files, the mapping of the Zoo's PPO
hyperparameters onto ``PPOConfig`` for each task, the summaries of committed results,
and a smoke run of the runner with a tiny budget.
"""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
pytest.importorskip("yaml")
sys.path.insert(0, str(BENCH))

import tasks  # noqa: E402
import zoo  # noqa: E402

HAVE_ZOO = importlib.util.find_spec("rl_zoo3") is not None
HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None
needs_zoo = pytest.mark.skipif(
    not HAVE_ZOO, reason="rl_zoo3 not installed (benchmarks/requirements.txt)"
)

YML = """
# Tuned
CartPole-v1:
  n_envs: 8
  n_timesteps: !!float 1e5
  policy: 'MlpPolicy'
  n_steps: 32
  batch_size: 256
  gae_lambda: 0.8
  gamma: 0.98
  n_epochs: 20
  ent_coef: 0.0
  learning_rate: lin_0.001
  clip_range: lin_0.2

Acrobot-v1:
  normalize: true
  n_envs: 16
  n_timesteps: !!float 1e6
  policy: 'MlpPolicy'
  n_steps: 256
  gae_lambda: 0.94
  gamma: 0.99
  n_epochs: 4
  ent_coef: 0.0

HalfCheetah-v4:
  normalize: "dict(norm_obs=True, norm_reward=False)"
  n_timesteps: !!float 1e6
  policy: 'MlpPolicy'
  learning_rate: !!float 2.0633e-05
  clip_range: 0.1
  use_sde: True
  sde_sample_freq: 4
  policy_kwargs: "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[256, 256], vf=[256, 256]))"
"""


def test_float_tags_and_lin_schedules_parse():
    cp = zoo.zoo_spec("ppo", "CartPole-v1", text=YML)
    assert cp.n_timesteps == 100_000 and isinstance(cp.raw["n_timesteps"], float)
    lr, clip = cp.model_kwargs["learning_rate"], cp.model_kwargs["clip_range"]
    assert lr == zoo.Schedule(1e-3, linear=True) and clip == zoo.Schedule(
        0.2, linear=True
    )
    assert lr(1.0) == pytest.approx(1e-3) and lr(0.25) == pytest.approx(2.5e-4)
    assert "n_envs" not in cp.model_kwargs and "policy" not in cp.model_kwargs
    assert not cp.normalize


def test_policy_kwargs_normalize_string_and_constants():
    import torch

    hc = zoo.zoo_spec("ppo", "HalfCheetah-v4", text=YML)
    pk = hc.model_kwargs["policy_kwargs"]
    assert pk["activation_fn"] is torch.nn.ReLU and pk["log_std_init"] == -2
    assert (
        pk["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
        and pk["ortho_init"] is False
    )
    assert hc.model_kwargs["learning_rate"] == zoo.Schedule(2.0633e-05)
    assert hc.model_kwargs["clip_range"](0.5) == 0.1  # a constant does not anneal
    assert hc.normalize and hc.normalize_kwargs == {
        "norm_obs": True,
        "norm_reward": False,
    }
    assert (
        hc.model_kwargs["use_sde"] is True and hc.model_kwargs["sde_sample_freq"] == 4
    )
    ac = zoo.zoo_spec("ppo", "Acrobot-v1", text=YML)
    assert ac.normalize and ac.normalize_kwargs == {
        "gamma": 0.99
    }  # the Zoo passes the algo's gamma


def test_kwargs_strings_cannot_reach_builtins():
    with pytest.raises(Exception):
        zoo.eval_kwargs("__import__('os').getcwd()")
    with pytest.raises(ValueError, match="schedule"):
        zoo.parse_schedule("exp_0.1")


@needs_zoo
def test_the_installed_zoo_file_is_read():
    assert zoo.zoo_file("ppo").exists() and zoo.zoo_file("trpo").exists()
    for t in tasks.TASKS:
        spec = zoo.zoo_spec(t.algo, t.env_id)
        assert spec.n_timesteps > 0 and spec.n_envs >= 1


# the Zoo's PPO entries (installed rl_zoo3 2.9.2) mapped onto PPOConfig, task by task
EXPECTED = {
    "ppo_acrobot": dict(
        total_timesteps=1_000_000,
        num_envs=16,
        n_steps=256,
        n_minibatches=64,
        n_epochs=4,
        gamma=0.99,
        gae_lambda=0.94,
        learning_rate=3e-4,
        anneal_lr=False,
        clip_eps=0.2,
        anneal_clip=False,
        ent_coef=0.0,
    ),
    "ppo_pendulum": dict(
        total_timesteps=100_000,
        num_envs=4,
        n_steps=1024,
        n_minibatches=64,
        n_epochs=10,
        gamma=0.9,
        gae_lambda=0.95,
        learning_rate=1e-3,
        anneal_lr=False,
        clip_eps=0.2,
        anneal_clip=False,
        ent_coef=0.0,
    ),
    "ppo_lunarlander": dict(
        total_timesteps=1_000_000,
        num_envs=16,
        n_steps=1024,
        n_minibatches=256,
        n_epochs=4,
        gamma=0.999,
        gae_lambda=0.98,
        learning_rate=3e-4,
        anneal_lr=False,
        clip_eps=0.2,
        anneal_clip=False,
        ent_coef=0.01,
    ),
}


@needs_zoo
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_zoo_to_ppoconfig(name):
    t = tasks.task(name)
    cfg = zoo.companion_ppo_config(zoo.zoo_spec("ppo", t.env_id))
    for k, v in EXPECTED[name].items():
        assert getattr(cfg, k) == pytest.approx(v), k
    assert cfg.vf_coef == 0.5 and cfg.max_grad_norm == 0.5 and cfg.hidden == (64, 64)


def test_zoo_to_ppoconfig_lin_schedules():
    cfg = zoo.companion_ppo_config(zoo.zoo_spec("ppo", "CartPole-v1", text=YML))
    assert (cfg.num_envs, cfg.n_steps, cfg.n_minibatches, cfg.n_epochs) == (
        8,
        32,
        1,
        20,
    )
    assert (
        cfg.anneal_lr
        and cfg.learning_rate == 1e-3
        and cfg.anneal_clip
        and cfg.clip_eps == 0.2
    )


@needs_zoo
def test_cartpole_tasks_like_for_like_and_defaults():
    pytest.importorskip("stable_baselines3")
    import suite

    from companion.ppo import PPOConfig

    like = suite.setup(tasks.task("ppo_cartpole"))
    spec = zoo.zoo_spec("ppo", "CartPole-v1")
    assert like.companion_config == zoo.companion_ppo_config(spec)
    c = like.companion_config
    assert (c.num_envs, c.n_steps, c.n_minibatches, c.n_epochs) == (8, 32, 1, 20)
    assert c.anneal_lr and c.anneal_clip and c.learning_rate == 1e-3
    defaults = suite.setup(tasks.task("ppo_cartpole_defaults"))
    assert defaults.companion_config == PPOConfig()
    assert defaults.budget == like.budget == 100_000 and "seeds 5-14" in defaults.tuning
    for s in (like, defaults):
        assert "rerun" in s.tuning or "run on the benchmark seeds" in s.tuning


@needs_zoo
def test_budgets_of_each_side():
    pytest.importorskip("stable_baselines3")
    import suite

    s = suite.setup(tasks.task("ppo_cartpole_defaults"))  # batch 512: floor vs ceil
    assert s.budget_companion["updates"] == 100_000 // 512 == 195
    assert s.budget_companion["env_step_slots"] == 195 * 512
    assert s.budget_peer["updates"] == 391 and s.budget_peer["env_steps"] == 391 * 256
    s = suite.setup(tasks.task("ppo_pendulum"))  # 4 x 1024: 100_000 is not a multiple
    assert s.budget_companion["updates"] == 24 and s.budget_peer["updates"] == 25
    assert any(d.startswith("Budget:") for d in s.differences)
    assert any(d.startswith("Value loss:") for d in s.differences)
    if not suite.trpo_available():
        s = suite.setup(tasks.task("trpo_cartpole"))
        assert any("KL(new || old)" in d for d in s.differences)


def _committed():
    return sorted(
        p
        for p in tasks.RESULTS_DIR.glob("*.json")
        if p.stem in {t.name for t in tasks.TASKS}
    )


def test_committed_summaries_are_report_summarise_of_the_per_seed_values():
    from benchmarks import report

    files = [p for p in _committed() if "peer" in json.loads(p.read_text())["summary"]]
    if not files:
        pytest.skip("no committed suite results")
    for p in files:
        r = json.loads(p.read_text())
        assert r["config"]["n_seeds"] == len(r["per_seed"]) == len(r["config"]["seeds"])
        assert report.summary_mismatches(r) == [], p.name


def test_the_suite_summarises_with_report():
    import suite

    from benchmarks import report

    assert not hasattr(suite, "summarise") and not hasattr(suite, "summaries")
    rows = [
        {
            "seed": 100 + s,
            "companion": dict(steps=s, seconds=1.0, sps=1.0, solved=True),
            "peer": dict(steps=2 * s, seconds=2.0, sps=1.0, solved=bool(s % 2)),
        }
        for s in (1, 2, 3)
    ]
    assert suite.report is report
    summary, ratio = report.summarise(rows)
    assert summary["peer"]["solved"] == 2 and summary["companion"]["n"] == 3
    assert ratio["steps"]["median"] == 0.5 and ratio["steps"]["determined"]


@pytest.mark.skipif(
    not (HAVE_ZOO and HAVE_SB3), reason="benchmark requirements not installed"
)
def test_runner_smoke(tmp_path):
    import torch

    from benchmarks import report

    import suite

    threads = torch.get_num_threads()
    try:
        suite.main(
            [
                "--tasks",
                "ppo_cartpole",
                "--seeds",
                "2",
                "--budget",
                "512",
                "--out-dir",
                str(tmp_path),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    r = json.loads((tmp_path / "ppo_cartpole.json").read_text())
    cfg = r["config"]
    assert (
        cfg["quick"]
        and cfg["budget"] == 512
        and cfg["seeds"] == [100, 101]
        and cfg["planned_seeds"] == 20
        and cfg["complete"] is False  # 2 seeds of 20
    )
    assert cfg["budget_companion"]["updates"] == 512 // 256  # the Zoo's 8 x 32
    assert cfg["budget_peer"]["updates"] == 2
    assert cfg["zoo_hyperparams"]["n_steps"] == 32 and cfg["machine"]["n_cpus"] >= 1
    row = r["per_seed"][0]
    for side in ("companion", "peer"):
        res = row[side]
        assert res["steps"] <= 512 and res["seconds"] > 0 and res["evaluations"]
        assert set(res) >= {"solved", "steps", "seconds", "sps", "evaluations"}
        assert set(r["summary"][side]) == {"steps", "seconds", "sps", "solved", "n"}
    assert set(r["ratio"]) == {"steps", "seconds"}
    assert r["summary"] == report.summarise(r["per_seed"])[0]


def test_scaling_split_times():
    import suite

    marks = [
        ("start", 0.0),
        ("rollout", 1.0),
        ("update", 1.5),
        ("rollout", 2.5),
        ("update", 3.0),
        ("rollout", 4.0),
        ("update", 4.5),
    ]
    out = suite._split_times(marks, batch=100)
    assert out == dict(
        env_steps=200,
        rollout_sps=100.0,
        update_sps=200.0,
        total_sps=pytest.approx(200 / 3),
    )


needs_bench = pytest.mark.skipif(
    not (HAVE_ZOO and HAVE_SB3), reason="benchmark requirements not installed"
)


@needs_bench
@pytest.mark.parametrize("name", [t.name for t in tasks.TASKS])
def test_warm_up_runs_for_every_task(name, monkeypatch):
    """Each task's warm-up (both sides, a few dozen steps per env) runs: it once passed
    n_epochs to sb3-contrib's TRPO, which has none."""
    import torch

    import suite

    t = tasks.task(name)
    if t.algo == "trpo" and suite.trpo_available():
        pytest.skip(suite.trpo_available())
    if t.env_id.startswith("LunarLander"):
        pytest.importorskip("Box2D")
    calls = []
    real_peer = suite.run_peer
    monkeypatch.setattr(
        suite, "run_peer", lambda *a: calls.append("peer") or real_peer(*a)
    )
    threads = torch.get_num_threads()
    try:
        suite.warm_up(t, suite.setup(t))
    finally:
        torch.set_num_threads(threads)
    assert calls == ["peer"]


def _result_file(tmp_path, complete, seeds=(100,)):
    cfg = dict(task="ppo_cartpole", complete=complete, quick=False, n_seeds=len(seeds))
    return dict(config=cfg, per_seed=[{"seed": s} for s in seeds])


def test_an_incomplete_run_never_replaces_a_complete_file(tmp_path):
    import suite

    logs = []
    full = _result_file(tmp_path, True, range(100, 120))
    path = suite._write(full, tmp_path, "ppo_cartpole", logs.append)
    part = suite._write(
        _result_file(tmp_path, False), tmp_path, "ppo_cartpole", logs.append
    )
    assert part.name == "ppo_cartpole.json.partial" and path.name == "ppo_cartpole.json"
    assert json.loads(path.read_text())["config"]["complete"] is True
    suite._write(
        full, tmp_path, "ppo_cartpole", logs.append
    )  # a complete rerun replaces
    assert not part.exists() and any("replacing" in m for m in logs)


def test_warm_up_config_is_small():
    pytest.importorskip("stable_baselines3")
    if not HAVE_ZOO:
        pytest.skip("rl_zoo3 not installed")
    import suite

    s = suite.setup(tasks.task("ppo_lunarlander"))
    assert dataclasses.asdict(s.companion_config)["num_envs"] == 16
    assert np.isclose(s.companion_config.ent_coef, 0.01)


# the Zoo's TRPO entries (installed rl_zoo3 2.9.2) mapped onto TRPOConfig, with
# sb3-contrib's defaults where the Zoo is silent
EXPECTED_TRPO = {
    "trpo_cartpole": dict(
        num_envs=2,
        n_steps=512,
        total_timesteps=100_000,
        vf_batch_size=512,
        damping=1e-3,
        gae_lambda=0.98,
        gamma=0.99,
        vf_lr=1e-3,
        vf_epochs=20,
        cg_iters=15,
        max_kl=0.01,
        line_search_shrink=0.8,
        line_search_max_iter=10,
        adam_eps=1e-5,
        ortho_init=True,
    ),
    "trpo_pendulum": dict(
        num_envs=2,
        n_steps=1024,
        total_timesteps=100_000,
        vf_batch_size=128,
        damping=0.1,
        gae_lambda=0.95,
        gamma=0.9,
        vf_lr=1e-3,
        vf_epochs=15,
        cg_iters=15,
        max_kl=0.01,
        line_search_shrink=0.8,
        line_search_max_iter=10,
        adam_eps=1e-5,
        ortho_init=True,
    ),
}


@needs_zoo
@pytest.mark.parametrize("name", sorted(EXPECTED_TRPO))
def test_zoo_to_trpoconfig(name):
    import suite

    if suite.trpo_available():
        pytest.skip(suite.trpo_available())
    t = tasks.task(name)
    cfg = suite.companion_trpo_config(zoo.zoo_spec("trpo", t.env_id), 100_000)
    for k, v in EXPECTED_TRPO[name].items():
        assert getattr(cfg, k) == pytest.approx(v), k
    assert cfg.env_id == t.env_id and cfg.hidden == (64, 64)


# --------------------------------------------------------------------------- normalisation
def _replay_vec_env(obs, rewards, dones):
    """An SB3 VecEnv that returns a given stream (obs[0] at reset, then obs[t+1], rewards[t], dones[t])."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import VecEnv

    n, d = obs.shape[1], obs.shape[2]

    class Replay(VecEnv):
        def __init__(self):
            space = gym.spaces.Box(-np.inf, np.inf, (d,), np.float32)
            super().__init__(n, space, gym.spaces.Discrete(2))
            self.t = 0

        def reset(self):
            self.t = 0
            return obs[0].copy()

        def step_async(self, actions):
            pass

        def step_wait(self):
            self.t += 1
            infos = [{} for _ in range(n)]
            return (
                obs[self.t].copy(),
                rewards[self.t - 1].copy(),
                dones[self.t - 1].copy(),
                infos,
            )

        def close(self):
            pass

        def get_attr(self, name, indices=None):
            return [None] * n

        def set_attr(self, name, value, indices=None):
            pass

        def env_method(self, *a, **k):
            return [None] * n

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * n

    return Replay()


@pytest.mark.skipif(not HAVE_SB3, reason="stable_baselines3 not installed")
@pytest.mark.parametrize("kwargs", [{}, dict(gamma=0.9, clip_obs=2.0, clip_reward=1.5)])
def test_normalizer_is_vecnormalize_on_the_same_stream(kwargs):
    from stable_baselines3.common.vec_env import VecNormalize

    import normalize

    rng = np.random.default_rng(0)
    T, n, d = 300, 4, 3
    obs = (rng.normal(size=(T + 1, n, d)) * [1.0, 5.0, 0.1] + [0.0, 3.0, -1.0]).astype(
        np.float32
    )
    rewards = (rng.normal(size=(T, n)) - 1.0).astype(np.float32)
    dones = rng.random((T, n)) < 0.05
    sb3 = VecNormalize(_replay_vec_env(obs, rewards, dones), **kwargs)
    ours = normalize.Normalizer(n, (d,), **kwargs)
    np.testing.assert_allclose(ours.reset(obs[0]), sb3.reset(), rtol=1e-6, atol=1e-6)
    for t in range(T):
        sb3.step_async(np.zeros(n, dtype=np.int64))
        o_sb3, r_sb3, _, _ = sb3.step_wait()
        o, r = ours.step(obs[t + 1], rewards[t], dones[t])
        np.testing.assert_allclose(o, o_sb3, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(r, r_sb3, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours.returns, sb3.returns, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours.obs_rms.mean, sb3.obs_rms.mean, rtol=1e-6)
    np.testing.assert_allclose(ours.obs_rms.var, sb3.obs_rms.var, rtol=1e-6)
    np.testing.assert_allclose(ours.ret_rms.var, sb3.ret_rms.var, rtol=1e-6)
    frozen = ours.frozen()
    np.testing.assert_allclose(
        frozen(obs[5]), sb3.normalize_obs(obs[5]), rtol=1e-6, atol=1e-6
    )


def _toy_env_class():
    import gymnasium as gym

    class Toy(gym.Env):
        """Random observations and rewards; episodes end after ``lengths`` steps in turn,
        alternately terminated and truncated. Its own RNG, never reseeded, so that a
        gymnasium and an SB3 vector env of it see the same stream."""

        observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        action_space = gym.spaces.Discrete(2)

        def __init__(self, k=0, lengths=(5,)):
            self.rng = np.random.default_rng(k)
            self.lengths, self.episode, self.t = lengths, 0, 0

        def _obs(self):
            return (self.rng.normal(size=2) * [2.0, 0.5] + [1.0, -3.0]).astype(
                np.float32
            )

        def reset(self, *, seed=None, options=None):
            self.t = 0
            return self._obs(), {}

        def step(self, action):
            self.t += 1
            end = self.t >= self.lengths[self.episode % len(self.lengths)]
            term = end and self.episode % 2 == 0
            trunc = end and not term
            if end:
                self.episode += 1
            return self._obs(), float(self.rng.normal() - 1.0), term, trunc, {}

    return Toy


@pytest.mark.skipif(not HAVE_SB3, reason="stable_baselines3 not installed")
@pytest.mark.parametrize("n, lengths", [(3, (7,)), (1, (3, 9, 4, 12, 1, 6))])
def test_vecnormalize_wrapper_matches_sb3_through_autoresets(n, lengths):
    """gymnasium next-step autoreset + our wrapper vs SB3's DummyVecEnv + VecNormalize:
    with the copies ending episodes on the same steps, every real step gives the same
    normalised reward, and every non-final step the same normalised observation."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv
    from stable_baselines3.common.vec_env import VecNormalize as SB3VecNormalize

    import normalize

    Toy = _toy_env_class()
    ours = normalize.VecNormalize(
        gym.vector.SyncVectorEnv([lambda k=k: Toy(k, lengths) for k in range(n)]),
        gamma=0.95,
    )
    sb3 = SB3VecNormalize(
        DummyVecEnv([lambda k=k: Toy(k, lengths) for k in range(n)]), gamma=0.95
    )
    o, _ = ours.reset()
    np.testing.assert_allclose(o, sb3.reset(), rtol=1e-5, atol=1e-5)
    a = np.zeros(n, dtype=np.int64)
    compared = reset_steps = 0
    reset_next = False
    for _ in range(120):
        o, r, term, trunc, _ = ours.step(a)
        if reset_next:  # gymnasium's reset step: SB3 has none; reward 0 stays 0
            assert np.all(r == 0)
            reset_steps += 1
            reset_next = False
            continue
        sb3.step_async(a)
        o_sb3, r_sb3, dones, infos = sb3.step_wait()
        np.testing.assert_array_equal(term | trunc, dones)
        np.testing.assert_allclose(r, r_sb3, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(
            ours.normalizer.returns, sb3.returns, rtol=1e-6, atol=1e-6
        )
        if dones.any():
            assert dones.all()  # the copies end together here
            reset_next = True
        else:
            np.testing.assert_allclose(o, o_sb3, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(ours.obs_rms.mean, sb3.obs_rms.mean, rtol=1e-6)
            np.testing.assert_allclose(ours.obs_rms.var, sb3.obs_rms.var, rtol=1e-6)
            np.testing.assert_allclose(
                ours.normalizer.ret_rms.var, sb3.ret_rms.var, rtol=1e-6
            )
            compared += 1
    assert reset_steps >= 8 and compared >= 60


def test_gymnasium_normalize_reward_is_not_vecnormalize():
    """Why the wrapper exists: gymnasium's NormalizeReward keeps the discounted return
    across truncations, so on truncated episodes its scale drifts from SB3's."""
    import gymnasium as gym
    from gymnasium.wrappers.vector import NormalizeReward

    import normalize

    Toy = _toy_env_class()
    make = lambda: gym.vector.SyncVectorEnv([lambda: Toy(0, (5,))])  # noqa: E731
    g, ours = (
        NormalizeReward(make(), gamma=0.99),
        normalize.VecNormalize(make(), gamma=0.99),
    )
    g.reset(seed=0)
    ours.reset(seed=0)
    for _ in range(200):
        _, rg, *_ = g.step(np.zeros(1, dtype=np.int64))
        _, ro, *_ = ours.step(np.zeros(1, dtype=np.int64))
    assert not np.isclose(g.return_rms.var, ours.normalizer.ret_rms.var, rtol=0.05)


@pytest.mark.parametrize(
    "extra",
    [
        "  target_kl: 0.02\n",
        "  clip_range_vf: 0.2\n",
        '  policy_kwargs: "dict(net_arch=[32, 32])"\n',
        '  policy_kwargs: "dict(activation_fn=nn.ReLU)"\n',
    ],
)
def test_unmappable_zoo_keys_raise(extra):
    text = YML.replace("  clip_range: lin_0.2\n", "  clip_range: lin_0.2\n" + extra)
    with pytest.raises(NotImplementedError, match="PPOConfig cannot express"):
        zoo.companion_ppo_config(zoo.zoo_spec("ppo", "CartPole-v1", text=text))


@needs_bench
def test_scaling_rows_have_medians_repeats_and_companion_sync(tmp_path):
    import gymnasium as gym
    import torch

    import suite

    from companion.rollout import make_vector_env

    envs = suite.sync_vector_env("CartPole-v1", 2)(make_vector_env("CartPole-v1", 2, 0))
    assert isinstance(envs, gym.vector.SyncVectorEnv)
    threads = torch.get_num_threads()
    try:
        out = suite.run_scaling(
            tmp_path / "scaling.json",
            num_envs=(2,),
            envs=("CartPole-v1",),
            repeats=2,
            log=lambda m: None,
        )
    finally:
        torch.set_num_threads(threads)
    assert [r["library"] for r in out["rows"]] == [
        "companion",
        "companion_sync",
        "peer",
    ]
    for r in out["rows"]:
        assert r["repeats"] == 2 and len(r["total_sps_all"]) == 2
        assert r["total_sps"] == pytest.approx(np.median(r["total_sps_all"]))
        assert r["env_steps"] == 2 * suite.SCALING_N_STEPS * suite.SCALING_TIMED
    assert "companion_sync" in out["config"]["note"] and out["config"]["repeats"] == 2


@pytest.mark.skipif(
    not (HAVE_ZOO and HAVE_SB3), reason="benchmark requirements not installed"
)
def test_a_passed_deadline_runs_no_seed(tmp_path):
    import time

    import suite

    out = suite.run_task(
        tasks.task("ppo_cartpole"),
        [100],
        True,
        tmp_path,
        budget=512,
        warmup=False,
        log=lambda m: None,
        deadline=time.time() - 1,
    )
    assert out == {} and not list(tmp_path.iterdir())
