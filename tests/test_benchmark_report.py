"""The benchmark numbers quoted in the README and on the book's Benchmarks page are the
committed results files', and those files are internally consistent.

The page's rendered tables are compared with the files by the browser test
(``tests/browser/check_book.py``) after the book is built; here the files themselves and
the README are checked, and each check is shown to reject a tampered file.
"""

import copy
import json

import numpy as np
import pytest

from benchmarks import report
from benchmarks.tasks import TASKS

RESULTS = report.load_all()
CONFIG_KEYS = {
    "task", "algo", "env_id", "peer", "seeds", "n_seeds", "quick", "budget", "target",
    "n_eval_episodes", "zoo_hyperparams", "companion_config", "tuning", "differences", "date",
    "wall_seconds", "machine", "versions",
}
needs_results = pytest.mark.skipif(not RESULTS, reason="no committed benchmark results")


def consistency_problems(res: dict) -> list[str]:
    """What is wrong with one task's results file (empty when nothing is)."""
    problems = []
    cfg = res["config"]
    t = next((t for t in TASKS if t.name == cfg.get("task")), None)
    if t is None:
        return [f"unknown task {cfg.get('task')!r}"]
    missing = CONFIG_KEYS - set(cfg)
    if missing:
        problems.append(f"config lacks {sorted(missing)}")
    if cfg.get("quick"):
        problems.append("a quick smoke run is not a result")
    if cfg.get("complete") is not True:
        problems.append("only a run marked complete: true is a result")
    if cfg.get("planned_seeds") != t.n_seeds or cfg["seeds"] != t.seeds:
        problems.append(f"the seeds run are not the task's planned seeds {t.seeds[0]}-{t.seeds[-1]}")
    if (cfg["algo"], cfg["env_id"], cfg["target"]) != (t.algo, t.env_id, t.target):
        problems.append("config disagrees with the task registry")
    if [r["seed"] for r in res["per_seed"]] != cfg["seeds"] or len(cfg["seeds"]) != cfg["n_seeds"]:
        problems.append("per-seed rows do not match the configured seeds")
    if min(cfg["seeds"]) < 100:
        problems.append("benchmark seeds must start at 100 (below is for tuning)")
    for r in res["per_seed"]:
        for side in report.SIDES:
            x = r[side]
            ev = np.asarray(x["evaluations"], dtype=float).reshape(-1, 3)
            where = f"seed {r['seed']} {side}"
            if ev.size == 0:
                problems.append(f"{where}: no evaluation")
                continue
            if np.any(np.diff(ev[:, 0]) <= 0):
                problems.append(f"{where}: evaluation steps not increasing")
            reached = ev[:, 1] >= cfg["target"]
            cap = cfg.get(f"budget_{side}", {})
            cap = cap.get("env_step_slots", cap.get("env_steps")) if isinstance(cap, dict) else None
            if x["steps"] > (cap if cap else cfg["budget"] * 1.05):
                problems.append(f"{where}: more steps than the budget")
            if x["solved"]:
                first = int(np.argmax(reached)) if reached.any() else None
                if first is None or ev[first, 0] != x["steps"]:
                    problems.append(f"{where}: solved, but not at the first evaluation >= target")
                elif not np.isclose(ev[first, 2], x["seconds"]):
                    problems.append(f"{where}: seconds differ from the solving evaluation's")
            else:
                if reached.any():
                    problems.append(f"{where}: an evaluation reached the target, marked unsolved")
                if x["steps"] < ev[-1, 0]:
                    problems.append(f"{where}: unsolved run counted before its last evaluation")
                if x["seconds"] < ev[-1, 2] - 1e-9:
                    problems.append(f"{where}: unsolved run's seconds below its last evaluation's")
    problems += [f"stored {w} differs from the per-seed rows" for w in report.summary_mismatches(res)]
    return problems


@needs_results
@pytest.mark.parametrize("name", list(RESULTS))
def test_committed_results_are_consistent(name):
    assert consistency_problems(RESULTS[name]) == []


