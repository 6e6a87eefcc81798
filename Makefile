# Quick start: `make run` (set up, then the main job), `make test` (set up, then the tests).
# Everyday work: `make test-fast` (the tests not marked slow: under a minute).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision: the newest builds that this project's machines install from local disk.
TORCH := torch==2.14.1 torchvision==0.29.1
EDITABLE := --config-settings editable_mode=compat

.PHONY: setup run test test-fast test-all lint format clean

setup: $(VENV)/.installed

# segexp goes in twice: first a copy with its dependencies, then itself editable in place of the
# copy, with -qq because setuptools prints a notice box for every editable install. compat mode
# (the checkout on sys.path): Hydra finds plugins by listing the hydra_plugins package's folders,
# and the default editable mode's import hooks hide segexp's (hydra_plugins/segexp_*) from it.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q ".[dev]"
	$(BIN)/python -m pip install -qq --no-deps -e . $(EDITABLE)
	touch $@

run: setup
	$(BIN)/python -m segexp

# The tests run on both cores (pytest-xdist): most are single-threaded tiny runs.
test: setup
	$(BIN)/python -m pytest -q -n 2

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# The whole suite with every optional extra, the CRF post-processor's too (built from source).
test-all: setup
	$(BIN)/python -m pip install -q ".[crf]"
	$(BIN)/python -m pip install -qq --no-deps -e . $(EDITABLE)
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
