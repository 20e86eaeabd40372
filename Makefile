# Everything runs inside .venv, built from the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
# Before building anything: a clear word instead of a pip failure deep in the install.
CHECK_PYTHON = $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	echo "cbr-checkpointer needs Python >= 3.11; PYTHON=$(PYTHON) is: $$($(PYTHON) --version 2>/dev/null || echo 'not found')." >&2; \
	echo "Install one and run e.g. 'make run PYTHON=python3.12'." >&2; exit 2; }
EVENT ?= events/schedule.json
AUTH ?= aksk
PYTEST_ARGS ?=

.PHONY: help run test lint format unit integration contract clean package validate sam-validate bench faults readme

help:
	@echo "make run      - one trigger (EVENT=$(EVENT)) through the handler against the local emulator + moto"
	@echo "make test     - lint, type-check and the whole test suite"
	@echo "make lint     - ruff + mypy --strict on src/"
	@echo "make format   - ruff format + autofix"
	@echo "make package  - dist/function.zip for python3.13/arm64 (no boto3 inside)"
	@echo "make validate - template.yaml through sam validate --lint, the SAM translator and cfn-lint, offline"
	@echo "make faults   - the fault matrix: every fault as a timer and as an SQS batch, with redelivery"
	@echo "make bench    - benchmarks against the reference handler; writes BENCHMARKS.md"
	@echo "make readme   - regenerate the command samples in README.md from fresh runs"

# Silent and on stderr, so that `make run > events.json` stays JSON even on the first run.
# The stamp is written last: a build that stopped half-way (or one from another Python) has none and is
# rebuilt from scratch instead of being reused.
$(STAMP): requirements/dev.txt pyproject.toml
	@$(CHECK_PYTHON)
	@echo "building $(VENV) from requirements/dev.txt with $$($(PYTHON) --version 2>&1)" >&2
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e . >&2
	@touch $@

# The events/invalid-* samples end in a Rejected event on purpose; that is a success for `make run`.
run: $(STAMP)
	@$(BIN)/python -m cbr_checkpointer invoke $(EVENT) --auth $(AUTH) || { status=$$?; \
		case "$(notdir $(EVENT))" in invalid-*) \
			echo "$(EVENT) is invalid on purpose: the Rejected event above is the expected answer." >&2; exit 0;; \
		esac; exit $$status; }

lint: $(STAMP)
	$(BIN)/ruff check src tests devtools
	$(BIN)/ruff format --check src tests devtools
	$(BIN)/mypy --strict src

format: $(STAMP)
	$(BIN)/ruff format src tests devtools
	$(BIN)/ruff check --fix src tests devtools

test: lint sam-validate
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

contract: $(STAMP)
	$(BIN)/pytest tests/contract $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(SAM_VENV) build dist *.egg-info src/*.egg-info .mypy_cache .ruff_cache

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

# The SAM CLI lives in a venv of its own: it pins an older boto3 than the test oracles.
$(SAM_STAMP): requirements/sam.txt
	@$(CHECK_PYTHON)
	@echo "building $(SAM_VENV) (AWS SAM CLI) from requirements/sam.txt" >&2
	@rm -rf $(SAM_VENV)
	@$(PYTHON) -m venv $(SAM_VENV) >&2
	@$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/sam.txt >&2
	@touch $@

# `sam validate --lint` works offline; it only needs some region to be named.
sam-validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam validate --lint --template-file template.yaml

# template.yaml: SAM CLI's own validation, then the SAM transform offline, cfn-lint on the expansion,
# and assertions on the result.
validate: $(STAMP) sam-validate
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

# README.md's samples, regenerated from fresh runs of their commands (tests/docs checks they are fresh).
readme: $(STAMP)
	$(BIN)/python -m devtools.readme --write
