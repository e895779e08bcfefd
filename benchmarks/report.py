"""Render the committed PPO benchmark results (benchmarks/results/ppo_cartpole.json) as
the README's table, so that the README quotes the results file rather than typed numbers.

Usage::

    python benchmarks/report.py                 # print the table
    python benchmarks/report.py --update-readme # rewrite the README's benchmark block

``tests/test_benchmark_report.py`` fails when the README's block and the file disagree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ppo_cartpole.json"
README = ROOT / "README.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def render(report: dict) -> str:
    """The README's benchmark block: protocol line, table, ratios and environment cost."""
    cfg, summ, ratio, cost = report["config"], report["summary"], report["ratio"], report["env_step_cost"]

    def iv(d: dict, fmt: str) -> str:
        return f"{d['median']:{fmt}} [{d['low']:{fmt}}, {d['high']:{fmt}}]"

    rows = [
        "| | solved | median env steps to solve [95% CI] | median seconds to solve [95% CI] "
        "| median env steps / s [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name, label in (("companion", "companion"), ("sb3", "Stable-Baselines3")):
        s = summ[name]
        rows.append(f"| {label} | {s['solved']}/{s['n']} | {iv(s['steps'], ',.0f')} | "
                    f"{iv(s['seconds'], '.2f')} | {iv(s['sps'], ',.0f')} |")
    rows.append(f"| ratio companion / SB3 (per seed) | | {iv(ratio['steps'], '.2f')} | "
                f"{iv(ratio['seconds'], '.2f')} | |")
    v = cfg["versions"]
    lines = [
        f"Measured on {cfg['date']} ({cfg['machine']}; torch {v['torch']}, gymnasium "
        f"{v['gymnasium']}, Stable-Baselines3 {v['stable_baselines3']}), {cfg['n_seeds']} "
        f"seeds ({cfg['seeds'][0]}-{cfg['seeds'][-1]}), budget {cfg['budget']:,} env steps, "
        f"greedy evaluation {cfg.get('eval_schedule', 'every {:,} steps'.format(cfg['eval_every']))} "
        f"over {cfg['n_eval_episodes']} episodes, solved at a mean return of {cfg['target']}"
        f"{' (QUICK SMOKE RUN, not a measurement)' if cfg.get('quick') else ''}:",
        "",
        *rows,
        "",
        f"Environment cost, random actions: gymnasium's NumPy-vectorised CartPole "
        f"{cost['gymnasium_vector_us']:.1f} us per step, SB3's DummyVecEnv of Monitor-wrapped "
        f"copies {cost['sb3_dummyvecenv_us']:.1f} us per step.",
        "",
        "Against the goals (no more env steps than SB3, at most half its wall-clock), read "
        "from the intervals of the per-seed ratios: env steps "
        + ("met (the whole interval is below 1)" if ratio["steps"]["high"] < 1
           else "not resolved (the interval reaches 1)" if ratio["steps"]["low"] < 1
           else "not met") + "; wall-clock "
        + ("met (the whole interval is below 0.5)." if ratio["seconds"]["high"] < 0.5
           else "not resolved (the interval reaches 0.5)." if ratio["seconds"]["low"] < 0.5
           else "not met."),
    ]
    return "\n".join(lines)


def readme_block(text: str) -> str | None:
    m = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, flags=re.S)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    block = render(json.loads(RESULTS.read_text()))
    if not args.update_readme:
        print(block)
        return 0
    text = README.read_text()
    if readme_block(text) is None:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    README.write_text(re.sub(re.escape(START) + r"\n.*?\n?" + re.escape(END),
                             lambda _: f"{START}\n{block}\n{END}", text, flags=re.S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
