"""Read the committed benchmark results and render them: the README's headline block, the
tables and figures of the book's "Benchmarks" page.

Everything quoted about performance (README, book) comes through this module from the
files in ``benchmarks/results/`` (format: ``benchmarks/tasks.py``), never typed by hand.

Usage::

    python benchmarks/report.py                 # print the README block
    python benchmarks/report.py --update-readme # rewrite the README's benchmark block
    python benchmarks/report.py --compare DIR   # does the rerun in DIR reproduce them?

``tests/test_benchmark_report.py`` fails when the README's block, or a summary in a results
file, disagrees with what this module computes from the per-seed results; the browser test
(``tests/browser/check_book.py``) does the same for the tables on the built page.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that ``benchmarks.tasks`` imports when run as a script
    sys.path.insert(0, str(ROOT))

from benchmarks.tasks import SCALING_FILE, TASKS, Task  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
# The goals: no more env steps than the peer (ratio <= 1), at most half its
# wall-clock (ratio <= 0.5), both read from the 95% interval of the ratio of medians.
GOALS = {"steps": 1.0, "seconds": 0.5}
SIDES = ("companion", "peer")


def results_dir() -> Path:
    """Where results are read from: ``benchmarks/results`` (``BENCHMARK_RESULTS_DIR`` overrides,
    for tests)."""
    return Path(os.environ.get("BENCHMARK_RESULTS_DIR", ROOT / "benchmarks" / "results"))


def load(task: Task, directory: Path | None = None) -> dict | None:
    """The results of ``task``, or ``None`` when it has no committed results file."""
    path = (directory or results_dir()) / f"{task.name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def load_all(directory: Path | None = None) -> dict[str, dict]:
    """Results of every task that has a file, in the registry's order."""
    out = {}
    for t in TASKS:
        res = load(t, directory)
        if res is not None:
            out[t.name] = res
    return out


def load_scaling(directory: Path | None = None) -> dict | None:
    path = (directory or results_dir()) / SCALING_FILE.name
    return json.loads(path.read_text()) if path.exists() else None


# ----------------------------------------------------------------------------- summaries
def interval(values: Any) -> dict:
    """Median over seeds with its 95% bootstrap interval (``companion.stats.bootstrap_ci``,
    its default resampling seed), as stored in the results files."""
    from companion.stats import bootstrap_ci

    values = np.asarray(values, dtype=float)
    if values.size < 2:
        v = float(np.median(values))
        return dict(median=v, low=v, high=v)
    ci = bootstrap_ci(values, statistic="median")
    return dict(median=float(ci.estimate), low=float(ci.low), high=float(ci.high))


def ratio_interval(companion: Any, peer: Any) -> dict:
    """Ratio of the two sides' medians with a 95% two-sample bootstrap interval
    (``companion.stats.ratio_of_medians_ci``). The two libraries share no randomness, so
    the runs are not paired: each side is resampled on its own."""
    from companion.stats import ratio_of_medians_ci

    ci = ratio_of_medians_ci(companion, peer)
    return dict(median=float(ci.estimate), low=float(ci.low), high=float(ci.high))


def summarise(per_seed: list[dict]) -> tuple[dict, dict]:
    """``(summary, ratio)`` of a results file, computed from its per-seed rows.

    An unsolved run counts with its final steps and seconds, the most it could have
    taken, so it sorts above every solved run: a side's median steps is then still the
    median steps to solve as long as more than half of its seeds solved. The ratio is
    ``determined`` only when both sides solved more than half of their seeds.
    """
    summary = {}
    for side in SIDES:
        summary[side] = {k: interval([r[side][k] for r in per_seed]) for k in ("steps", "seconds", "sps")}
        summary[side]["solved"] = int(sum(bool(r[side]["solved"]) for r in per_seed))
        summary[side]["n"] = len(per_seed)
    determined = all(2 * summary[side]["solved"] > summary[side]["n"] for side in SIDES)
    ratio = {
        k: dict(ratio_interval([r["companion"][k] for r in per_seed], [r["peer"][k] for r in per_seed]),
                determined=determined)
        for k in ("steps", "seconds")
    }
    return summary, ratio


