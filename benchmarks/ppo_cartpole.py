"""PPO on CartPole-v1 against Stable-Baselines3: now the suite's task ``ppo_cartpole``.

Kept as an entry point for old instructions; it runs ``benchmarks/suite.py --tasks
ppo_cartpole`` (same protocol as before, results in ``benchmarks/results/ppo_cartpole.json``)
and passes its other arguments through (``--quick``, ``--seeds N``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from suite import main  # noqa: E402

if __name__ == "__main__":
    main(["--tasks", "ppo_cartpole", *sys.argv[1:]])
