"""The RL Baselines3 Zoo's published hyperparameters, read from the installed ``rl_zoo3``.

Never retyped: :func:`zoo_hyperparams` reads ``hyperparams/<algo>.yml`` from the
``rl_zoo3`` package's own folder (found with ``importlib.util.find_spec``, without
importing the heavy package). :func:`sb3_model` builds the Stable-Baselines3 model the way
the Zoo's ``ExperimentManager`` does (``lin_<x>`` schedules as
``progress_remaining * x``, ``policy_kwargs`` strings evaluated with ``torch.nn`` in
scope, ``normalize`` as a ``VecNormalize`` with the algorithm's ``gamma``,
``make_vec_env(env_id, n_envs, seed)``), and :func:`companion_ppo_config` maps the same
hyperparameters onto the companion's :class:`~companion.ppo.PPOConfig`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SB3_PPO_BATCH_SIZE = (
    64  # SB3's default ``batch_size`` of PPO (the Zoo omits it for some envs)
)
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
# keys the Zoo consumes itself; the rest go to the model's constructor
ZOO_ONLY = (
    "n_envs",
    "n_timesteps",
    "policy",
    "normalize",
    "env_wrapper",
    "frame_stack",
    "callback",
    "env_kwargs",
    "monitor_kwargs",
)


def zoo_dir() -> Path:
    """The ``hyperparams`` folder of the installed ``rl_zoo3`` package."""
    spec = importlib.util.find_spec("rl_zoo3")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("rl_zoo3 is not installed (pip install rl_zoo3)")
    return Path(spec.submodule_search_locations[0]) / "hyperparams"


def zoo_file(algo: str) -> Path:
    return zoo_dir() / f"{algo}.yml"


def zoo_hyperparams(algo: str, env_id: str, text: str | None = None) -> dict[str, Any]:
    """The Zoo's entry for ``env_id`` in ``<algo>.yml``, as the YAML says (``!!float`` read
    as floats; strings such as ``lin_0.001`` and ``policy_kwargs`` left as strings).
    ``text`` replaces the file's contents (for tests)."""
    text = zoo_file(algo).read_text() if text is None else text
    table = yaml.safe_load(text)
    if env_id not in table:
        raise KeyError(f"{env_id} has no entry in the Zoo's {algo}.yml")
    return dict(table[env_id])


@dataclass(frozen=True)
class Schedule:
    """A constant, or ``lin_<x>``: ``x`` times the fraction of training remaining."""

    initial: float
    linear: bool = False

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial if self.linear else self.initial


def parse_schedule(value: Any) -> Schedule:
    """``lin_0.001`` -> linear from 1e-3; a number -> constant (as the Zoo's ``_preprocess_schedules``)."""
    if isinstance(value, str):
        kind, _, initial = value.partition("_")
        if kind != "lin" or not initial:
            raise ValueError(f"unknown schedule {value!r} (the Zoo's are lin_<x>)")
        return Schedule(float(initial), linear=True)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a schedule must be lin_<x> or a number, got {value!r}")
    return Schedule(float(value))


def eval_kwargs(text: str) -> dict[str, Any]:
    """Evaluate a Zoo kwargs string (``"dict(log_std_init=-2, ortho_init=False,
    activation_fn=nn.ReLU, net_arch=dict(pi=[256], vf=[256]))"``) as the Zoo does, but
    with only ``dict``, ``nn`` (torch.nn) and ``th`` (torch) in scope and no builtins."""
    import torch

    scope = {
        "__builtins__": {},
        "dict": dict,
        "nn": torch.nn,
        "th": torch,
        "True": True,
        "False": False,
        "None": None,
    }
    value = eval(text, scope)  # noqa: S307 - the Zoo's own file, restricted scope
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict, got {value!r} from {text!r}")
    return value


