# salesflow: `make up` runs the platform, `make test` runs the tests. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
BIN := $(VENV)/bin

.PHONY: up test lint fmt install bench clean

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

# Re-sync whenever the lock or the project metadata changes.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.synced

up: install
	$(BIN)/salesflow up

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	$(BIN)/pytest -q

bench: install
	@echo "See bench/README.md: benchmarks run against a running 'make up' stack."

fmt: install
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
