# analytics-ops — every set-up step lives here, so a fresh machine needs only `make demo` / `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
PYTEST_ARGS ?=

.PHONY: venv lint test test-unit test-scheduler demo up bench report-screenshot clean lock

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## The whole suite: lint, then every tier (dags, unit, integration, e2e, scheduler, browser).
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

## Fast tiers only (no Airflow CLI runs): for the edit loop.
test-unit: venv
	$(PY) -m pytest tests/dags tests/unit $(PYTEST_ARGS)

## The scheduler-run end-to-end tests alone.
test-scheduler: venv
	$(PY) -m pytest -m scheduler $(PYTEST_ARGS)

## Runs every DAG once end to end on an embedded PostgreSQL and the sandbox upstreams.
demo: venv
	$(PY) -m include.analytics_ops.demo

## Airflow UI on http://localhost:8080 (airflow standalone + sandbox + embedded PostgreSQL).
up: venv
	$(PY) -m include.analytics_ops.up

## Benchmarks (each prints a ratio against a baseline measured in the same run).
bench: venv
	$(PY) tests/benchmarks/run_all.py

## Render a report (or any HTML) to PNG with headless Chromium:
##   make report-screenshot HTML=.demo/artifacts/reports/cto-report-20261121.html PNG=artifacts/report.png
report-screenshot: venv
	$(PY) -m include.analytics_ops.reports.screenshot $(HTML) $(PNG)

clean:
	rm -rf artifacts .demo logs

## Re-pin requirements.txt from requirements.in in a scratch venv.
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -r requirements.in
	.lockvenv/bin/pip freeze --exclude-editable > requirements.txt
	rm -rf .lockvenv
