"""Drive the built HTML book in headless Chromium and fail on what a reader would trip over.

Usage (``make browser-test`` after ``make book``)::

    python tests/browser/check_book.py _build/html [--screenshots _build/screenshots]

What it does:

* copies the built book to a temporary folder and, in that copy only, replaces MathJax 3
  from its CDN by the same MathJax 3 from the npm registry (``npm pack mathjax@3``), served
  locally, so the maths renders without network; readers get the CDN;
* serves the copy on 127.0.0.1 and opens every page in Debian's ``chromium`` through
  Playwright, blocking every request that leaves this machine;
* fails on: leftover raw TeX or MathJax errors; images that fail to load; a widget whose
  figure exists only in widget state; code cells or display equations wider than their
  column at 1,400 pixels; console errors or local 404s; progress bars in outputs; a
  chapter page without its ``.ipynb`` download; solution markers shown on a page; a figure
  without a numbered caption or alt text; on the Benchmarks page, a table row that differs
  from what ``benchmarks/report.py`` computes from the committed results files;
* keeps a screenshot of each page at 1,400 and 400 pixels wide (``--screenshots``).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

CDN = re.compile(r"https://cdn\.jsdelivr\.net/npm/mathjax@3/es5/tex-mml-chtml\.js")
MATHJAX_VERSION = "3.2.2"
CACHE = Path.home() / ".cache" / "rl-book-mathjax"
CHROMIUM = (os.environ.get("CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser") or shutil.which("google-chrome"))
SKIP_PAGES = {"genindex.html", "search.html"}
ROOT = Path(__file__).resolve().parents[2]
BENCHMARK_PAGE = "book/benchmarks.html"

TABLES_JS = """
() => Array.from(document.querySelectorAll("main table")).map(t =>
  Array.from(t.querySelectorAll("tr")).map(r =>
    Array.from(r.querySelectorAll("th, td")).map(c => c.textContent.replace(/\\s+/g, " ").trim())))
"""


def expected_benchmark_tables() -> list[list[list[str]]]:
    """The tables the Benchmarks page must show, in page order, computed from the results
    files: the task registry, the headline, per task its table and its seeds, then the
    comparison with the rerun in ``benchmarks/results/rerun/`` when there is one."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import report
    from benchmarks.tasks import TASKS

    results = report.load_all()
    tables = [
        [report.TASKS_HEADER, *report.tasks_rows()],
        [report.HEADLINE_HEADER, *report.headline_rows(results)],
    ]
    for t in TASKS:
        if t.name in results:
            tables.append([report.TASK_HEADER, *report.task_rows(results[t.name])])
            tables.append([report.PER_SEED_HEADER, *report.per_seed_rows(results[t.name])])
    repro = report.reproduction_rows(results, report.load_all(report.results_dir() / "rerun"))
    if repro:  # the section "Does a rerun reproduce these numbers?"
        tables.append([report.REPRO_HEADER, *report.reproduction_cells(repro)])
    return [[[" ".join(c.split()) for c in r] for r in tab] for tab in tables]


def benchmark_table_problems(tables: list[list[list[str]]]) -> list[str]:
    """Differences between the page's tables and those computed from the results: a
    missing, extra or reordered table, or any cell that differs (empty when they agree)."""
    expected = expected_benchmark_tables()
    # the renderer turns ' into a typographic apostrophe: compare the text, not the glyph
    tables = [[[c.replace("\u2019", "'") for c in r] for r in t] for t in tables]
    if len(tables) != len(expected):
        return [f"the Benchmarks page has {len(tables)} tables, the results give {len(expected)}"]
    problems = []
    for i, (shown, want) in enumerate(zip(tables, expected)):
        if shown != want:
            bad = next((j for j, (a, b) in enumerate(zip(shown, want)) if a != b),
                       min(len(shown), len(want)))
            problems.append(f"benchmark table {i + 1} differs at row {bad}: page "
                            f"{shown[bad] if bad < len(shown) else None} vs results "
                            f"{want[bad] if bad < len(want) else None}")
    return problems


# Runs in the page: returns a dict of problems found in the main column.
PAGE_PROBES = r"""
() => {
  const main = document.querySelector("main") || document.body;
  const out = {};
  // raw TeX left in the prose (code cells and outputs excluded)
  const clone = main.cloneNode(true);
  clone.querySelectorAll("pre, code, .cell_output, mjx-container, script, style")
       .forEach(e => e.remove());
  const text = clone.innerText;
  const raw = text.match(/(\$\$|\\\(|\\\[|\\begin\{|\\frac\{|\\mathbb\{)/g);
  out.raw_tex = raw ? Array.from(new Set(raw)).slice(0, 5) : [];
  out.mathjax_errors = main.querySelectorAll("mjx-merror").length;
  // images
  out.broken_images = Array.from(main.querySelectorAll("img"))
    .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src).slice(0, 5);
  // widgets with no static rendering
  out.widgets = main.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets').length;
  // code cells wider than their column
  out.wide_code = Array.from(main.querySelectorAll("div.cell_input pre, div.highlight pre"))
    .filter(p => !p.closest(".cell_output") || getComputedStyle(p).whiteSpace === "pre")
    .filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => p.innerText.split("\n").find(l => l.length > 88) || p.innerText.slice(0, 60))
    .slice(0, 5);
  // display equations wider than their column
  const tex = new Map();
  if (window.MathJax && MathJax.startup && MathJax.startup.document) {
    for (const item of MathJax.startup.document.math) tex.set(item.typesetRoot, item.math);
  }
  out.wide_math = Array.from(main.querySelectorAll('mjx-container[display="true"]'))
    .filter(m => m.scrollWidth > m.parentElement.clientWidth + 1 ||
                 m.getBoundingClientRect().right > main.getBoundingClientRect().right + 1)
    .map(m => (tex.get(m) || "?").trim().slice(0, 70)).slice(0, 5);
  // progress bars in outputs (tqdm text or widget)
  out.progress_bars = Array.from(main.querySelectorAll(".cell_output"))
    .filter(o => /\d+%\|/.test(o.innerText) || o.querySelector(".widget-hprogress, progress"))
    .length;
  // figures: a caption (numbered figure) and alt text for every image in a cell output
  out.uncaptioned = Array.from(main.querySelectorAll(".cell_output img"))
    .filter(i => !i.closest("figure") || !i.closest("figure").querySelector("figcaption")
                 || !(i.getAttribute("alt") || "").trim() || i.getAttribute("alt") === "_images")
    .map(i => i.getAttribute("src")).slice(0, 5);
  out.solution_markers = /# (BEGIN|END) SOLUTION/.test(main.innerText);
  out.ipynb_download = Array.from(document.querySelectorAll("a[href]"))
    .some(a => /_downloads\/.*\.ipynb$/.test(a.getAttribute("href")));
  return out;
}
"""



