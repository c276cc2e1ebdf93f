# Two commands on a fresh machine:  `make run` (install + the default factory)  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test check bench clean

$(BIN)/darkfab: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/darkfab

install: $(BIN)/darkfab

run: install
	$(BIN)/darkfab run

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "slow or not slow"

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/search_quality.py

clean:
	rm -rf $(VENV) .darkfab .pytest_cache .mypy_cache
