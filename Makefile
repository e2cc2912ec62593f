# pool-service template: every target documents itself in `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install test lint demo bench clean

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(VENV)/.installed: requirements-dev.txt | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## Create .venv from the system Python with the template's tools

test: install ## The template's whole test suite: hooks, the bake matrix, each bake's own tests
	$(BIN)/python -m pytest -ra --durations=15 tests

lint: install ## ruff; zizmor and schemas on both workflow sets; hadolint and bandit on a bake
	$(BIN)/ruff check hooks tests scripts benchmarks
	$(BIN)/ruff format --check hooks tests scripts benchmarks
	$(BIN)/python scripts/lint_workflows.py
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_deploy.py -k "hadolint or bandit"

demo: install ## Bake the defaults into build/demo, install, test, serve /healthz, stop
	$(BIN)/python scripts/demo.py

bench: install ## Measure the baked service against a bare shared client (~9 min; BENCH_ARGS=--quick)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean: ## Remove the environment and build outputs
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
