# shelflife developer targets. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint unit lock bench bench-http clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) ## Create or refresh the virtual environment from the lock file

demo: $(STAMP) ## Build the demo data set in ./demo-home, print a login per role, serve the web app (PORT=8000)
	$(BIN)/shelflife demo --home ./demo-home --fresh --serve --port $${PORT:-8000}

lint: $(STAMP) ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) ## The whole suite: lint, types, then unit/integration/e2e on SQLite and a throwaway PostgreSQL
	$(MAKE) lint
	$(BIN)/pytest

unit: $(STAMP) ## Only the fast unit tests
	$(BIN)/pytest tests/unit

bench: $(STAMP) ## shelflife run vs. the floor, SQLite (N=100000; PG=1 adds PostgreSQL; SCALE=1 imports N/10 and scales it x10; see bench/README.md)
	$(BIN)/python bench/compare.py --customers $${N:-100000} --backend $$(if [ -n "$${PG:-}" ]; then echo both; else echo sqlite; fi) $$(if [ -n "$${SCALE:-}" ]; then echo --scale-from $$(( $${N:-100000} / 10 )); fi)

bench-http: $(STAMP) ## Search and retrieval latency over HTTP (N=100000 buyers, REQUESTS=500; see bench/README.md)
	$(BIN)/python bench/http_latency.py --customers $${N:-100000} --requests $${REQUESTS:-500}

lock: ## Re-pin requirements.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean: ## Remove the virtual environment and demo data
	rm -rf $(VENV) demo-home .pytest_cache .mypy_cache .ruff_cache