@dataclass
class ZooSpec:
    """One Zoo entry, parsed: what the Zoo gives the environment and what it gives the model."""

    algo: str
    env_id: str
    raw: dict[str, Any]
    n_envs: int
    n_timesteps: int
    normalize: bool
    normalize_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # schedules as Schedule objects

    @property
    def schedules(self) -> dict[str, Schedule]:
        return {k: v for k, v in self.model_kwargs.items() if isinstance(v, Schedule)}


def parse(algo: str, env_id: str, raw: dict[str, Any]) -> ZooSpec:
    """Turn a raw Zoo entry into a :class:`ZooSpec` (the Zoo's preprocessing, step by step)."""
    hp = dict(raw)
    unknown = [k for k in ("env_wrapper", "frame_stack", "callback") if hp.get(k)]
    if unknown:
        raise NotImplementedError(
            f"Zoo entry {algo}/{env_id} uses {unknown}, which this suite does not build"
        )
    if hp.get("policy", "MlpPolicy") != "MlpPolicy":
        raise NotImplementedError(f"policy {hp['policy']!r}")
    normalize = hp.get("normalize", False)
    normalize_kwargs: dict[str, Any] = {}
    if isinstance(normalize, str):
        normalize_kwargs, normalize = eval_kwargs(normalize), True
    elif isinstance(normalize, dict):
        normalize_kwargs, normalize = dict(normalize), True
    if normalize and "gamma" in hp:
        normalize_kwargs["gamma"] = hp["gamma"]
    kwargs = {k: v for k, v in hp.items() if k not in ZOO_ONLY}
    for key in SCHEDULED:
        if key in kwargs and not (
            isinstance(kwargs[key], (int, float)) and kwargs[key] < 0
        ):
            kwargs[key] = parse_schedule(kwargs[key])
    if isinstance(kwargs.get("policy_kwargs"), str):
        kwargs["policy_kwargs"] = eval_kwargs(kwargs["policy_kwargs"])
    for key in (
        "n_steps",
        "batch_size",
        "n_epochs",
        "n_critic_updates",
        "sde_sample_freq",
        "cg_max_steps",
    ):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    return ZooSpec(
        algo,
        env_id,
        dict(raw),
        int(hp.get("n_envs", 1)),
        int(hp["n_timesteps"]),
        bool(normalize),
        normalize_kwargs,
        kwargs,
    )


def zoo_spec(algo: str, env_id: str, text: str | None = None) -> ZooSpec:
    return parse(algo, env_id, zoo_hyperparams(algo, env_id, text))


def raw_for_json(raw: dict[str, Any]) -> dict[str, Any]:
    """The raw entry with numbers made JSON-friendly (``1e5`` stays a float, as in the YAML)."""
    return {
        k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
        for k, v in raw.items()
    }