def summary_mismatches(res: dict, rtol: float = 1e-9) -> list[str]:
    """Where a results file's stored summary differs from :func:`summarise` of its per-seed
    rows (empty when they agree): what the page and README quote is what the seeds give."""
    summary, ratio = summarise(res["per_seed"])
    out = []

    def close(a: float, b: float) -> bool:
        return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-12)

    for side in SIDES:
        for k in ("solved", "n"):
            if res["summary"][side][k] != summary[side][k]:
                out.append(f"summary.{side}.{k}")
    pairs = [(f"summary.{side}.{k}", res["summary"][side][k], summary[side][k])
             for side in SIDES for k in ("steps", "seconds", "sps")]
    pairs += [(f"ratio.{k}", res["ratio"][k], ratio[k]) for k in ("steps", "seconds")]
    for k in ("steps", "seconds"):
        if res["ratio"][k].get("determined") != ratio[k]["determined"]:
            out.append(f"ratio.{k}.determined")
    for where, stored, computed in pairs:
        for q in ("median", "low", "high"):
            if not close(stored[q], computed[q]):
                out.append(f"{where}.{q}")
    return out


def verdict(iv: dict, goal: float) -> str:
    """"met" when the whole interval is below ``goal``, "not met" when it is all above,
    "not resolved" when it straddles it; "undetermined" when a side solved half of its
    seeds or fewer (its median is then the budget, not a time to solve)."""
    if not iv.get("determined", True):
        return "undetermined"
    if iv["high"] < goal:
        return "met"
    if iv["low"] > goal:
        return "not met"
    return "not resolved"


# ----------------------------------------------------------------------------- formatting
def fmt_steps(x: float) -> str:
    return f"{x:,.0f}"


def fmt_seconds(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}"


def fmt_iv(iv: dict, fmt) -> str:
    return f"{fmt(iv['median'])} [{fmt(iv['low'])}, {fmt(iv['high'])}]"


def fmt_ratio_iv(iv: dict, goal: float) -> str:
    """A ratio's interval to 2 decimals, or 3 where a bound would round onto the goal (so
    that "0.998" is not shown as "1.00" next to "met")."""
    digits = 3 if any(f"{iv[q]:.2f}" == f"{goal:.2f}" for q in ("low", "high")) else 2
    return f"{iv['median']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


TASKS_HEADER = ["task", "learner", "environment", "compared with", "threshold", "seeds planned"]


def tasks_rows() -> list[list[str]]:
    """The registry as the page shows it: every planned task and its solved threshold."""
    return [[t.name, t.algo.upper(), t.env_id, t.peer, f"{t.target:g}", str(t.n_seeds)] for t in TASKS]


def tasks_table() -> str:
    return table(TASKS_HEADER, tasks_rows())


HEADLINE_HEADER = [
    "task", "compared with", "solved: companion, peer",
    "env steps ratio [95% CI]: goal <= 1", "wall-clock ratio [95% CI]: goal <= 0.5",
]


def headline_rows(results: dict[str, dict]) -> list[list[str]]:
    """One row per task with results: the ratios of medians companion / peer and verdicts."""
    rows = []
    for t in TASKS:
        if t.name not in results:
            continue
        res = results[t.name]
        s, r = res["summary"], res["ratio"]
        rows.append([
            t.title, res["config"]["peer"],
            f"{s['companion']['solved']}/{s['companion']['n']}, {s['peer']['solved']}/{s['peer']['n']}",
            f"{fmt_ratio_iv(r['steps'], GOALS['steps'])}: {verdict(r['steps'], GOALS['steps'])}",
            f"{fmt_ratio_iv(r['seconds'], GOALS['seconds'])}: "
            f"{verdict(r['seconds'], GOALS['seconds'])}",
        ])
    return rows


def headline_table(results: dict[str, dict]) -> str:
    return table(HEADLINE_HEADER, headline_rows(results))


TASK_HEADER = [
    "", "solved", "median env steps to solve [95% CI]", "median seconds to solve [95% CI]",
    "median env steps / s [95% CI]",
]


def task_rows(res: dict) -> list[list[str]]:
    """The task's table: each side's medians over seeds, then the ratios of medians."""
    s, r = res["summary"], res["ratio"]
    rows = []
    for side, label in (("companion", "companion"), ("peer", res["config"]["peer"])):
        x = s[side]
        rows.append([
            label, f"{x['solved']}/{x['n']}", fmt_iv(x["steps"], fmt_steps),
            fmt_iv(x["seconds"], fmt_seconds), fmt_iv(x["sps"], fmt_steps),
        ])
    rows.append([
        "ratio of medians, companion / peer", "", fmt_ratio_iv(r["steps"], GOALS["steps"]),
        fmt_ratio_iv(r["seconds"], GOALS["seconds"]), "",
    ])
    return rows


