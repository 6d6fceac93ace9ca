# Two commands: `make run` (the whole local stack) and `make test` (the whole test suite).
PYTHON ?= python3
VENV := .venv
# Playwright (a test dependency) drives the system's chromium (scripts/test-browser.sh); it never downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
PY := $(VENV)/bin/python

.PHONY: run test lint format install install-dev migrate worker api clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

## run: Temporal dev server (UI :8080, data in ./data), worker and API (:8000); Ctrl-C stops all
run: install
	$(PY) -m workflow_engine dev

migrate: install
	$(PY) -m workflow_engine migrate

worker: install
	$(PY) -m workflow_engine worker

api: install
	$(PY) -m workflow_engine api

## test: set up (venv, PostgreSQL test database, Debian's chromium for the browser tests) and run every test
test: install-dev
	@eval "$$(scripts/test-postgres.sh)"; eval "$$(scripts/test-browser.sh)"; $(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install-dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