@needs_results
def test_consistency_check_rejects_tampered_files():
    name, res = next(iter(RESULTS.items()))
    bad = copy.deepcopy(res)
    bad["summary"]["companion"]["steps"]["median"] *= 0.9  # a flattering typo
    assert any("summary.companion.steps.median" in p for p in consistency_problems(bad))
    bad = copy.deepcopy(res)
    bad["ratio"]["seconds"]["high"] = 0.49  # an interval narrowed to meet the goal
    assert any("ratio.seconds.high" in p for p in consistency_problems(bad))
    bad = copy.deepcopy(res)
    row = bad["per_seed"][0]["companion"]
    row["steps"] = row["evaluations"][0][0] - 1  # solved before the first evaluation
    row["solved"] = True
    assert any("first evaluation" in p for p in consistency_problems(bad))
    bad = copy.deepcopy(res)
    bad["config"]["quick"] = True
    assert any("quick" in p for p in consistency_problems(bad))
    bad = copy.deepcopy(res)
    bad["config"]["seeds"] = [s - 100 for s in bad["config"]["seeds"]]
    assert consistency_problems(bad)
    # the best seeds kept, the rest dropped, the summary recomputed to match
    bad = copy.deepcopy(res)
    keep = sorted(bad["per_seed"], key=lambda r: r["companion"]["steps"])[:5]
    bad["per_seed"] = sorted(keep, key=lambda r: r["seed"])
    bad["config"]["seeds"] = [r["seed"] for r in bad["per_seed"]]
    bad["config"]["n_seeds"] = 5
    del bad["config"]["planned_seeds"], bad["config"]["complete"]
    bad["summary"], bad["ratio"] = report.summarise(bad["per_seed"])
    assert any("planned seeds" in p for p in consistency_problems(bad))
    assert any("complete" in p for p in consistency_problems(bad))
    # a solved run far beyond the budget
    bad = copy.deepcopy(res)
    row = bad["per_seed"][0]["peer"]
    first = next(e for e in row["evaluations"] if e[1] >= bad["config"]["target"])
    row["evaluations"] = [e for e in row["evaluations"] if e[0] < first[0]]
    row["evaluations"].append([bad["config"]["budget"] * 20, first[1], first[2]])
    row["steps"] = bad["config"]["budget"] * 20
    assert any("budget" in p for p in consistency_problems(bad))
    # an unsolved run whose seconds are below its last evaluation's
    bad = copy.deepcopy(res)
    row = bad["per_seed"][0]["companion"]
    row["solved"] = False
    row["evaluations"] = [[e[0], -1e9, e[2]] for e in row["evaluations"]]
    row["steps"] = row["evaluations"][-1][0]
    row["seconds"] = 0.01
    assert any("seconds below" in p for p in consistency_problems(bad))


@needs_results
def test_readme_block_matches_the_committed_results():
    block = report.readme_block(report.README.read_text())
    assert block is not None, "README.md lost its benchmark block"
    assert block == report.render(RESULTS), "run: python benchmarks/report.py --update-readme"


@needs_results
def test_tables_follow_the_numbers():
    name, res = next(iter(RESULTS.items()))
    before = (report.render(RESULTS), report.task_table(res), report.per_seed_table(res))
    bad = copy.deepcopy(res)
    bad["ratio"]["steps"]["median"] += 0.5
    bad["summary"]["peer"]["seconds"]["low"] += 1.0
    bad["per_seed"][0]["peer"]["steps"] += 1000
    after = (report.render({**RESULTS, name: bad}), report.task_table(bad), report.per_seed_table(bad))
    assert all(a != b for a, b in zip(before, after))


@pytest.mark.parametrize(
    "low, high, goal, expected",
    [(0.2, 0.4, 0.5, "met"), (0.6, 0.9, 0.5, "not met"), (0.3, 0.7, 0.5, "not resolved"),
     (0.5, 0.6, 0.5, "not resolved"), (0.4, 0.5, 0.5, "not resolved")],
)
def test_verdict_reads_the_whole_interval(low, high, goal, expected):
    assert report.verdict(dict(median=(low + high) / 2, low=low, high=high), goal) == expected


def test_curves_carry_the_last_score_forward_and_bound_the_median():
    res = {"per_seed": [
        {"companion": {"evaluations": [[100, 1.0, 0.1], [200, 5.0, 0.2]]}},
        {"companion": {"evaluations": [[100, 2.0, 0.1], [300, 3.0, 0.3]]}},
        {"companion": {"evaluations": [[100, 0.0, 0.1], [200, 4.0, 0.2], [400, 9.0, 0.4]]}},
    ]}
    grid = np.array([50, 100, 250, 500])
    med, low, high = report.curves(res, "companion", grid)
    assert np.isnan(med[0])  # before any evaluation
    np.testing.assert_allclose(med[1:], [1.0, 4.0, 5.0])  # 500: (5, 3, 9) carried forward
    assert np.all(low[1:] <= med[1:]) and np.all(med[1:] <= high[1:])