def task_table(res: dict) -> str:
    return table(TASK_HEADER, task_rows(res))


PER_SEED_HEADER = ["seed", "companion steps", "companion seconds", "peer steps", "peer seconds"]


def per_seed_rows(res: dict) -> list[list[str]]:
    def cell(x: dict, key: str, fmt) -> str:
        return fmt(x[key]) + ("" if x["solved"] else " (not solved)")

    return [
        [str(r["seed"]), cell(r["companion"], "steps", fmt_steps),
         cell(r["companion"], "seconds", fmt_seconds), cell(r["peer"], "steps", fmt_steps),
         cell(r["peer"], "seconds", fmt_seconds)]
        for r in res["per_seed"]
    ]


def per_seed_table(res: dict) -> str:
    return table(PER_SEED_HEADER, per_seed_rows(res))


def _machine_and_versions(cfg: dict) -> str:
    """When, where and with which versions: the part every provenance line shares."""
    m = cfg["machine"]
    versions = ", ".join(f"{k} {val}" for k, val in cfg["versions"].items())
    return (
        f"Measured on {cfg['date']} on {m['cpu_model']} ({m['n_cpus']} CPUs, {m['platform']}, "
        f"Python {m['python']}), torch on {cfg.get('torch_threads', 1)} thread; {versions}"
    )


def provenance(res: dict) -> str:
    """One sentence: when, where and with which versions a results file was measured."""
    cfg = res["config"]
    m = cfg["machine"]
    seeds = cfg["seeds"]
    return (
        _machine_and_versions(cfg)
        + f"; {cfg['n_seeds']} seeds ({seeds[0]}-{seeds[-1]})"
        + (f", of {cfg['planned_seeds']} planned" if cfg.get("planned_seeds", cfg["n_seeds"]) != cfg["n_seeds"] else "")
        + f"; budget {cfg['budget']:,} env steps; "
        f"{cfg['wall_seconds'] / 60:.0f} min in all"
        + (f"; load average {m['load_average_start'][0]:.1f} at the start and "
           f"{m['load_average_end'][0]:.1f} at the end" if "load_average_start" in m else "")
        + "."
        + (f" {cfg['concurrent_load'].rstrip('.')}." if cfg.get("concurrent_load") else "")
    )


def provenance_short(res: dict) -> str:
    """When, where and with which versions a measurement without seeds was made."""
    return _machine_and_versions(res["config"]) + "."


def unrun_tasks(results: dict[str, dict]) -> list[Task]:
    return [t for t in TASKS if t.name not in results]


# ----------------------------------------------------------------------------- reruns
REPRO_HEADER = [
    "task", "side", "quantity", "committed median [95% CI]", "rerun median [95% CI]",
    "rerun median inside the committed interval", "rerun / committed [95% CI]",
    "consistent (interval holds 1)",
]


def _paired_seeds(committed: dict, rerun: dict, sides: tuple[str, ...], k: str) -> list[np.ndarray]:
    """Quantity ``k`` of each side in ``sides``, rerun then committed, over the seeds both
    runs have, in the same seed order (a rerun uses the committed run's seeds)."""
    a, b, seeds = _common_seeds(committed, rerun)
    return [np.array([res[s][side][k] for s in seeds], dtype=float)
            for res in (b, a) for side in sides]


def _common_seeds(committed: dict, rerun: dict) -> tuple[dict, dict, list]:
    """Each file's per-seed records by seed, and the seeds both have, sorted."""
    a = {r["seed"]: r for r in committed["per_seed"]}
    b = {r["seed"]: r for r in rerun["per_seed"]}
    return a, b, sorted(set(a) & set(b))


