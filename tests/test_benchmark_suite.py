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
def test_cartpole_ppo_companion_runs_its_defaults():
    pytest.importorskip("stable_baselines3")
    import suite

    from companion.ppo import PPOConfig

    s = suite.setup(tasks.task("ppo_cartpole"))
    assert s.companion_config == PPOConfig()
    assert s.budget == 100_000 and "seeds 5-14" in s.tuning


def _committed():
    return sorted(
        p
        for p in tasks.RESULTS_DIR.glob("*.json")
        if p.stem in {t.name for t in tasks.TASKS}
    )


def test_committed_summaries_are_bootstrap_cis_of_the_per_seed_values():
    from companion.stats import bootstrap_ci

    files = [p for p in _committed() if "peer" in json.loads(p.read_text())["summary"]]
    if not files:
        pytest.skip("no committed suite results")
    for p in files:
        r = json.loads(p.read_text())
        assert r["config"]["n_seeds"] == len(r["per_seed"]) == len(r["config"]["seeds"])
        for side in ("companion", "peer"):
            s = r["summary"][side]
            assert s["n"] == len(r["per_seed"])
            assert s["solved"] == sum(row[side]["solved"] for row in r["per_seed"])
            for k in ("steps", "seconds", "sps"):
                ci = bootstrap_ci(
                    [row[side][k] for row in r["per_seed"]], statistic="median"
                )
                assert s[k] == pytest.approx(
                    dict(median=ci.estimate, low=ci.low, high=ci.high)
                ), (p.name, side, k)
        for k in ("steps", "seconds"):
            ci = bootstrap_ci(
                [row["companion"][k] / row["peer"][k] for row in r["per_seed"]],
                statistic="median",
            )
            assert r["ratio"][k] == pytest.approx(
                dict(median=ci.estimate, low=ci.low, high=ci.high)
            ), (p.name, k)


def test_summaries_of_one_seed_are_degenerate():
    import suite

    assert suite.summarise([3.0]) == dict(median=3.0, low=3.0, high=3.0)
    rows = [
        {
            "companion": dict(steps=s, seconds=1.0, sps=1.0, solved=True),
            "peer": dict(steps=2 * s, seconds=2.0, sps=1.0, solved=bool(s % 2)),
        }
        for s in (1, 2, 3)
    ]
    summary, ratio = suite.summaries(rows)
    assert summary["peer"]["solved"] == 2 and summary["companion"]["n"] == 3
    assert ratio["steps"]["median"] == 0.5 and ratio["seconds"]["median"] == 0.5


@pytest.mark.skipif(
    not (HAVE_ZOO and HAVE_SB3), reason="benchmark requirements not installed"
)
def test_runner_smoke(tmp_path):
    import torch

    import suite

    threads = torch.get_num_threads()
    try:
        suite.main(
            [
                "--tasks",
                "ppo_cartpole",
                "--seeds",
                "1",
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
        and cfg["seeds"] == [100]
        and cfg["planned_seeds"] == 20
    )
    assert cfg["zoo_hyperparams"]["n_steps"] == 32 and cfg["machine"]["n_cpus"] >= 1
    row = r["per_seed"][0]
    for side in ("companion", "peer"):
        res = row[side]
        assert res["steps"] <= 512 and res["seconds"] > 0 and res["evaluations"]
        assert set(res) >= {"solved", "steps", "seconds", "sps", "evaluations"}
        assert set(r["summary"][side]) == {"steps", "seconds", "sps", "solved", "n"}
    assert set(r["ratio"]) == {"steps", "seconds"}


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
