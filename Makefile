# The two commands a new user needs: `make dev` and `make test`. Everything else supports them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export DO_NOT_TRACK := 1
export DAGSTER_HOME := $(CURDIR)/dagster_home
export INGESTION_WAREHOUSE_PATH ?= $(CURDIR)/data/warehouse.duckdb

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
S3_STATE := .local/s3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)

.PHONY: help install dev demo test test-quick bench health lint validate postgres chromium ui-check s3-start s3-stop clean

help:
	@echo "make dev    install, start the local S3 server with sample documents, run dagster dev (sensors on)"
	@echo "make demo   one full pass without the UI: discovery -> runs -> dbt build, then a summary"
	@echo "make test   lint, validate the definitions, run the whole test suite"
	@echo "make test-quick  lint and the fast tests (ledger, sensor, asset, config): the inner loop"
	@echo "make bench  throughput, large and hostile files, discovery, dbt and import costs, each next to a baseline"
	@echo "make health  one line per check (S3 per source, ledger, warehouse, sensors, backlog); non-zero if unhealthy"
	@echo "make ui-check  screenshot the UI in headless Chromium and check it shows assets, failures, checks, automation"
	@echo "make s3-stop  stop the local S3 server that make dev started"

$(UV):
	$(PYTHON) -m pip install --quiet --user uv

# Bytecode compiled at install: run processes start from .pyc even where PYTHONDONTWRITEBYTECODE is set.
$(BIN)/dagster: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: $(BIN)/dagster
	@$(BIN)/python -m compileall -q ingestion_project

s3-start: install
	$(BIN)/python -m devtools.local_s3 start --state-dir $(S3_STATE)

s3-stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m devtools.local_s3 stop --state-dir $(S3_STATE); fi

dev: s3-start
	eval "$$($(BIN)/python -m devtools.local_s3 env --state-dir $(S3_STATE))" && \
	  $(BIN)/python -m devtools.seed && \
	  mkdir -p data && \
	  $(BIN)/dg dev -w workspace.yaml --host 127.0.0.1 --port $${DAGSTER_PORT:-3000}

# The local S3 server's environment when make dev started one; otherwise the AWS_* environment as it is.
health: install
	@eval "$$($(BIN)/python -m devtools.local_s3 env --state-dir $(S3_STATE) 2>/dev/null)"; \
	  $(BIN)/python -m ingestion_project.failures.health

demo: install postgres
	$(BIN)/python -m devtools.demo

# A benchmark, not a test: it prints figures. BENCH_DOCUMENTS=N changes the 2000 documents of the throughput part,
# BENCH_CSV_MB the large CSVs (1000,2000), BENCH_KEYS the discovery keys (100000); BENCH_PARTS picks parts
# (throughput,csv,hostile,json,discovery,dbt,import,memory).
BENCH_PARTS ?= throughput,csv,hostile,json,discovery,dbt,import,memory
bench: install
	@if [[ ",$(BENCH_PARTS)," == *,throughput,* ]]; then $(BIN)/python scripts/bench.py; fi
	@if [[ ",$(BENCH_PARTS)," == *,memory,* ]]; then $(BIN)/python scripts/bench_memory.py; fi
	$(BIN)/python scripts/bench_scale.py --only $(BENCH_PARTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# `dg check defs` loads the dg project: the ingestion code location. The warehouse location (workspace.yaml) is loaded
# the same way by the command dg wraps.
validate: install
	$(BIN)/dg check defs
	PYTHONWARNINGS='ignore:Function `definitions_validate_command` is superseded' \
	  $(BIN)/dagster definitions validate --log-level warning -m ingestion_project.warehouse_definitions
	@echo "The warehouse code location's definitions loaded successfully."

# Debian's PostgreSQL for the ledger tests. It needs root to install: elsewhere those tests skip, but in CI it must be there.
postgres:
	@bash devtools/install_system.sh postgresql || [ "$$CI" != "true" ]

# Debian's Chromium for the UI check (tests/test_ui.py); like PostgreSQL, it skips without it except in CI.
chromium:
	@bash devtools/install_system.sh chromium || [ "$$CI" != "true" ]

# The UI a new user opens, rendered by headless Chromium: screenshots and one line per page (see scripts/ui_check.py).
ui-check: install chromium
	$(BIN)/python scripts/ui_check.py

test: postgres chromium lint validate
	$(BIN)/pytest -q

# The inner loop: no dbt builds, no worker processes, no fault proxy scenarios (about a minute on 2 cores).
test-quick: lint
	$(BIN)/pytest -q tests/lib tests/ingestion tests/test_config.py tests/test_definitions.py tests/test_architecture.py \
	  tests/transform/test_definitions.py tests/transform/test_automation.py

clean: s3-stop
	rm -rf .local data dbt_project/target dbt_project/logs
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