def _paired_ratio_interval(arrays: list[np.ndarray], ratio: Any, confidence: float = 0.95,
                           n_resamples: int = 9999, seed: int = 0) -> dict:
    """``ratio`` of the medians of ``arrays`` (equal length, one entry per seed) with a
    percentile bootstrap interval that resamples *seeds*: the same resampled seeds for
    every array, so that each seed's rerun stays paired with its committed run (they share
    the seed, and on the same CPU they are the same run). The interval is widened to
    contain the estimate if it misses it."""
    rng = np.random.default_rng(seed)
    n = arrays[0].size
    idx = rng.integers(0, n, size=(n_resamples, n))
    boot = ratio(*[np.median(x[idx], axis=1) for x in arrays])
    est = float(ratio(*[np.median(x) for x in arrays]))
    tail = 50 * (1 - confidence)
    low, high = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
    return dict(median=est, low=min(low, est), high=max(high, est))


def chance_outside() -> float:
    """Probability that a rerun's median falls outside the committed 95% interval although
    nothing changed, when both medians scatter normally with the same standard error
    ``se``: the difference has standard deviation ``sqrt(2) se``, and the interval's half
    width is ``1.96 se``, so the probability is ``2 (1 - Phi(1.96 / sqrt(2)))``."""
    from scipy.stats import norm

    return float(2 * norm.sf(norm.ppf(0.975) / np.sqrt(2)))


def reproduction_rows(committed: dict[str, dict], rerun: dict[str, dict]) -> list[dict]:
    """Whether a rerun reproduces the committed results: for every task in both, every
    side's median env steps, seconds and env steps / s to the threshold, and the ratios of
    medians, each with the rerun's median checked against the committed 95% interval.

    Each row: ``task``, ``side`` ("companion", "peer" or "ratio"), ``quantity``,
    ``committed`` and ``rerun`` (dicts with median, low, high), ``inside`` (bool) and
    ``overlap`` (whether the two intervals overlap), ``shift`` (rerun median / committed
    median, or for a ratio row rerun ratio / committed ratio, with a 95% paired bootstrap
    interval, :func:`rerun_shift`) and ``consistent`` (whether that interval holds 1: the
    paired check, which, unlike ``inside``, allows for the rerun's own sampling error); ratio rows also hold ``verdicts``, the
    headline's verdict (:func:`verdict`) of the committed and of the rerun interval. On another CPU a rerun is
    partly a new sample: float rounding differs between instruction sets, so some seeds'
    trajectories part after a few updates while others repeat exactly (see
    :func:`identical_seeds`), and the medians move within their sampling error; on the same
    CPU, library versions and thread count every run repeats.
    """
    rows = []
    for t in TASKS:
        if t.name not in committed or t.name not in rerun:
            continue
        a, b = committed[t.name], rerun[t.name]

        pairs = [(side, k, a["summary"][side][k], b["summary"][side][k])
                 for side in SIDES for k in ("steps", "seconds", "sps")]
        pairs += [("ratio", k, a["ratio"][k], b["ratio"][k]) for k in ("steps", "seconds")]
        for side, k, ca, cb in pairs:
            moved = rerun_shift(a, b, side, k)
            row = dict(
                task=t.name, side=side, quantity=k, committed=ca, rerun=cb,
                inside=bool(ca["low"] <= cb["median"] <= ca["high"]),
                overlap=bool(ca["low"] <= cb["high"] and cb["low"] <= ca["high"]),
                shift=moved, consistent=bool(moved["low"] <= 1.0 <= moved["high"]),
            )
            if side == "ratio":  # the headline's verdict, committed and rerun
                row["verdicts"] = (verdict(ca, GOALS[k]), verdict(cb, GOALS[k]))
            rows.append(row)
    return rows


def identical_seeds(committed: dict, rerun: dict) -> tuple[int, int]:
    """``(identical, common)``: of the (seed, side) runs in both files, how many reached the
    threshold at exactly the same env step (all of them on the same machine and versions)."""
    a, b, seeds = _common_seeds(committed, rerun)
    same = sum(int(b[s][side]["steps"] == a[s][side]["steps"]) for s in seeds for side in SIDES)
    return same, len(seeds) * len(SIDES)


