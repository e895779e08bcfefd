"""Tests of the notebook generator and of the student copies it writes."""

from pathlib import Path

import jupytext
import nbformat
import pytest

from companion import notebooks as nbgen

BOOK = Path(__file__).resolve().parents[1] / "book"


def test_stub_source_replaces_marked_region_keeping_indentation():
    src = "def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n\ny = 1"
    out = nbgen.stub_source(src)
    assert "return 2 * x" not in out and "BEGIN SOLUTION" not in out
    assert out.splitlines()[1] == "    " + nbgen.STUB
    assert out.splitlines()[0] == "def f(x):" and out.endswith("y = 1")


def test_stub_source_without_markers_replaces_whole_cell():
    assert "secret" not in nbgen.stub_source("x = 'secret'")


@pytest.mark.parametrize(
    "src, message",
    [
        ("# BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n# END SOLUTION", "without"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "nested"),
    ],
)
def test_stub_source_refuses_malformed_markers(src, message):
    with pytest.raises(ValueError, match=message):
        nbgen.stub_source(src)


def test_strip_solution_markup():
    md = "Intro\n\n```{solution} ex-a\n:class: dropdown\nThe answer is 42.\n```\n\nAfter\n````{solution-start} ex-b\n````"
    out, gated = nbgen.strip_solution_markup(md)
    assert "42" not in out and "solution" not in out
    assert out.startswith("Intro") and "After" in out and gated
    # prose inside a gated solution, in a later cell, is dropped until the end marker
    out2, gated2 = nbgen.strip_solution_markup("Hint: use P @ V.\n```{solution-end}\n```\nNext section", gated)
    assert "Hint" not in out2 and out2 == "Next section" and not gated2
    with pytest.raises(ValueError, match="never closed"):
        nbgen.strip_solution_markup("```{solution} ex\nopen")


def test_every_chapter_solution_cell_is_stubbed(tmp_path):
    written, _ = nbgen.convert("student", BOOK, tmp_path)
    assert written, "no chapter was converted"
    for path in written:
        nb = nbformat.read(path, as_version=4)
        full = jupytext.read(BOOK / f"{path.stem}.md")
        n_solutions = sum("solution" in c.metadata.get("tags", []) for c in full.cells)
        stubs = [c for c in nb.cells if c.cell_type == "code" and nbgen.STUB in c.source]
        assert len(stubs) == n_solutions
        text = "\n".join(c.source for c in nb.cells)
        assert "BEGIN SOLUTION" not in text and "{solution" not in text
        assert "Build $P_\\pi$ and $r_\\pi$" not in text          # prose of a gated solution (Chapter 1)


@pytest.mark.slow
def test_student_copy_fails_its_checkers_until_filled(tmp_path):
    """Execute the Chapter 1 student notebook: every checker cell must fail on its stub."""
    from nbclient import NotebookClient

    (path,) = [p for p in nbgen.convert("student", BOOK, tmp_path)[0] if p.stem == "01_foundations"]
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    from companion import exercises

    checkers = [name for name in exercises.__all__ if name.startswith("check_")]
    checker_cells = [
        c for c in nb.cells
        if c.cell_type == "code" and "import" not in c.source and any(f"{n}(" in c.source for n in checkers)
    ]
    assert len(checker_cells) >= 3
    for cell in checker_cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "ExerciseFailure", cell.source
        assert "not implemented yet" in errors[0].evalue


def test_make_exercises_never_overwrites_a_readers_work(tmp_path):
    written, kept = nbgen.convert("student", BOOK, tmp_path)
    assert written and not kept
    solved = written[0]
    nb = nbformat.read(solved, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and nbgen.STUB in c.source)
    code.source = code.source.replace(nbgen.STUB, "x = 'my answer'")
    nbformat.write(nb, solved)
    untouched = written[1]
    untouched.unlink()  # a deleted notebook is written again
    written2, kept2 = nbgen.convert("student", BOOK, tmp_path)
    assert kept2 == [solved]
    assert "my answer" in solved.read_text()
    assert untouched in written2 and untouched.exists()
    assert solved not in written2


def test_convert_refuses_a_missing_source_folder(tmp_path):
    with pytest.raises(ValueError, match="src"):
        nbgen.convert("full", tmp_path / "missing", tmp_path / "out")


HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

```{code-cell} ipython3
%s
```
"""


@pytest.mark.parametrize(
    "code, problem",
    [
        ("x = 1", None),
        ("x=1", "not formatted"),
        ("y = '" + "a" * 100 + "'", "characters"),
    ],
)
def test_format_check_reports_long_and_unformatted_cells(tmp_path, code, problem):
    (tmp_path / "page.md").write_text(HEADER % code)
    problems = nbgen.format_problems(tmp_path)
    if problem is None:
        assert problems == []
    else:
        assert problems and problem in problems[0] and "page.md" in problems[0]


def test_solution_markers_are_hidden_on_the_page():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "book_extras", Path(__file__).resolve().parents[1] / "_ext" / "book_extras.py")
    extras = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extras)
    code = "def f(x):\n    # BEGIN SOLUTION\n    return 2 * x\n    # END SOLUTION\n"
    shown = extras.strip_solution_markers(code)
    assert "SOLUTION" not in shown and "return 2 * x" in shown


def test_repository_url_from_git_remotes():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "book_extras", Path(__file__).resolve().parents[1] / "_ext" / "book_extras.py")
    extras = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extras)
    assert extras.github_url("git@github.com:o/r.git\n") == "https://github.com/o/r"
    assert extras.github_url("https://github.com/o/r.git") == "https://github.com/o/r"
    assert extras.github_url("https://token@github.com/o/r") == "https://github.com/o/r"
    assert extras.github_url("") == ""
