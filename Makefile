# Quick start (README): `make all_figures` (set up + the mini world's figures), `make test`.
# Set-up is a virtual environment in .venv with the pinned requirements; torch comes first so
# that the build chosen here is the one used:
#   make install                         torch from PyPI (on Linux x86_64 its CUDA 13 build)
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu      CPU-only build
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu126 CUDA=1
#                                        a CUDA 12 build (cu126, cu128, ...: as the index has it)
#                                        and cuEquivariance (mlipft.train then passes --enable_cueq)
# CUDA=1 installs envs/requirements-cuda.txt for a CUDA 12 torch, envs/requirements-cuda13.txt for
# a CUDA 13 one, read from the torch just installed. A changed TORCH or TORCH_INDEX reinstalls torch.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CUDA ?=
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CUDA_STAMP := $(VENV)/.installed-cuda
TORCH_SETTINGS := $(VENV)/.torch-settings

.PHONY: install all_figures test test-fast test-slow report lint dry-run-paper benchmark slurm-test clean-results FORCE

FORCE:

# the torch pin and index of the last set-up, rewritten only when they change
$(TORCH_SETTINGS): FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH) $(TORCH_INDEX)' | cmp -s - $@ || echo '$(TORCH) $(TORCH_INDEX)' > $@

$(STAMP): envs/requirements.txt pyproject.toml $(TORCH_SETTINGS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --force-reinstall)
	$(BIN)/pip install --quiet -r envs/requirements.txt
	touch $(STAMP)

$(CUDA_STAMP): $(STAMP) envs/requirements-cuda.txt envs/requirements-cuda13.txt
	@cuda=$$($(BIN)/python -c 'import torch; print((torch.version.cuda or "none").split(".")[0])'); \
	case $$cuda in \
	  12) req=envs/requirements-cuda.txt ;; \
	  13) req=envs/requirements-cuda13.txt ;; \
	  *) echo "CUDA=1: torch $$($(BIN)/python -c 'import torch; print(torch.__version__)') is not a CUDA 12 or 13 build;" \
	       "install one with TORCH_INDEX=https://download.pytorch.org/whl/cu126 (or PyPI's wheel, CUDA 13)" >&2; exit 1 ;; \
	esac; \
	echo "torch CUDA $$cuda: installing $$req"; \
	$(BIN)/pip install --quiet -r $$req
	touch $(CUDA_STAMP)

install: $(STAMP) $(if $(CUDA),$(CUDA_STAMP))

all_figures: install
	$(BIN)/snakemake all_figures --cores $(CORES)

# CI: lint, then the fast tier (unit tests, seconds), then the slow tier (real training, the
# smoke-scale workflow and its report); each tier lists its 15 slowest tests (the CI budget). The
# fast tier runs on $(CORES) processes (pytest-xdist: 155 s instead of ~260 s on 2 cores); the slow
# tier too, one test file per process (the smoke workflow's module fixture stays in one), so the
# other slow files fill the smoke run's idle core time.
test: install
	$(BIN)/snakemake --lint
	$(BIN)/python -m pytest -m "not slow" -n $(CORES) --durations=15
	$(BIN)/python -m pytest -m slow -n $(CORES) --dist loadfile --durations=15

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -n $(CORES)

test-slow: install
	$(BIN)/python -m pytest -m slow -n $(CORES) --dist loadfile

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
