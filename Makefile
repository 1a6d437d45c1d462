# Every target sets itself up: a fresh clone needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_ID ?=

.PHONY: setup demo test unit local check bench e2e e2e-down lint clean reference

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup ## the main job, offline: emulator up -> verify -> report -> down
	$(BIN)/harness demo

test: setup ## the whole suite; the emulator tier runs when Terraform + AWS provider are present
	$(BIN)/python -m pytest tests

unit: setup
	$(BIN)/python -m pytest tests/unit

local: setup ## emulator tier only
	$(BIN)/python -m pytest tests/integration

check: setup ## offline conformance gate on this repo
	$(BIN)/harness check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	terraform fmt -check -recursive infra

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/harness bench

e2e: setup ## real AWS account: needs E2E_AWS_ACCOUNT_ID and AWS_REGION
	$(BIN)/harness e2e --target aws

e2e-down: setup ## re-runnable teardown of a run: make e2e-down RUN_ID=...
	$(BIN)/harness down --target aws --run-id "$(RUN_ID)"

REFERENCE ?= ../shared/reference
reference: ## download the pinned upstream reference data (needs internet): make reference REFERENCE=DIR
	$(PYTHON) scripts/fetch_reference.py --dest "$(REFERENCE)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tox build dist *.egg-info
