# Every target sets itself up: a fresh clone needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN_ID ?=

.PHONY: setup demo test unit local check bench e2e upgrade upgrade-test e2e-down lint clean reference pin-image toolchain

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'  # dev pulls in every extra (stack, e2e, pin)
	touch $(STAMP)

demo: setup ## the main job, offline: builds the toolchain first where Go is present, then up -> verify -> report -> down
	$(BIN)/harness demo

# make test: the modules run on TEST_WORKERS processes (pytest-xdist); the tests that use the session's platform share
# one of them, so it is applied once (harness/plugin.py). TEST_WORKERS=0: one process.
# tests/e2e is a session of its own (one platform, on local when the toolchain is built) that spends most of its time
# waiting on real controllers (Karpenter's consolidation), so it runs beside the other one; its output follows theirs.
# Side by side is safe since each process takes its ports from a block no other holds (harness.processes.PortBlock).
# The first session is CPU-bound as a whole, tests/e2e waits on controllers' clocks: the first runs niced, so the
# e2e's controllers get the CPU when they need it and the other session everything else.
TEST_WORKERS ?= 5
E2E_LOG := .runs/make-test-e2e.log

test: setup ## the whole suite: tests/e2e beside the unit and integration tests
	@mkdir -p $(dir $(E2E_LOG))
	@$(BIN)/python -m pytest tests/e2e > $(E2E_LOG) 2>&1 & e2e=$$!; \
	nice -n 10 $(BIN)/python -m pytest tests --ignore=tests/e2e -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder; \
	rest=$$?; wait $$e2e; e2e_status=$$?; \
	echo "---- tests/e2e (its output, also in $(E2E_LOG))"; cat $(E2E_LOG); \
	test $$rest -eq 0 && test $$e2e_status -eq 0

unit: setup
	$(BIN)/python -m pytest tests/unit

local: setup ## emulator tier only
	$(BIN)/python -m pytest tests/integration

toolchain: setup ## build the local Kubernetes tier's binaries from pinned Go modules (cached; one-time ~28 min cold)
	$(BIN)/harness toolchain

check: setup ## offline conformance gate on this repo
	$(BIN)/harness check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check harness tests scripts
	$(BIN)/mypy
	terraform fmt -check -recursive infra

# checkov pins older boto3/packaging than the harness: it gets a virtualenv of its own.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/bin/checkov:
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'

bench: setup $(BENCH_VENV)/bin/checkov ## speed targets, side by side in one run
	HARNESS_BENCH_CHECKOV=$(abspath $(BENCH_VENV))/bin/checkov $(BIN)/harness bench

e2e: setup ## real AWS account: needs E2E_AWS_ACCOUNT_ID and AWS_REGION
	$(BIN)/harness e2e --target aws

upgrade: setup ## rehearse the EKS minor upgrade offline on the local target (about 8 min)
	$(BIN)/harness upgrade --target local --yes

upgrade-test: setup ## tests/e2e/test_upgrade.py: the upgrade rehearsal and its failing case (about 16 min)
	HARNESS_UPGRADE_DRILL=1 $(BIN)/python -m pytest tests/e2e/test_upgrade.py

e2e-down: setup ## re-runnable teardown of a run: make e2e-down RUN_ID=...
	$(BIN)/harness down --target aws --run-id "$(RUN_ID)"

pin-image: setup ## pin versions.yaml images (and the manifests using them) to registry digests: needs registry access
	$(BIN)/harness pin-image

REFERENCE ?= ../shared/reference
reference: ## download the pinned upstream reference data (needs internet): make reference REFERENCE=DIR
	$(PYTHON) scripts/fetch_reference.py --dest "$(REFERENCE)"

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache .tox build dist *.egg-info
