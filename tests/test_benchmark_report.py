"""The README's benchmark numbers are the committed results file's, not typed."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


@pytest.mark.skipif(not report.RESULTS.exists(), reason="no committed benchmark results")
def test_readme_block_matches_the_committed_results():
    results = json.loads(report.RESULTS.read_text())
    assert not results["config"].get("quick"), "the committed results must be a full run"
    block = report.readme_block(report.README.read_text())
    assert block is not None, "README.md lost its benchmark block"
    assert block == report.render(results), "run: python benchmarks/report.py --update-readme"


def test_render_changes_with_the_numbers():
    if not report.RESULTS.exists():
        pytest.skip("no committed benchmark results")
    results = json.loads(report.RESULTS.read_text())
    before = report.render(results)
    results["summary"]["companion"]["steps"]["median"] += 1000
    assert report.render(results) != before