def mathjax_dir() -> Path:
    """MathJax 3 from the npm registry, cached in .cache/mathjax."""
    target = CACHE / f"mathjax-{MATHJAX_VERSION}"
    if (target / "es5" / "tex-mml-chtml.js").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["npm", "pack", f"mathjax@{MATHJAX_VERSION}", "--silent",
                    "--pack-destination", str(CACHE)], check=True)
    with tarfile.open(CACHE / f"mathjax-{MATHJAX_VERSION}.tgz") as tar:
        tar.extractall(CACHE / "unpack", filter="data")
    shutil.move(str(CACHE / "unpack" / "package"), target)
    shutil.rmtree(CACHE / "unpack", ignore_errors=True)
    return target


def local_copy(html: Path, tmp: Path) -> Path:
    """A copy of the book whose pages load MathJax from /_mathjax/ instead of the CDN."""
    site = tmp / "site"
    shutil.copytree(html, site)
    shutil.copytree(mathjax_dir() / "es5", site / "_mathjax" / "es5")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        if CDN.search(text):
            page.write_text(CDN.sub("/_mathjax/es5/tex-mml-chtml.js", text), encoding="utf-8")
    return site


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_page(browser, base: str, rel: str, shots: Path | None) -> list[str]:
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    def route(r):
        if r.request.url.startswith(base):
            return r.continue_()
        return r.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda e: problems.append(f"JavaScript error: {e}"))
    page.on("console", lambda m: problems.append(f"console error: {m.text}")
            if m.type == "error" and str(m.location.get("url", "")).startswith(base)
            and "ERR_FAILED" not in m.text else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 and r.url.startswith(base) else None)
    page.goto(f"{base}/{rel}", wait_until="load")
    if page.evaluate("!!document.querySelector('script[src*=\"mathjax\"]')"):
        page.wait_for_function(
            "window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000
        )
        page.evaluate("MathJax.startup.promise")
    page.wait_for_timeout(300)
    found = page.evaluate(PAGE_PROBES)
    if found["raw_tex"]:
        problems.append(f"raw TeX left in the text: {found['raw_tex']}")
    if found["mathjax_errors"]:
        problems.append(f"{found['mathjax_errors']} MathJax error(s)")
    if found["broken_images"]:
        problems.append(f"images that did not load: {found['broken_images']}")
    if found["widgets"]:
        problems.append(f"{found['widgets']} widget output(s) with no static figure "
                        "(a dead control in the HTML book)")
    if found["wide_code"]:
        problems.append(f"code cells wider than the column: {found['wide_code']}")
    if found["wide_math"]:
        problems.append(f"display equations wider than the column: {found['wide_math']}")
    if found["progress_bars"]:
        problems.append(f"{found['progress_bars']} progress bar(s) in outputs")
    if found["uncaptioned"]:
        problems.append(f"figures without a caption or alt text: {found['uncaptioned']}")
    if found["solution_markers"]:
        problems.append("'# BEGIN SOLUTION' / '# END SOLUTION' markers shown on the page")
    if rel == BENCHMARK_PAGE:
        problems += benchmark_table_problems(page.evaluate(TABLES_JS))
    if re.match(r"book/\d\d_", rel) and not found["ipynb_download"]:
        problems.append("no .ipynb download on a chapter page")
    if shots is not None:
        name = rel.replace("/", "_").removesuffix(".html")
        page.screenshot(path=str(shots / f"{name}-1400.png"), full_page=False)
        page.set_viewport_size({"width": 400, "height": 900})
        page.wait_for_timeout(200)
        page.screenshot(path=str(shots / f"{name}-400.png"), full_page=False)
    page.close()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the built book (_build/html)")
    parser.add_argument("--screenshots", type=Path, default=Path("_build/screenshots"))
    args = parser.parse_args(argv)
    if not (args.html / "index.html").exists():
        print(f"{args.html}/index.html is missing: run `make book` first", file=sys.stderr)
        return 2
    if CHROMIUM is None:
        print("chromium is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.screenshots.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        site = local_copy(args.html, Path(tmp))
        server, base = serve(site)
        pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                       if not p.relative_to(site).parts[0].startswith("_")
                       and p.name not in SKIP_PAGES
                       and "http-equiv=\"refresh\"" not in p.read_text().lower())
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for rel in pages:
                problems = check_page(browser, base, rel, args.screenshots)
                failures += bool(problems)
                print(f"{'FAIL' if problems else 'ok  '} {rel}")
                for problem in problems:
                    print(f"       {problem}")
            browser.close()
        server.shutdown()
    print(f"browser test: {len(pages) - failures} pages ok, {failures} with problems "
          f"(screenshots in {args.screenshots})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
