"""Turn the book's MyST Markdown chapters into plain ``.ipynb`` notebooks.

Two kinds of copy are written, both generated (git-ignored), never edited by hand:

* ``full``: every chapter as a notebook, for nbval and for readers who prefer a plain
  notebook file (``make test`` writes them to ``notebooks/``);
* ``student``: the exercise copy (``make exercises`` writes it to ``exercises/``).
  In every code cell tagged ``solution`` the lines between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION`` are replaced by ``raise NotImplementedError(...)`` at the same
  indentation (a tagged cell without markers is replaced whole); the worked solutions
  written in prose (``{solution}`` blocks, and everything between the
  ``{solution-start}``/``{solution-end}`` markers except the stubbed code) are removed. The checker cells stay, so each stub
  fails its checker until the reader fills it in.

Usage::

    python -m companion.notebooks full book notebooks
    python -m companion.notebooks student book exercises
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


def convert(kind: str, src: Path, dst: Path) -> list[Path]:
    """Write ``kind`` ("full" or "student") notebooks for every ``src/*.md`` chapter into ``dst``."""
    if kind not in ("full", "student"):
        raise ValueError(f"kind must be 'full' or 'student', got {kind!r}")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for md in sorted(src.glob("*.md")):
        nb = jupytext.read(md)
        if not any(c.cell_type == "code" for c in nb.cells):
            continue  # a prose page (intro, references), not a chapter notebook
        if kind == "student":
            nb = to_student(nb)
        path = dst / f"{md.stem}.ipynb"
        nbformat.write(nb, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["full", "student"])
    parser.add_argument("src", type=Path, help="folder of MyST Markdown chapters")
    parser.add_argument("dst", type=Path, help="folder to write .ipynb files into")
    args = parser.parse_args(argv)
    for path in convert(args.kind, args.src, args.dst):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
