"""The GitHub Actions workflow cannot run here: validate it against the workflow schema
(check-jsonschema's vendored copy, no network) and check it runs what CI runs."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True,
    )


def test_workflow_is_valid():
    result = validate(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("break_it", [
    lambda w: w["jobs"]["build"].pop("runs-on"),
    lambda w: w["jobs"]["build"]["steps"].append({"name": "both", "uses": "a/b@v1", "run": "x"}),
    lambda w: w.update({"on": {"push": {"branch": ["main"]}}}),
])
def test_the_schema_check_rejects_a_broken_workflow(tmp_path, break_it):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on` as True
    break_it(workflow)
    broken = tmp_path / "book.yml"
    broken.write_text(yaml.safe_dump(workflow, sort_keys=False))
    assert validate(broken).returncode != 0


def test_workflow_runs_what_ci_runs_and_publishes_the_book():
    text = WORKFLOW.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for target in ("make test", "make pdf", "make book", "make browser-test"):
        assert target in ci and target in text
    assert "actions/deploy-pages" in text and "_build/html" in text
    assert "_build/.jupyter_cache" in text  # unchanged chapters are not executed again


def test_an_unbroken_round_trip_stays_valid(tmp_path):
    # so that the failures above come from the breakage, not from re-writing the YAML
    workflow = yaml.safe_load(WORKFLOW.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    copy = tmp_path / "book.yml"
    copy.write_text(yaml.safe_dump(workflow, sort_keys=False))
    assert validate(copy).returncode == 0
