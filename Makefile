# tlcourse: `make lab` opens the course, `make test` runs every test.
# Both create the virtual environment .venv first when it is missing.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tlcourse-installed
# Jupyter refuses to run as root without this flag (containers, CI).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
BOOK_ARGS := . --config book/_config.yml --toc book/_toc.yml --path-output book

.PHONY: help venv lab test unit book browser bench timings outputs clean

help:
	@echo "make lab    - create .venv if needed and open the course in JupyterLab"
	@echo "make test   - create .venv if needed; unit tests, every notebook (nbval), the book build"
	@echo "make book   - build the website into book/_build/html"
	@echo "make bench  - time the data pipelines and the whole LeNet case study (cpu profile, stand-ins unless set)"
	@echo "make timings [PROFILE=cpu] - time every notebook in a fresh kernel, for the website's profiles page"
	@echo "make outputs - record the expected outputs of the cells marked NBVAL_CHECK_OUTPUT"
	@echo "make clean  - remove build outputs (keeps .venv and data/)"

# The environment: Python 3.11, every package pinned by constraints.txt, tlcourse editable.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: $(PYTHON) not found. tlcourse needs Python 3.11: install it, or run"; \
	  echo "       'make PYTHON=/path/to/python3.11 $(MAKECMDGOALS)'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the course's packages into $(VENV) (first time: a few minutes)..."
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $@

venv: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_setup.ipynb

# Tests never download: they use the quick profile and stand-in data unless told otherwise.
test: export TLCOURSE_PROFILE := $(or $(TLCOURSE_PROFILE),quick)
test: export TLCOURSE_STANDIN := $(or $(TLCOURSE_STANDIN),1)
test: export TLCOURSE_CHECKS := $(or $(TLCOURSE_CHECKS),strict)
test: $(STAMP) browser
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --durations=10

# The website test opens pages in Debian's chromium (not a downloaded browser).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium for the website test..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found; the browser test will be skipped (install Debian's chromium package)"; fi; }

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not book"

# Benchmarks print numbers; they are not tests. Same data rule as `make test`: stand-ins unless
# TLCOURSE_STANDIN is set (TLCOURSE_STANDIN=0 with the real data in place measures on it).
bench: export TLCOURSE_PROFILE := $(or $(TLCOURSE_PROFILE),cpu)
bench: export TLCOURSE_STANDIN := $(or $(TLCOURSE_STANDIN),1)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

# Each notebook top to bottom in a fresh kernel; writes book/timings/<profile>.md for the website.
timings: export TLCOURSE_STANDIN := $(or $(TLCOURSE_STANDIN),1)
timings: $(STAMP)
	$(BIN)/python benchmarks/time_notebooks.py --profile $(or $(PROFILE),quick)

# Expected outputs of the notebook cells marked NBVAL_CHECK_OUTPUT (quick profile, stand-ins).
outputs: $(STAMP)
	$(BIN)/python tests/record_notebook_outputs.py

book: $(STAMP)
	$(BIN)/jupyter-book build $(BOOK_ARGS) -W --keep-going

clean:
	rm -rf book/_build