def test_results_files_are_json_with_the_registry_names():
    for path in report.results_dir().glob("*.json"):
        data = json.loads(path.read_text())
        if path.name != "scaling.json":
            assert data["config"]["task"] == path.stem


def test_a_bound_just_below_the_goal_is_not_shown_as_the_goal():
    iv = dict(median=0.35, low=0.17, high=0.998)
    assert report.verdict(iv, 1.0) == "met"
    assert "0.998" in report.fmt_ratio_iv(iv, 1.0)
    assert report.fmt_ratio_iv(dict(median=0.35, low=0.17, high=0.9), 1.0) == "0.35 [0.17, 0.90]"


RERUN_DIR = report.results_dir() / "rerun"
RERUN = report.load_all(RERUN_DIR)


@pytest.mark.parametrize("name", sorted(RERUN))
def test_rerun_results_are_consistent(name):
    # a rerun (make benchmark-rerun) is held to the same standard as the committed results
    assert consistency_problems(RERUN[name]) == []


def _scaled(res: dict, side: str, factor: float) -> dict:
    """``res`` with one side's steps (and evaluation steps) multiplied by ``factor``."""
    bad = copy.deepcopy(res)
    for r in bad["per_seed"]:
        r[side]["steps"] *= factor
        r[side]["evaluations"] = [[e[0] * factor, e[1], e[2]] for e in r[side]["evaluations"]]
    bad["summary"], bad["ratio"] = report.summarise(bad["per_seed"])
    return bad


@needs_results
def test_reproduction_accepts_the_same_results_and_rejects_a_shifted_rerun(tmp_path):
    name, res = "ppo_cartpole", RESULTS["ppo_cartpole"]
    rows = report.reproduction_rows({name: res}, {name: copy.deepcopy(res)})
    # 3 quantities per side and 2 ratios
    assert len(rows) == 8 and all(r["inside"] and r["overlap"] for r in rows)
    assert report.identical_seeds(res, res) == (2 * len(res["per_seed"]),) * 2
    # a companion that needs 3x the steps: its steps median and the steps ratio leave
    # their committed intervals, the peer's rows do not move
    bad = _scaled(res, "companion", 3.0)
    rows = {(r["side"], r["quantity"]): r for r in report.reproduction_rows({name: res}, {name: bad})}
    assert not rows["companion", "steps"]["inside"] and not rows["ratio", "steps"]["inside"]
    assert rows["peer", "steps"]["inside"] and rows["peer", "seconds"]["inside"]
    # the paired check sees the shift too: rerun / committed exactly 3 for the companion's
    # steps and for the steps ratio (every seed's run took 3x the steps), 1 for the peer
    for key in [("companion", "steps"), ("ratio", "steps")]:
        assert not rows[key]["consistent"]
        assert rows[key]["shift"]["median"] == pytest.approx(3.0)
    assert rows["peer", "steps"]["consistent"] and rows["peer", "steps"]["shift"]["median"] == 1.0
    failures = report.reproduction_failures(list(rows.values()), {name: res}, {name: bad})
    assert [(r["side"], r["quantity"]) for r in failures] == [("companion", "steps"), ("ratio", "steps")]
    assert all(r["strict_shift"]["low"] > 1.0 for r in failures)  # at 1 - 0.05 / 8 too
    committed_verdict = report.verdict(res["ratio"]["steps"], report.GOALS["steps"])
    assert rows["ratio", "steps"]["verdicts"] == (committed_verdict, "not met")
    assert report.identical_seeds(res, bad) == (len(res["per_seed"]), 2 * len(res["per_seed"]))
    # the command line: exit status 0 for a faithful rerun, 1 for the shifted one
    (tmp_path / "same").mkdir()
    (tmp_path / "same" / f"{name}.json").write_text(json.dumps(res))
    assert report.main(["--compare", str(tmp_path / "same")]) == 0
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / f"{name}.json").write_text(json.dumps(bad))
    assert report.main(["--compare", str(tmp_path / "bad")]) == 1
    assert report.main(["--compare", str(tmp_path / "empty")]) == 1  # nothing to compare
    text = report.reproduction_summary({name: res}, {name: copy.deepcopy(res)})
    assert "Inside the committed 95% intervals: 2 of 2 ratios" in text
    assert "same in 2 of 2." in text and "Not rerun" not in text
    # same CPU: all 8 rows are checked, at 1 - 0.05 / 8 each
    assert "`--compare` checks 8 of these" in text and "each interval at 99.4%" in text
    assert "every checked interval holds 1: the rerun reproduces what was checked." in text
    text = report.reproduction_summary({name: res}, {name: bad})
    assert "the rerun does not reproduce it." in text
    two = {name: res, "trpo_cartpole": RESULTS["trpo_cartpole"]}
    text = report.reproduction_summary(two, {name: bad})
    assert "covers 1 of the 2 tasks" in text and "1 of 2 ratios" in text
    assert "Not rerun: trpo_cartpole" in text
    assert report.reproduction_summary({name: res}, {}).startswith("No rerun")
    table = report.reproduction_table(report.reproduction_rows({name: res}, {name: bad}))
    assert table.count("\n") == 2 + 8 - 1 and "| no" in table


