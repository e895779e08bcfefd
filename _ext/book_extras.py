"""Small Sphinx additions for the HTML book (loaded through ``_config.yml``'s local_extensions).

* **Downloads.** Each chapter page offers its notebook (``.ipynb``, generated from the
  MyST source at build time) and its student exercise notebook (solutions replaced by
  stubs, as ``make exercises`` writes them), through Sphinx ``{download}`` links placed
  under the chapter's title.
* **The repository link** in the introduction ("from a clone of the repository") when the
  URL is known.
* **The PDF.** When ``make pdf`` has built ``_build/latex/book.pdf``, the introduction
  offers it as a download.
* **Repository and launch buttons.** When ``repository.url`` in ``_config.yml`` is empty,
  the URL is derived from ``git remote get-url origin``; the repository button and the
  Binder launch button appear only when a URL is known, so a clone without a remote
  shows no dead links.
* **Code fits the column**: a slightly smaller code font, so that 88-column cells do not
  scroll sideways at desktop width (``static/book-extras.css``).
* **Solution markers hidden**: the ``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines that
  ``make exercises`` needs stay in the source and the notebooks, not on the page.
* **A default colour mode** (light), so the theme logs no console error on first visit.
* **One thebe configuration script.** Jupyter Book 1.x registers sphinx-thebe's
  configuration script twice, so every page threw ``SyntaxError: Identifier
  'THEBE_JS_URL' has already been declared``. After the build, a repeated inline
  ``<script>`` is removed from each page.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

_INLINE_SCRIPT = re.compile(r"[ \t]*<script>(?:(?!</script>).)*</script>\n?", re.S)
GENERATED = Path("_build") / "generated"
CHAPTER = re.compile(r"^book/\d\d_")


def dedupe_inline_scripts(html: str) -> str:
    """Drop every inline ``<script>...</script>`` that repeats an earlier identical one."""
    seen: set[str] = set()

    def keep_first(match: re.Match[str]) -> str:
        body = match.group(0).strip()
        if body in seen:
            return ""
        seen.add(body)
        return match.group(0)

    return _INLINE_SCRIPT.sub(keep_first, html)


def github_url(remote: str) -> str:
    """``git@github.com:o/r.git`` or ``https://github.com/o/r.git`` -> ``https://github.com/o/r``."""
    remote = remote.strip()
    m = re.match(r"^(?:git@|ssh://git@)([^:/]+)[:/](.+?)(?:\.git)?/?$", remote)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:[^@/]+@)?(.+?)(?:\.git)?/?$", remote)
    return f"https://{m.group(1)}" if m else ""


def _repository_url(srcdir: Path) -> str:
    try:
        out = subprocess.run(["git", "remote", "get-url", "origin"], cwd=srcdir,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return github_url(out.stdout) if out.returncode == 0 else ""


def _configure_repository(app: Any, config: Any) -> None:
    options = config.html_theme_options
    # without a default, pydata-sphinx-theme logs "Got invalid theme mode" on every page
    config.html_context = {"default_mode": "light", **(config.html_context or {})}
    url = options.get("repository_url") or _repository_url(Path(app.srcdir))
    if not url:
        options["use_repository_button"] = False
        options["launch_buttons"] = {}
        return
    options["repository_url"] = url
    options["use_repository_button"] = True
    options.setdefault("repository_branch", "main")
    options["launch_buttons"] = {
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    }


def _generate_notebooks(app: Any) -> None:
    from companion import notebooks

    src = Path(app.srcdir) / "book"
    if not src.is_dir():  # a single-page build (jupyter-book build book/NN_x.md)
        return
    for kind, folder in (("full", "notebooks"), ("student", "exercises")):
        dst = Path(app.srcdir) / GENERATED / folder
        if dst.exists():
            for old in dst.glob("*.ipynb"):
                old.unlink()  # generated copies, never edited: always fresh
        notebooks.convert(kind, src, dst)


def _add_download_links(app: Any, docname: str, source: list[str]) -> None:
    pdf = Path(app.srcdir) / "_build" / "latex" / "book.pdf"
    if docname == "book/intro" and pdf.exists() and app.builder.format == "html":
        source[0] += (
            "\n\n## The book as a PDF\n\n"
            "{download}`Download the whole book as a PDF </_build/latex/book.pdf>` "
            "(executed figures included; each exercise's solution follows it).\n"
        )
    url = app.config.html_theme_options.get("repository_url", "")
    if docname == "book/intro" and url:
        source[0] = re.sub(r"a clone of the\s+repository", f"a clone of [the repository]({url})",
                           source[0], count=1)
    if not CHAPTER.match(docname):
        return
    stem = Path(docname).name
    links = (
        ":::{admonition} Run this chapter yourself\n:class: tip\n"
        f"{{download}}`Notebook (.ipynb) </{GENERATED.as_posix()}/notebooks/{stem}.ipynb>`: "
        "the whole chapter, to run top to bottom. "
        f"{{download}}`Exercises (.ipynb) </{GENERATED.as_posix()}/exercises/{stem}.ipynb>`: "
        "the same notebook with each solution replaced by a stub that fails its checker "
        "until you fill it in.\n:::\n"
    )
    text = source[0]
    m = re.search(r"^# .*$", text, flags=re.M)
    if m:
        source[0] = text[: m.end()] + "\n\n" + links + text[m.end():]


SOLUTION_MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")


def strip_solution_markers(code: str) -> str:
    """Drop the lines that only mark a solution for ``make exercises``."""
    return "\n".join(line for line in code.split("\n") if line.strip() not in SOLUTION_MARKERS)


def _hide_solution_markers(app: Any, doctree: Any, docname: str) -> None:
    from docutils import nodes

    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if any(marker in text for marker in SOLUTION_MARKERS):
            new = strip_solution_markers(text)
            block.children = [nodes.Text(new)]
            if "rawsource" in block.__dict__:
                block.rawsource = new


def _fix_pages(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = dedupe_inline_scripts(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def _add_static(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(Path(__file__).parent / "static")]


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _add_static)
    app.add_css_file("book-extras.css")
    app.connect("config-inited", _configure_repository)
    app.connect("builder-inited", _generate_notebooks)
    app.connect("source-read", _add_download_links)
    app.connect("doctree-resolved", _hide_solution_markers)
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
