# initlab: set-up, main job and tests. Every target builds the local virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	@echo "initlab: creating $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "initlab: installing initlab and PyTorch (pinned by constraints.txt) into $(VENV); the first time this downloads PyTorch and takes a few minutes..."
	$(BIN)/python -m pip install --quiet --progress-bar on -c constraints.txt -e '.[dev]'
	@echo "initlab: $(VENV) is ready"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install initlab with its dev tools

demo: $(STAMP)  ## the main job on defaults
	$(BIN)/initlab demo

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/ruff format --check src tests $(wildcard benchmarks)

test: $(STAMP)  ## lint, then the whole test suite
	$(BIN)/ruff check src tests $(wildcard benchmarks)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_init_compare.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