def test_chance_outside_matches_a_simulation():
    # two medians with the same normal sampling error: how often does the second fall
    # outside the first's 95% interval?
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(2, 200_000))
    simulated = np.mean(np.abs(m2 - m1) > 1.959964)
    assert report.chance_outside() == pytest.approx(simulated, abs=0.005)
    assert 0.16 < report.chance_outside() < 0.17


def test_paired_ratio_interval_resamples_seeds_together():
    rng = np.random.default_rng(1)
    c, p = rng.lognormal(10, 0.3, 12), rng.lognormal(10.5, 0.3, 12)
    same = report._paired_ratio_interval([c, c], lambda r, k: r / k)
    assert same == {"median": 1.0, "low": 1.0, "high": 1.0}  # a rerun that repeats every run
    tripled = report._paired_ratio_interval([3 * c, p, c, p], lambda cr, pr, cc, pc: (cr / pr) / (cc / pc))
    assert tripled["median"] == pytest.approx(3.0) and tripled["low"] == pytest.approx(3.0)
    # unpaired, the same data would give a wide interval: resampling seeds apart
    # breaks the pairs and mixes runs of different seeds
    other = rng.permutation(c)
    loose = report._paired_ratio_interval([other, c], lambda r, k: r / k)
    assert loose["low"] < 1.0 < loose["high"] and loose["high"] - loose["low"] > 0.1


@needs_results
def test_compare_holds_the_family_to_95_percent(monkeypatch):
    name, res = "ppo_cartpole", RESULTS["ppo_cartpole"]
    rows = report.reproduction_rows({name: res}, {name: copy.deepcopy(res)})
    rows[0] = {**rows[0], "consistent": False}  # its 95% interval excluded 1
    asked = []

    def shift(committed, rerun, side, k, confidence=0.95):
        asked.append(confidence)
        return {"median": 1.2, "low": 1.1 if confidence == 0.95 else 0.9, "high": 1.5}

    monkeypatch.setattr(report, "rerun_shift", shift)
    # same CPU: 8 rows checked, the failing one again at 1 - 0.05 / 8, where it holds 1
    assert report.reproduction_failures(rows, {name: res}, {name: res}) == []
    assert asked == [pytest.approx(1 - 0.05 / 8)]
    monkeypatch.setattr(report, "rerun_shift", lambda *a, **k: {"median": 1.2, "low": 1.1, "high": 1.5})
    assert len(report.reproduction_failures(rows, {name: res}, {name: res})) == 1


@needs_results
def test_compare_leaves_out_seconds_on_another_cpu():
    name, res = "ppo_cartpole", RESULTS["ppo_cartpole"]
    other = copy.deepcopy(res)
    other["config"]["machine"]["cpu_model"] = "Some other CPU"
    rows = report.reproduction_rows({name: res}, {name: other})
    checked = report.checked_rows(rows, {name: res}, {name: other})
    assert {(r["side"], r["quantity"]) for r in checked} == {
        ("companion", "steps"), ("peer", "steps"), ("ratio", "steps"), ("ratio", "seconds")}
    text = report.reproduction_summary({name: res}, {name: other}, rows=rows)
    assert "`--compare` checks 4 of these" in text and "only where the CPU is the same" in text
    assert "On another CPU a rerun is partly a new sample" in text


@needs_results
def test_identical_seeds_counts_only_the_seeds_both_runs_have():
    res = RESULTS["ppo_cartpole"]
    part = copy.deepcopy(res)
    part["per_seed"] = part["per_seed"][1:]  # a rerun missing the first seed
    part["per_seed"][0]["companion"]["steps"] += 1  # and one run that moved
    n = len(part["per_seed"])
    assert report.identical_seeds(res, part) == (2 * n - 1, 2 * n)
    assert report.identical_seeds(part, res) == (2 * n - 1, 2 * n)
    arrays = report._paired_seeds(res, part, ("companion",), "steps")
    assert arrays[0].size == arrays[1].size == n and arrays[0][0] == arrays[1][0] + 1
