"""Turn the book's MyST Markdown chapters into plain ``.ipynb`` notebooks.

Two kinds of copy are written, both generated (git-ignored), never edited by hand:

* ``full``: every chapter as a notebook, for nbval and for readers who prefer a plain
  notebook file (``make test`` writes them to ``notebooks/``);
* ``student``: the exercise copy (``make exercises`` writes it to ``exercises/``; a
  notebook there that differs from a fresh copy is the reader's work and is kept).
  In every code cell tagged ``solution`` the lines between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION`` are replaced by ``raise NotImplementedError(...)`` at the same
  indentation (a tagged cell without markers is replaced whole); the worked solutions
  written in prose (``{solution}`` blocks, and everything between the
  ``{solution-start}``/``{solution-end}`` markers except the stubbed code) are removed. The checker cells stay, so each stub
  fails its checker until the reader fills it in.

Usage::

    python -m companion.notebooks full book notebooks
    python -m companion.notebooks student book exercises
    python -m companion.notebooks check-format book   # code cells formatted, <= 88 columns
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

__all__ = ["to_student", "strip_solution_markup", "stub_source", "convert"]

SOLUTION_TAG = "solution"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: write your code here, then run the checker below.")'
_SOLUTION_DIRECTIVE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{(?P<kind>solution|solution-start|solution-end)\}")


def stub_source(source: str) -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region by a stub.

    Raises ``ValueError`` on an unterminated or nested region.
    """
    lines = source.splitlines()
    if not any(line.strip() in (BEGIN, END) for line in lines):
        return f"# YOUR CODE HERE\n{STUB}"
    out: list[str] = []
    inside = False
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested '{BEGIN}' at line {n}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}")
        elif stripped == END:
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}' at line {n}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def strip_solution_markup(markdown: str, inside_gated: bool = False) -> tuple[str, bool]:
    """Remove worked solutions from a markdown cell.

    Drops ``{solution}`` blocks, the ``{solution-start}``/``{solution-end}`` markers, and
    every line between such markers (the prose of a gated solution; the gate can span
    several cells, so its state is passed in and returned). Returns
    ``(text, inside_gated)``.
    """
    out: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        if fence is not None:                      # inside a directive's own fenced block
            if line.strip() == fence:
                fence = None
            continue
        m = _SOLUTION_DIRECTIVE.match(line)
        if m:
            fence = m.group("fence")
            if m.group("kind") == "solution-start":
                inside_gated = True
            elif m.group("kind") == "solution-end":
                inside_gated = False
            continue
        if not inside_gated:
            out.append(line)
    if fence is not None:
        raise ValueError(f"a solution block opened with {fence} is never closed")
    return "\n".join(out).strip("\n"), inside_gated


def to_student(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the student copy of a chapter notebook (see the module docstring)."""
    cells = []
    inside_gated = False
    for cell in nb.cells:
        cell = nbformat.from_dict(dict(cell))
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            cell.source = stub_source(cell.source)
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source, inside_gated = strip_solution_markup(cell.source, inside_gated)
            if not cell.source.strip():
                continue
        cells.append(cell)
    student = nbformat.from_dict(dict(nb))
    student.cells = cells
    return student


def _same_notebook(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> bool:
    """True when two notebooks have the same cells (type, source, outputs): untouched."""
    def key(nb: nbformat.NotebookNode) -> list[tuple[str, str, int]]:
        return [(c.cell_type, c.source, len(c.get("outputs", []))) for c in nb.cells]

    return key(a) == key(b)


def convert(kind: str, src: Path, dst: Path) -> tuple[list[Path], list[Path]]:
    """Write ``kind`` ("full" or "student") notebooks for every ``src/*.md`` chapter into ``dst``.

    Returns ``(written, kept)``. A student notebook that already exists and differs from
    the one that would be generated holds the reader's work: it is never overwritten, and
    is listed in ``kept``. Full copies are always rewritten (they are never edited).
    """
    if kind not in ("full", "student"):
        raise ValueError(f"kind must be 'full' or 'student', got {kind!r}")
    if not src.is_dir():
        raise ValueError(f"src must be a folder of MyST Markdown chapters, got {src}")
    dst.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for md in sorted(src.glob("*.md")):
        nb = jupytext.read(md)
        if not any(c.cell_type == "code" for c in nb.cells):
            continue  # a prose page (intro, references), not a chapter notebook
        if kind == "student" and not md.stem[:2].isdigit():
            continue  # back matter (the Benchmarks page) has no exercises
        if kind == "student":
            nb = to_student(nb)
        path = dst / f"{md.stem}.ipynb"
        if kind == "student" and path.exists():
            try:
                existing = nbformat.read(path, as_version=4)
            except Exception:  # unreadable: still the reader's file, keep it
                existing = None
            if existing is None or not _same_notebook(existing, nb):
                kept.append(path)
                continue
        nbformat.write(nb, path)
        written.append(path)
    return written, kept


MAX_LINE = 88


def format_problems(src: Path, ruff: str | None = None) -> list[str]:
    """Code cells of the chapters in ``src`` that a reader would see cut or misformatted.

    A cell is reported when one of its lines is longer than ``MAX_LINE`` characters (it
    scrolls sideways on the page and is cut in print) or when ``ruff format`` would change
    it. Returns one message per problem, naming the chapter and the cell's first line.
    """
    import shutil
    import subprocess

    ruff = ruff or shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    problems = []
    for md in sorted(src.glob("*.md")):
        nb = jupytext.read(md)
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
            where = f"{md.name}, code cell {i + 1} ({cell.source.splitlines()[0][:40]!r})" if cell.source else md.name
            for n, line in enumerate(cell.source.splitlines(), 1):
                if len(line) > MAX_LINE:
                    problems.append(f"{where}: line {n} has {len(line)} characters (at most {MAX_LINE})")
            result = subprocess.run(
                [ruff, "format", "--check", "--line-length", str(MAX_LINE), "--stdin-filename", "cell.py", "-"],
                input=cell.source + "\n", capture_output=True, text=True,
            )
            if result.returncode != 0:
                problems.append(f"{where}: not formatted (run `make format`)")
    return problems


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["check-format"]:
        problems = format_problems(Path(argv[1]) if len(argv) > 1 else Path("book"))
        for problem in problems:
            print(problem)
        print(f"code-cell format: {len(problems)} problem(s)")
        return 1 if problems else 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["full", "student"])
    parser.add_argument("src", type=Path, help="folder of MyST Markdown chapters")
    parser.add_argument("dst", type=Path, help="folder to write .ipynb files into")
    args = parser.parse_args(argv)
    written, kept = convert(args.kind, args.src, args.dst)
    for path in written:
        print(f"wrote {path}")
    for path in kept:
        print(f"kept  {path}: it differs from a fresh copy (your work); "
              "rename or delete it to get a fresh one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
