# Everything runs inside .venv, built from the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EVENT ?= events/schedule.json
AUTH ?= aksk
PYTEST_ARGS ?=
SIMULATE_ARGS ?=

.PHONY: help run test lint format unit integration contract clean package validate bench faults simulate

help:
	@echo "make run      - one trigger (EVENT=$(EVENT)) through the handler against the local emulator + moto"
	@echo "make test     - lint, type-check and the whole test suite"
	@echo "make lint     - ruff + mypy --strict on src/"
	@echo "make format   - ruff format + autofix"
	@echo "make package  - dist/function.zip for python3.13/arm64 (no boto3 inside)"
	@echo "make validate - template.yaml through the SAM translator and cfn-lint, offline"
	@echo "make faults   - the fault matrix: every fault as a timer and as an SQS batch, with redelivery"
	@echo "make bench    - benchmarks against the reference handler; writes BENCHMARKS.md"
	@echo "make simulate - a fleet against CBR's rate limit in virtual time: 10,000 and 100,000 vaults"

# Silent and on stderr, so that `make run > events.json` stays JSON even on the first run.
$(STAMP): requirements/dev.txt pyproject.toml
	@echo "building $(VENV) from requirements/dev.txt" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
	@touch $@

run: $(STAMP)
	@$(BIN)/python -m cbr_checkpointer invoke $(EVENT) --auth $(AUTH)

lint: $(STAMP)
	$(BIN)/ruff check src tests devtools
	$(BIN)/ruff format --check src tests devtools
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff format src tests devtools
	$(BIN)/ruff check --fix src tests devtools

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

contract: $(STAMP)
	$(BIN)/pytest tests/contract $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .mypy_cache .ruff_cache

# Bytecode for the Lambda runtime: /var/task is read-only, so a zip without it makes every cold start
# compile every module (~350 ms of imports instead of ~120 ms). Any python3.13 will do.
LAMBDA_PYTHON ?= $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo $$p; break; }; done)

# dist/function.zip for python3.13 on arm64: pinned runtime wheels for manylinux aarch64 plus
# src/cbr_checkpointer (never the emulator), zipped reproducibly; fails if boto3/botocore got in.
package: $(STAMP)
	rm -rf build/package dist/function.zip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all: \
		--target build/package -r requirements/runtime.txt
	cp -R src/cbr_checkpointer build/package/cbr_checkpointer
	find build/package -name __pycache__ -prune -exec rm -rf {} +
	@if [ -n "$(LAMBDA_PYTHON)" ]; then \
		$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash build/package; \
	else echo "warning: no python3.13 found; the zip ships without bytecode (slower cold starts)" >&2; fi
	$(BIN)/python devtools/package.py build/package dist/function.zip --require cbr_checkpointer/handler.py

# template.yaml: SAM transform offline, cfn-lint on the expansion, and assertions on the result.
validate: $(STAMP)
	$(BIN)/pytest tests/infrastructure $(PYTEST_ARGS)

# Ours vs a reference handler (official Huawei SDK + boto3 + Powertools idempotency), side by side
# against the same emulator and moto: prints the table with PASS/MISS per budget, writes BENCHMARKS.md
# and benchmarks/batch-wall.png. About 5 minutes on 2 cores.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

# The exactly-once fault matrix (devtools/faults.py): every scenario in timer and SQS mode, redelivered as
# the platform would; prints the table and fails on any broken invariant or verdict. About 40 s.
faults: $(STAMP)
	$(BIN)/python -m devtools.faults

# A fleet of execution environments against CBR's rate limit, in virtual time (devtools/fleet_sim.py):
# today's fixed concurrency vs the adaptive limiter, 10,000 and 100,000 vaults at 50 creates/s. Prints the
# table and where the time goes; fails only if a vault was not created exactly once. A few minutes.
simulate: $(STAMP)
	$(BIN)/python -m devtools.fleet_sim $(SIMULATE_ARGS)
