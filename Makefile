# Every target sets up what it needs, idempotently, on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := chromium xvfb xdotool x11-utils xauth fonts-dejavu-core fonts-liberation
export HF_HUB_OFFLINE := 1

.PHONY: setup system-deps demo test bench lint clean

setup: system-deps $(STAMP)

# Debian packages: Chromium for the browser executor, Xvfb and friends for the desktop one.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The venv. torch comes first, so that the package's own `torch` requirement is already
# met: the CPU build where no NVIDIA GPU is present, the default (CUDA) build where one is.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/pip install -q torch; else $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[all]'
	@$(BIN)/python -c "import torch, transformers, playwright, agent" 
	@touch $(STAMP)

demo: setup
	$(BIN)/internvl-agent demo

test: setup
	$(BIN)/python -m pytest -q

# CPU benchmarks always; the GPU step benchmark where CUDA is present (see bench/gpu_step.py --help).
bench: setup
	$(BIN)/python bench/preprocess.py
	$(BIN)/python bench/step_overhead.py
	@if $(BIN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python bench/gpu_step.py; \
	else echo "bench/gpu_step.py needs CUDA; on the CPU: $(BIN)/python bench/gpu_step.py --models 1b --steps 1 --device cpu"; fi

lint: setup
	$(BIN)/ruff check agent tools model tasks tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
