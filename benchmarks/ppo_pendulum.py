"""PPO with a Gaussian policy on Pendulum-v1 (continuous actions), as a documented script.

Chapter 5 only smoke-tests the continuous path, because swinging the pendulum up takes
on the order of 10^5 steps. This script trains it for real and reports the greedy
policy's mean return over 10 evaluation episodes (a random policy scores about -1200;
an upright, balanced pendulum about -150 to -200).

Settings: 4 environments x 512 steps per update, 10 epochs of 16 minibatches, Adam
learning rate 1e-3 annealed, gamma 0.9 and GAE lambda 0.95 (as the RL Zoo uses for this
task), clipping 0.2, initial log standard deviation -0.5, no entropy bonus.

Usage: ``python benchmarks/ppo_pendulum.py [--steps 200000] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from companion.ppo import PPOConfig, evaluate_policy, train_ppo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = PPOConfig(total_timesteps=args.steps, num_envs=4, n_steps=512, n_epochs=10, n_minibatches=16,
                       learning_rate=1e-3, gamma=0.9, gae_lambda=0.95, clip_eps=0.2, log_std_init=-0.5)
    start = time.perf_counter()
    agent, hist = train_ppo("Pendulum-v1", config, seed=args.seed, progress=True)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        score = evaluate_policy(lambda o: agent.greedy(torch.as_tensor(o, dtype=torch.float32)).numpy(),
                                "Pendulum-v1", n_episodes=10)
    print(f"{hist.env_steps[-1]} steps in {seconds:.0f} s; mean of the last 20 training episodes "
          f"{np.mean(hist.episode_returns[-20:]):.0f}; greedy policy over 10 episodes: {score:.0f}")


if __name__ == "__main__":
    main()