def sb3_model(
    spec: ZooSpec, seed: int, n_timesteps: int | None = None
) -> tuple[Any, Any]:
    """The Stable-Baselines3 (or sb3-contrib) model the Zoo builds for ``spec``; returns
    ``(model, vec_normalize or None)``. Schedules are passed as callables of SB3's
    ``progress_remaining``, which anneals over the ``total_timesteps`` given to ``learn``."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    if spec.algo == "ppo":
        from stable_baselines3 import PPO as Algo
    elif spec.algo == "trpo":
        from sb3_contrib import TRPO as Algo
    else:
        raise ValueError(f"algo must be ppo or trpo, got {spec.algo!r}")
    env = make_vec_env(spec.env_id, n_envs=spec.n_envs, seed=seed)
    vec_norm = None
    if spec.normalize:
        env = vec_norm = VecNormalize(env, **spec.normalize_kwargs)
    kwargs = {
        k: ((v if v.linear else v.initial) if isinstance(v, Schedule) else v)
        for k, v in spec.model_kwargs.items()
    }
    model = Algo("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    return model, vec_norm


# the Zoo's PPO keys companion_ppo_config maps onto PPOConfig, and those the runner
# discloses instead (gSDE: the companion has none); any other key raises
PPO_MAPPED = frozenset(
    {
        "n_steps",
        "batch_size",
        "n_epochs",
        "gamma",
        "gae_lambda",
        "learning_rate",
        "clip_range",
        "ent_coef",
        "vf_coef",
        "max_grad_norm",
        "normalize_advantage",
        "policy_kwargs",
    }
)
PPO_DISCLOSED = frozenset({"use_sde", "sde_sample_freq"})
POLICY_KWARGS_MAPPED = frozenset({"log_std_init", "ortho_init"})


def companion_ppo_config(spec: ZooSpec, **overrides: Any) -> Any:
    """The :class:`~companion.ppo.PPOConfig` that runs the Zoo's PPO hyperparameters.

    ``n_minibatches = n_envs * n_steps / batch_size`` (SB3's default batch 64 when the Zoo
    omits it); ``lin_`` learning rate / clip range -> ``anneal_lr`` / ``anneal_clip``;
    ``vf_coef`` 0.5 and ``max_grad_norm`` 0.5 (SB3's defaults unless the Zoo sets them);
    hidden layers (64, 64) as SB3's ``MlpPolicy``; ``policy_kwargs`` ``log_std_init`` and
    ``ortho_init``. Normalisation and gSDE are not config fields: the runner handles or
    discloses them. Any other key (``net_arch``, ``activation_fn``, ``target_kl``,
    ``clip_range_vf``, ...) raises ``NotImplementedError`` rather than being dropped."""
    from companion.ppo import PPOConfig

    if spec.algo != "ppo":
        raise ValueError(f"a PPOConfig is for PPO, not {spec.algo}")
    kw = spec.model_kwargs
    unmapped = sorted(set(kw) - PPO_MAPPED - PPO_DISCLOSED)
    pk = kw.get("policy_kwargs") or {}
    unmapped += [f"policy_kwargs.{k}" for k in sorted(set(pk) - POLICY_KWARGS_MAPPED)]
    if unmapped:
        raise NotImplementedError(
            f"Zoo entry ppo/{spec.env_id} sets {unmapped}, which PPOConfig cannot express "
            "as SB3 means them; map them (or disclose them) before benchmarking this entry"
        )
    n_steps = int(kw.get("n_steps", 2048))
    batch = spec.n_envs * n_steps
    batch_size = int(kw.get("batch_size", SB3_PPO_BATCH_SIZE))
    if batch % batch_size:
        raise ValueError(
            f"batch_size {batch_size} does not divide n_envs * n_steps = {batch}"
        )
    lr = kw.get("learning_rate", Schedule(3e-4))
    clip = kw.get("clip_range", Schedule(0.2))
    cfg = dict(
        total_timesteps=spec.n_timesteps,
        num_envs=spec.n_envs,
        n_steps=n_steps,
        n_minibatches=batch // batch_size,
        n_epochs=int(kw.get("n_epochs", 10)),
        gamma=float(kw.get("gamma", 0.99)),
        gae_lambda=float(kw.get("gae_lambda", 0.95)),
        learning_rate=lr.initial,
        anneal_lr=lr.linear,
        clip_eps=clip.initial,
        anneal_clip=clip.linear,
        ent_coef=float(kw.get("ent_coef", 0.0)),
        vf_coef=float(kw.get("vf_coef", 0.5)),
        max_grad_norm=float(kw.get("max_grad_norm", 0.5)),
        hidden=(64, 64),
    )
    if "log_std_init" in pk:
        cfg["log_std_init"] = float(pk["log_std_init"])
    if "ortho_init" in pk:
        cfg["ortho_init"] = bool(pk["ortho_init"])
    if "normalize_advantage" in kw:
        cfg["norm_adv"] = bool(kw["normalize_advantage"])
    cfg.update(overrides)
    return PPOConfig(**cfg)
