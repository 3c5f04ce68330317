# querybus developer commands. Everything runs against real local services
# (Kafka, PostgreSQL primary + replica, etcd) started by scripts/services.sh.
#
#   make test      venv + services, whole test suite, ruff, mypy (what CI runs)
#   make run       venv + services, an adapter in the foreground after `querybus check`
#   make services  start the local services (idempotent); settings in .stack/env
#   make fuzz      the fuzz test of issue 7 with FUZZ_REQUESTS (default 200,000) records;
#                  FUZZ_SEED=n repeats a run (every report prints its seed)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help venv services services-down services-status test test-unit lint format typecheck run bench bench-micro docs fuzz clean

help:
	@echo "make venv | services | services-down | test | lint | format | typecheck | run | bench | bench-micro | docs | fuzz | clean"

venv: $(STAMP)

# Re-installed whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-status:
	scripts/services.sh status

# Every step runs even if an earlier one failed; the target fails if any did.
test: venv services
	@rc=0; \
	( . .stack/env && $(VENV)/bin/pytest -q -p no:cacheprovider --durations=10 $(PYTEST_ARGS) tests/unit tests/contract tests/integration tests/fuzz ) || rc=1; \
	$(VENV)/bin/ruff check src tests tools examples || rc=1; \
	$(VENV)/bin/ruff format --check src tests tools examples || rc=1; \
	$(VENV)/bin/mypy || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED" >&2; fi; \
	exit $$rc

# Unit tests only: no services needed.
test-unit: venv
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

lint: venv
	$(VENV)/bin/ruff check src tests tools examples
	$(VENV)/bin/ruff format --check src tests tools examples

format: venv
	$(VENV)/bin/ruff format src tests tools
	$(VENV)/bin/ruff check --fix src tests tools

typecheck: venv
	$(VENV)/bin/mypy

run: venv
	scripts/run.sh

bench: venv services
	. .stack/env && $(VENV)/bin/querybus bench --concurrency 1,16,64 --requests 5000

# The codec and routing micro-benchmarks (tools/, not installed); figures in docs/benchmarks.md.
bench-micro: venv
	$(PY) tools/bench_protocol.py
	$(PY) tools/bench_routing.py --no-db
	$(PY) tools/bench_analysis.py

# Regenerate docs/asyncapi.yaml and docs/protocol.schema.json from the code
# (tests/unit/test_asyncapi.py fails while they are stale).
docs: venv
	$(PY) tools/asyncapi.py --write

# The fuzz test (tests/fuzz) with many more records than in `make test`; no
# per-test time limit (it stops itself when the adapter stops answering).
FUZZ_REQUESTS ?= 200000
fuzz: venv services
	. .stack/env && FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(VENV)/bin/pytest -q -p no:cacheprovider \
		-o timeout=0 $(PYTEST_ARGS) tests/fuzz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
	find src tests -name __pycache__ -type d -prune -exec rm -rf {} +
	find src -name '*.egg-info' -type d -prune -exec rm -rf {} +
