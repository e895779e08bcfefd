# Two commands a fresh machine needs (Python 3.11 and pip only):
#   make book   set up .venv, build the HTML book (every chapter executed)
#   make test   set up .venv, run pytest on the companion and nbval on every chapter
# and some for readers and maintainers:
#   make lab           open the chapters in JupyterLab (the .md files open as notebooks)
#   make exercises     write student notebooks (solutions replaced by stubs) to exercises/;
#                      a notebook there that you changed is kept, never overwritten
#   make browser-test  drive the built book in headless Chromium (run after make book)
#   make pdf           the whole book as a PDF (XeLaTeX; prints the apt-get line if TeX is missing);
#                      run before make book, the HTML book then offers it as a download
#   make format        format the chapters' code cells (ruff, 88 columns)
#   make lock          refresh requirements.lock from requirements.txt
#   make benchmark     the benchmark suite: companion PPO/TRPO vs SB3/sb3-contrib on every task of
#                      benchmarks/tasks.py, then scaling (installs benchmarks/requirements.txt; hours)
#   make benchmark-quick  smoke test of the suite (2 seeds, CartPole tasks; results/quick/)
#   make benchmark-rerun  the whole suite again into benchmarks/results/rerun/, then compares
#                      its medians with the committed ones (benchmarks/report.py --compare)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# the lock pins every transitive version with hashes (linux x86-64, CPython 3.11);
# elsewhere use `make ... REQUIREMENTS=requirements.txt` (direct pins only)
REQUIREMENTS ?= requirements.lock
HASHES := $(if $(filter requirements.lock,$(REQUIREMENTS)),--require-hashes,)
export PIP_DISABLE_PIP_VERSION_CHECK := 1
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

.PHONY: install notebooks test test-companion test-notebooks book lab exercises benchmark benchmark-quick benchmark-rerun \
        browser-test format format-check lock pdf clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(HASHES) -r $(REQUIREMENTS)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

lock:
	$(PYTHON) -m pip install --quiet --target .uv uv==0.13.9
	PYTHONPATH=.uv .uv/bin/uv pip compile requirements.txt --generate-hashes \
	    --python-version 3.11.5 --python-platform x86_64-manylinux_2_28 \
	    $(if $(wildcard /opt/wheels),--find-links /opt/wheels,--extra-index-url $(TORCH_CPU_INDEX)) \
	    --no-header -o requirements.lock
	rm -rf .uv

notebooks: $(STAMP)
	rm -rf notebooks
	$(BIN)/python -m companion.notebooks full book notebooks

test-companion: $(STAMP)
	$(BIN)/python -m pytest tests

test-notebooks: notebooks
	$(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider notebooks

test: format-check test-companion test-notebooks

# progress bars are for readers running a notebook; the built pages do not show them
book: $(STAMP)
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

browser-test: $(STAMP)
	$(BIN)/python tests/browser/check_book.py _build/html --screenshots _build/screenshots

TEX_PACKAGES := texlive-xetex texlive-latex-extra texlive-latex-recommended \
                texlive-fonts-recommended latexmk fonts-freefont-otf xindy poppler-utils

pdf: $(STAMP)
	@for tool in xelatex latexmk pdftotext pdfinfo; do \
	    command -v $$tool >/dev/null || { \
	        echo "$$tool is missing. Install TeX and poppler with:"; \
	        echo "  sudo apt-get install -y --no-install-recommends $(TEX_PACKAGES)"; exit 1; }; \
	done
	TQDM_DISABLE=1 $(BIN)/jupyter-book build . --builder pdflatex
	$(BIN)/python tests/check_pdf.py _build/latex
	@echo "The PDF is built: $(CURDIR)/_build/latex/book.pdf"

format: $(STAMP)
	$(BIN)/jupytext --pipe "$(BIN)/ruff format --line-length 88 {}" book/*.md
	$(BIN)/ruff format companion tests benchmarks

format-check: $(STAMP)
	$(BIN)/python -m companion.notebooks check-format book

lab: $(STAMP)
	$(BIN)/jupyter lab book

exercises: $(STAMP)
	$(BIN)/python -m companion.notebooks student book exercises
	@echo "Student notebooks are in $(CURDIR)/exercises/"

benchmark: $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	PYTHONPATH=. OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python benchmarks/suite.py

benchmark-rerun: $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	PYTHONPATH=. OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python benchmarks/suite.py \
	    --out-dir benchmarks/results/rerun
	$(BIN)/python benchmarks/report.py --compare benchmarks/results/rerun

benchmark-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	PYTHONPATH=. OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python benchmarks/suite.py --quick

clean:
	rm -rf _build notebooks exercises .pytest_cache