def reproduction_cells(rows: list[dict]) -> list[list[str]]:
    """The cells of the reproduction table (one line per row of :func:`reproduction_rows`)."""
    names = {"steps": "env steps to solve", "seconds": "seconds to solve", "sps": "env steps / s"}

    def fmt(side: str, k: str):
        return fmt_ratio if side == "ratio" else fmt_seconds if k == "seconds" else fmt_steps

    return [
        [r["task"], "companion / peer" if r["side"] == "ratio" else r["side"], names[r["quantity"]],
         fmt_iv(r["committed"], fmt(r["side"], r["quantity"])),
         fmt_iv(r["rerun"], fmt(r["side"], r["quantity"])),
         "yes" if r["inside"] else "no" + (" (intervals overlap)" if r["overlap"] else ""),
         fmt_ratio_iv(r["shift"], 1.0), "yes" if r["consistent"] else "no"]
        for r in rows
    ]


def reproduction_table(rows: list[dict]) -> str:
    return table(REPRO_HEADER, reproduction_cells(rows))


def rerun_shift(committed: dict, rerun: dict, side: str, k: str,
                confidence: float = 0.95) -> dict:
    """Rerun median / committed median of one task's quantity ``k`` for ``side``
    ("companion", "peer", or "ratio" for the ratio companion / peer, whose shift is
    rerun ratio / committed ratio), with a paired bootstrap interval at ``confidence``
    (:func:`_paired_ratio_interval`: seeds resampled, each seed's rerun paired with its
    committed run)."""
    if side == "ratio":
        arrays = _paired_seeds(committed, rerun, ("companion", "peer"), k)
        return _paired_ratio_interval(arrays, lambda cr, pr, cc, pc: (cr / pr) / (cc / pc),
                                      confidence=confidence)
    arrays = _paired_seeds(committed, rerun, (side,), k)
    return _paired_ratio_interval(arrays, lambda r, c: r / c, confidence=confidence)


def same_cpu(committed: dict, rerun: dict) -> bool:
    """Whether two results files were measured on the same CPU model."""
    return committed["config"]["machine"]["cpu_model"] == rerun["config"]["machine"]["cpu_model"]


def checked_rows(rows: list[dict], committed: dict[str, dict],
                 rerun: dict[str, dict]) -> list[dict]:
    """The rows ``--compare`` checks: the env steps of each side, both ratios companion /
    peer (both sides of a run share its machine, so its speed largely cancels), and, when
    both runs were on the same CPU model, each side's seconds and steps per second too (on
    another CPU those measure the machine as much as the code)."""
    return [r for r in rows if r["quantity"] == "steps" or r["side"] == "ratio"
            or same_cpu(committed[r["task"]], rerun[r["task"]])]


def reproduction_failures(rows: list[dict], committed: dict[str, dict],
                          rerun: dict[str, dict], level: float = 0.05,
                          checked: list[dict] | None = None) -> list[dict]:
    """The checked rows (:func:`checked_rows`) that refute a rerun, what ``--compare`` fails
    on. With ``m`` checks each at 95%, about ``0.05 m`` would fail by chance alone for an
    unchanged suite, so the family is held to ``level`` together (Bonferroni): a row fails
    when its paired interval (:func:`rerun_shift`) at ``1 - level / m`` excludes 1.
    Each failing row is returned with ``strict_shift``, that interval. ``checked``, if
    given, is :func:`checked_rows` of ``rows`` already computed."""
    if checked is None:
        checked = checked_rows(rows, committed, rerun)
    out = []
    for r in checked:
        if r["consistent"]:  # a 95% interval holding 1: the wider one (same resamples) too
            continue
        iv = rerun_shift(committed[r["task"]], rerun[r["task"]], r["side"], r["quantity"],
                         confidence=1 - level / len(checked))
        if not iv["low"] <= 1.0 <= iv["high"]:
            out.append({**r, "strict_shift": iv})
    return out


