# Atrium developer entry points. Every target runs through uv; Python itself is never downloaded
# (UV_PYTHON_DOWNLOADS=never): uv uses the interpreter on the machine (3.11+).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export UV_PYTHON_DOWNLOADS := never

PYTHON ?= python3
# Evaluated at each use, so a uv that `make install` just put on the machine is found; when pip
# put it where PATH does not look, `python3 -m uv` still reaches it.
UV = $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
PYTEST_ARGS ?=

.PHONY: help install install-python run test unit lint format typecheck bench docs

# The unit tier's coverage: every service's domain, use cases, handlers and adapters.
COVERED = atrium_room atrium_participant atrium_track atrium_callback atrium_recording \
	atrium_gateway atrium_media

help:
	@echo "make install  install uv if missing, every workspace package and dev tools, Chromium and twilio-video"
	@echo "make run      run the whole stack here (embedded NATS + Redis unless NATS_URL/REDIS_URL)"
	@echo "make test     the test suite (PYTEST_ARGS='-k name' to narrow it)"
	@echo "make unit     the fast unit tier (fakes, no servers) with a branch coverage report"
	@echo "make format   ruff format + ruff check --fix"
	@echo "make lint     ruff + mypy --strict"
	@echo "make bench    the benchmark (bench/run.py)"
	@echo "make docs     generated AsyncAPI / OpenAPI documents into docs/generated/"

install: install-python
	bash scripts/install-browser-deps.sh

# Python packages only (uv if missing, the workspace, dev tools): all the unit tier needs.
install-python:
	@if ! command -v uv >/dev/null 2>&1 && ! $(PYTHON) -m uv --version >/dev/null 2>&1; then \
		echo "+ $(PYTHON) -m pip install uv"; \
		$(PYTHON) -m pip install uv || $(PYTHON) -m pip install --break-system-packages uv; \
	fi
	$(UV) sync --all-packages

run: install
	$(UV) run atrium run

test: install
	$(UV) run pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: install-python
	$(UV) run pytest -q -p no:cacheprovider -n 2 tests/unit --cov-branch \
		$(foreach package,$(COVERED),--cov=$(package)) --cov-report=term:skip-covered $(PYTEST_ARGS)

format: install-python
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

lint: install-python
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(MAKE) -s typecheck

typecheck:
	$(UV) run mypy shared services cli sdk/python tests bench

bench: install
	@if [ -f bench/run.py ]; then \
		$(UV) run python bench/run.py; \
	else \
		echo "bench/run.py does not exist yet"; exit 1; \
	fi

docs: install
	$(UV) run python -m atrium_cli.docs
