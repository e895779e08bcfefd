"""Check the PDF book (``make pdf`` runs it): what a reader would notice in print.

Usage::

    python tests/check_pdf.py _build/latex

Fails when the PDF is missing, has a page count outside a sane range, lacks a chapter's
title or the bibliography, contains ``??`` (a broken reference), or when LaTeX reports a
line of code wider than the text (an overfull box set in the monospaced font: code that
would be cut at the right margin).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
PAGES = (60, 600)
OVERFULL = re.compile(r"^Overfull \\hbox \(([\d.]+)pt too wide\)[^\n]*\n(.*?)\n\n", re.M | re.S)


def chapter_titles() -> list[str]:
    titles = []
    for md in sorted((ROOT / "book").glob("[0-9][0-9]_*.md")):
        nb = jupytext.read(md)
        for cell in nb.cells:
            m = re.search(r"^# (.+)$", cell.source, flags=re.M)
            if cell.cell_type == "markdown" and m:
                titles.append(m.group(1).strip())
                break
    return titles


def problems(latex_dir: Path) -> list[str]:
    pdf, log = latex_dir / "book.pdf", latex_dir / "book.log"
    if not pdf.exists():
        return [f"{pdf} is missing"]
    out = []
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, flags=re.M).group(1))
    if not PAGES[0] <= pages <= PAGES[1]:
        out.append(f"{pages} pages, expected between {PAGES[0]} and {PAGES[1]}")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = re.sub(r"\s+", " ", text)
    for title in chapter_titles():
        if re.sub(r"\s+", " ", title) not in flat:
            out.append(f"chapter title missing: {title!r}")
    if "References" not in flat or "Kakade" not in flat:
        out.append("the bibliography is missing")
    if "??" in text:
        n = text.count("??")
        context = text[max(0, text.index("??") - 60): text.index("??") + 20].replace("\n", " ")
        out.append(f"{n} broken reference(s) '??', first: ...{context}...")
    if log.exists():
        for width, box in OVERFULL.findall(log.read_text(errors="replace")):
            if "Mono" in box and float(width) > 1.0:
                out.append(f"a line of code {width}pt wider than the text: {box.strip()[:80]}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    latex_dir = Path(argv[0]) if argv else ROOT / "_build" / "latex"
    found = problems(latex_dir)
    for problem in found:
        print(f"PDF: {problem}")
    print(f"PDF check: {len(found)} problem(s) in {latex_dir / 'book.pdf'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