def reproduction_summary(committed: dict[str, dict], rerun: dict[str, dict],
                         rows: list[dict] | None = None) -> str:
    """A paragraph on how a rerun compares with the committed results (the Benchmarks
    page's "Does a rerun reproduce these numbers?"): which tasks and machines, how many
    rerun medians of each kind lie inside the committed 95% intervals, which headline
    verdicts change, how many runs reached the threshold at the same step, what was not
    rerun and under what load."""
    repro = reproduction_rows(committed, rerun) if rows is None else rows
    if not repro:
        return "No rerun is committed with this version of the book."
    common = [n for n in rerun if n in committed]
    same = [identical_seeds(committed[n], rerun[n]) for n in common]
    cpus = sorted({committed[n]["config"]["machine"]["cpu_model"] for n in common})
    rerun_cpus = sorted({rerun[n]["config"]["machine"]["cpu_model"] for n in common})
    dates = sorted({rerun[n]["config"]["date"] for n in common})
    kinds = [
        ("ratios of medians companion / peer", [r for r in repro if r["side"] == "ratio"]),
        *[(label, [r for r in repro if r["side"] != "ratio" and r["quantity"] == k])
          for k, label in (("steps", "per-side medians of env steps to solve"),
                           ("seconds", "of seconds to solve"), ("sps", "of env steps per second"))],
    ]
    quantity = {"steps": "env steps", "seconds": "seconds"}
    changed = [r for r in repro if "verdicts" in r and r["verdicts"][0] != r["verdicts"][1]]
    n_verdicts = sum("verdicts" in r for r in repro)
    lines = [
        f"The rerun covers {len(common)} of the {len(committed)} tasks and was made on "
        f"{', '.join(dates)} on {', '.join(rerun_cpus)}, the committed results on "
        f"{', '.join(cpus)}.",
        "Inside the committed 95% intervals: "
        + ", ".join(f"{sum(r['inside'] for r in rows)} of {len(rows)} {label}" for label, rows in kinds)
        + ".",
        f"The verdicts of the headline table are the same in {n_verdicts - len(changed)} of "
        f"{n_verdicts}"
        + ("." if not changed else "; they change for " + "; ".join(
            f"{r['task']} {quantity[r['quantity']]} ({r['verdicts'][0]} in the committed "
            f"results, {r['verdicts'][1]} in the rerun)" for r in changed) + "."),
        f"{sum(a for a, _ in same)} of {sum(b for _, b in same)} runs (seed and side) reached "
        "the threshold at the same env step in both.",
        "\n\nA rerun median can miss the committed interval by chance alone: that interval holds "
        "the committed median's sampling error, not the rerun's; if the two medians scatter "
        "normally and independently with the same standard error, a rerun median of an "
        f"unchanged suite falls outside it with probability {chance_outside():.0%} (less when, "
        "as here, the two runs share their seeds). The paired check allows for both: the 95% "
        "bootstrap interval of rerun median / committed median (seeds resampled, each seed's "
        "rerun paired with its committed run; for a ratio companion / peer, rerun ratio / "
        "committed ratio with all four values of a seed kept together) holds 1 for "
        + ", ".join(f"{sum(r['consistent'] for r in rows)} of {len(rows)} {label}"
                    for label, rows in kinds)
        + ".",
    ]
    checked = checked_rows(repro, committed, rerun)
    missed = [r for r in checked if not r["consistent"]]
    failures = reproduction_failures(repro, committed, rerun, checked=checked)

    def what(r: dict) -> str:
        side = "companion / peer" if r["side"] == "ratio" else r["side"]
        return (f"{r['task']} {side} {quantity.get(r['quantity'], 'env steps per second')} "
                f"(rerun / committed {fmt_ratio_iv(r['shift'], 1.0)})")

    lines.append(
        f"\n\n`--compare` checks {len(checked)} of these (each side's env steps and both ratios "
        "companion / peer"
        + ("; each side's seconds and steps per second only where the CPU is the same)"
           if len(checked) < len(repro) else ", and each side's seconds and steps per second)")
        + f"; at 95% each, up to about {0.05 * len(checked):.1f} of {len(checked)} could fail by chance "
        "alone, so it holds them to 95% together (Bonferroni: each interval at "
        f"{100 * (1 - 0.05 / len(checked)):.1f}%). "
        + ("At 95% each, " + "; ".join(what(r) for r in missed)
           + (" excludes 1" if len(missed) == 1 else " exclude 1") if missed
           else "At 95% each, every checked interval holds 1")
        + (", and at the family's level "
           + ("every checked interval holds 1: the rerun reproduces what was checked."
              if not failures else
              "; ".join(what(r) for r in failures) + " still excludes 1: the rerun does not "
              "reproduce it.") if missed else ": the rerun reproduces what was checked.")
    )
    not_rerun = [n for n in committed if n not in rerun]
    if not_rerun:
        lines.append("Not rerun: " + ", ".join(
            f"{n} (its committed run took {committed[n]['config']['wall_seconds'] / 60:.0f} min)"
            for n in not_rerun) + ".")
    loads = sorted({rerun[n]["config"].get("concurrent_load") for n in common} - {None})
    lines += ["\n\n" + loads[0], *loads[1:]] if loads else []
    if rerun_cpus != cpus:
        lines.append(
            "On another CPU a rerun is partly a new sample: floating-point rounding differs "
            "between instruction sets, so the trajectories of some seeds part after a few "
            "updates while others repeat exactly (the runs counted above), and the medians "
            "move within their sampling error. Seconds and steps per "
            "second also measure the CPU itself, so here they compare machines of different "
            "speed as much as the runs."
        )
    return " ".join(lines).replace(" \n\n", "\n\n")


