# Quick start (README): `make all_figures` (set up + the mini world's figures), `make test`.
# Set-up is a virtual environment in .venv with the pinned requirements; torch comes first so
# that its CPU build (or, on a cluster, TORCH_INDEX's CUDA build) is the one used.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install all_figures test test-fast test-slow report lint dry-run-paper benchmark slurm-test clean-results

$(STAMP): envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -r envs/requirements.txt
	touch $(STAMP)

install: $(STAMP)

all_figures: install
	$(BIN)/snakemake all_figures --cores $(CORES)

# CI: lint, then the fast tier (unit tests, seconds), then the slow tier (real training, the
# smoke-scale workflow and its report).
test: install
	$(BIN)/snakemake --lint
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/python -m pytest -m slow

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -m slow

# The HTML report of every figure that exists, with its caption (after `make all_figures`).
report: install
	$(BIN)/snakemake all_figures --report report.html

lint: install
	$(BIN)/snakemake --lint

benchmark: install
	$(BIN)/python benchmarks/finetune_overhead.py --scale mini

dry-run-paper: install
	$(BIN)/snakemake all_figures -n --configfile=config/paper.yaml

slurm-test: install
	bash tests/slurm_toy/run.sh && bash tests/slurm_smoke.sh
