# Two commands a fresh machine needs (Python 3.11 and pip only):
#   make book   set up .venv, build the HTML book (every chapter executed)
#   make test   set up .venv, run pytest on the companion and nbval on every chapter
# and two for readers:
#   make lab        open the chapters in JupyterLab (the .md files open as notebooks)
#   make exercises  write student notebooks (solutions replaced by stubs) to exercises/
#   make benchmark  companion PPO vs Stable-Baselines3 on CartPole (installs benchmarks/requirements.txt)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install notebooks test test-companion test-notebooks book lab exercises benchmark clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

notebooks: $(STAMP)
	rm -rf notebooks
	$(BIN)/python -m companion.notebooks full book notebooks

test-companion: $(STAMP)
	$(BIN)/python -m pytest tests

test-notebooks: notebooks
	$(BIN)/python -m pytest --nbval-lax --nbval-cell-timeout=600 -p no:cacheprovider notebooks

test: test-companion test-notebooks

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

lab: $(STAMP)
	$(BIN)/jupyter lab book

exercises: $(STAMP)
	rm -rf exercises
	$(BIN)/python -m companion.notebooks student book exercises
	@echo "Student notebooks are in $(CURDIR)/exercises/"

benchmark: $(STAMP)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/ppo_cartpole.py

clean:
	rm -rf _build notebooks exercises .pytest_cache