# ----------------------------------------------------------------------------- curves
def _score_at(evals: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The last evaluation's mean return at or before each grid point (NaN before the first).
    After a run stops (solved, or out of budget) its last score is carried forward."""
    idx = np.searchsorted(evals[:, 0], grid, side="right") - 1
    out = np.where(idx >= 0, evals[np.clip(idx, 0, None), 1], np.nan)
    return out


def curves(res: dict, side: str, grid: np.ndarray, n_resamples: int = 2000, seed: int = 0):
    """Median over seeds of the evaluation score at each grid point and a 95% bootstrap
    interval of that median: ``(median, low, high)``, NaN where some seed has no evaluation
    yet."""
    scores = np.stack([
        _score_at(np.asarray(r[side]["evaluations"], dtype=float).reshape(-1, 3)[:, :2], grid)
        for r in res["per_seed"]
    ])  # (seeds, grid)
    n = scores.shape[0]
    med = np.median(scores, axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    boot = np.median(scores[idx], axis=1)  # (resamples, grid)
    low, high = np.quantile(boot, [0.025, 0.975], axis=0)
    return med, low, high


def fraction_solved(res: dict, side: str, grid: np.ndarray) -> np.ndarray:
    """Fraction of seeds solved within each grid point's env steps."""
    hits = np.array([[r[side]["solved"] and r[side]["steps"] <= g for g in grid] for r in res["per_seed"]])
    return hits.mean(axis=0)


def plot_task(res: dict, ax_curve, ax_solved, n_grid: int = 200) -> None:
    """Learning curves (median, 95% band) and fraction solved, both sides, env steps on x."""
    last = max(
        max(e[0] for e in r[side]["evaluations"]) for r in res["per_seed"] for side in SIDES
        if r[side]["evaluations"]
    )
    grid = np.linspace(0, last, n_grid)
    colours = {"companion": "C0", "peer": "C1"}
    labels = {"companion": "companion", "peer": res["config"]["peer"]}
    for side in SIDES:
        med, low, high = curves(res, side, grid)
        ax_curve.plot(grid, med, color=colours[side], label=labels[side])
        ax_curve.fill_between(grid, low, high, color=colours[side], alpha=0.2, linewidth=0)
        ax_solved.step(grid, fraction_solved(res, side, grid), where="post", color=colours[side],
                       label=labels[side])
    target = res["config"]["target"]
    ax_curve.axhline(target, color="k", linestyle=":", linewidth=1, label=f"threshold {target:g}")
    ax_curve.set_xlabel("env steps")
    ax_curve.set_ylabel("greedy mean return (10 episodes)")
    ax_curve.legend(fontsize="small", loc="lower right")
    ax_solved.set_xlabel("env steps")
    ax_solved.set_ylabel("fraction of seeds solved")
    ax_solved.set_ylim(-0.02, 1.02)
    for ax in (ax_curve, ax_solved):
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        ax.grid(alpha=0.3)


SCALING_LIBRARIES = (
    ("companion", "C0", "companion"),
    ("companion_sync", "C2", "companion, Python env copies"),
    ("peer", "C1", None),  # label: the peer's name from the file
)


def plot_scaling(scaling: dict, axes) -> None:
    """Env steps per second against the number of parallel environments, per environment:
    medians over the repeats, with their range as error bars where repeats were stored."""
    rows = scaling["rows"]
    envs = list(dict.fromkeys(r["env_id"] for r in rows))
    styles = {"rollout_sps": ("--", "rollout"), "update_sps": (":", "update"), "total_sps": ("-", "total")}
    peer = scaling["config"].get("peer", "Stable-Baselines3 PPO")
    for ax, env in zip(axes, envs):
        for lib, colour, label in SCALING_LIBRARIES:
            label = label or peer
            sub = sorted((r for r in rows if r["env_id"] == env and r["library"] == lib),
                         key=lambda r: r["num_envs"])
            if not sub:
                continue
            n = [r["num_envs"] for r in sub]
            for key, (ls, what) in styles.items():
                y = np.array([r[key] for r in sub])
                reps = [r.get(f"{key}_all") for r in sub]
                if all(reps):
                    err = np.array([[yi - min(rp), max(rp) - yi] for yi, rp in zip(y, reps)]).T
                    ax.errorbar(n, y, yerr=err, fmt=ls, color=colour, marker="o", markersize=3,
                                capsize=2, linewidth=1.2, label=f"{label}, {what}")
                else:
                    ax.plot(n, y, ls, color=colour, marker="o", markersize=3, label=f"{label}, {what}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(env)
        ax.set_xlabel("parallel environments")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("env steps per second")
    handles, labels = [], []
    for ax in axes:  # one legend entry per line, from whichever panel has it
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    axes[0].figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize="small")


# ----------------------------------------------------------------------------- README
def render(results: dict[str, dict]) -> str:
    """The README's benchmark block: the headline table and where the numbers come from."""
    if not results:
        return "No committed benchmark results."
    lines = [
        "Ratios companion / peer of the median env steps and of the median wall-clock "
        "seconds to the solved threshold, with 95% two-sample bootstrap intervals; generated by "
        "`benchmarks/report.py` from `benchmarks/results/*.json`:",
        "",
        headline_table(results),
        "",
    ]
    for name, res in results.items():
        lines.append(f"- `{name}`: {provenance(res)}")
    lines += ["", "Not like for like: rows marked \"companion's tuned defaults\" (the companion's "
              "own CartPole defaults against the Zoo's settings) and \"peer with gSDE\" (the Zoo "
              "gives the peer state-dependent exploration, which the companion lacks)."]
    missing = unrun_tasks(results)
    if missing:
        lines += ["", "Planned but without committed results: "
                  + ", ".join(f"`{t.name}` ({t.n_seeds} seeds)" for t in missing) + "."]
    return "\n".join(lines)


def readme_block(text: str) -> str | None:
    m = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, flags=re.S)
    return m.group(1) if m else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument(
        "--compare", metavar="DIR", type=Path,
        help="compare the results in DIR (a rerun, e.g. `make benchmark-rerun`) with the "
        "committed ones; exit status 1 when a paired check fails (reproduction_failures)",
    )
    args = parser.parse_args(argv)
    if args.compare is not None:
        committed, rerun = load_all(), load_all(args.compare)
        rows = reproduction_rows(committed, rerun)
        if not rows:
            print(f"no task has results in both {results_dir()} and {args.compare}", file=sys.stderr)
            return 1
        print(reproduction_table(rows))
        for name in rerun:
            if name in committed:
                same, common = identical_seeds(committed[name], rerun[name])
                print(f"{name}: {same} of {common} runs reached the threshold at the same env step")
        for r in rows:
            if "verdicts" in r and r["verdicts"][0] != r["verdicts"][1]:
                print(f"{r['task']}: the {r['quantity']} verdict changes from "
                      f"{r['verdicts'][0]!r} to {r['verdicts'][1]!r}")
        outside = [r for r in rows if not r["inside"]]
        print(f"{len(rows) - len(outside)} of {len(rows)} rerun medians inside the committed 95% intervals")
        consistent = sum(r["consistent"] for r in rows)
        print(f"{consistent} of {len(rows)} paired intervals of rerun / committed hold 1")
        failures = reproduction_failures(rows, committed, rerun)
        for r in failures:
            print(f"FAILED {r['task']} {r['side']} {r['quantity']}: rerun / committed "
                  f"{fmt_ratio_iv(r['shift'], 1.0)}")
        return 1 if failures else 0
    block = render(load_all())
    if not args.update_readme:
        print(block)
        return 0
    text = README.read_text()
    if readme_block(text) is None:
        print(f"README.md has no {START} ... {END} block", file=sys.stderr)
        return 1
    README.write_text(
        re.sub(re.escape(START) + r"\n.*?\n?" + re.escape(END), lambda _: f"{START}\n{block}\n{END}",
               text, flags=re.S)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
