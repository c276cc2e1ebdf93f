# Two commands on a fresh machine:  `make run` (install + the default factory)  and  `make test`.
# `make run` installs what running needs (no PyTorch, Ray or CUDA libraries); `make test` adds the `dev` extra.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install install-dev run test check bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.core $@

install: $(VENV)/.core

install-dev: $(VENV)/.dev

run: install
	$(BIN)/darkfab run

test: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "slow or not slow" --durations=25

check: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/search_quality.py

clean:
	rm -rf $(VENV) .darkfab .pytest_cache .mypy_cache
