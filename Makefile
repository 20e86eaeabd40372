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
ARGS ?= --help
SIMULATE_ARGS ?=

.PHONY: help run cli test lint format unit integration contract clean package validate sam-validate bench \
	bench-environments faults readme simulate scale

help:
	@echo "make run      - one trigger (EVENT=$(EVENT)) through the handler against the local emulator + moto (VERBOSE=1: with its logs)"
	@echo "make cli      - the operators' command line: make cli ARGS=\"validate events/schedule.json\""
	@echo "make test     - lint, type-check and the whole test suite"
	@echo "make lint     - ruff + mypy --strict on src, tests, devtools and benchmarks"
	@echo "make format   - ruff format + autofix"
	@echo "make package  - dist/function.zip for python3.13/arm64 (no boto3 inside); ARCH=x86_64 builds dist/function-x86_64.zip"
	@echo "make validate - template.yaml through sam validate --lint, the SAM translator and cfn-lint, offline"
	@echo "make faults   - the fault matrix: every fault as a timer and as an SQS batch, with redelivery"
	@echo "make bench    - benchmarks against the reference handler; writes BENCHMARKS.md"
	@echo "make scale    - VAULTS=$(VAULTS) requests through ENVIRONMENTS=$(ENVIRONMENTS) warm environments, creates limited to RATE=$(RATE)/s; writes BENCHMARKS.md"
	@echo "make readme   - regenerate the command samples in README.md from fresh runs"
	@echo "make simulate - a fleet against CBR's rate limit in virtual time: 10,000 and 100,000 vaults"

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
# VERBOSE=1 also shows the function's JSON logs and EMF metrics on stderr.
run: $(STAMP)
	@$(BIN)/python -m devtools.cli invoke $(EVENT) --auth $(AUTH) $(if $(VERBOSE),--verbose) \
		$(if $(filter invalid-%,$(notdir $(EVENT))),--expect-rejected)

# The operators' command line from the venv, e.g. make cli ARGS="validate events/schedule.json".
cli: $(STAMP)
	@$(BIN)/cbr-checkpointer $(ARGS)

# Every Python tree the project holds, held to the same gates.
PYTHON_TREES := src tests devtools benchmarks

lint: $(STAMP)
	$(BIN)/ruff check $(PYTHON_TREES)
	$(BIN)/ruff format --check $(PYTHON_TREES)
	$(BIN)/mypy --strict $(PYTHON_TREES)

format: $(STAMP)
	$(BIN)/ruff format $(PYTHON_TREES)
	$(BIN)/ruff check --fix $(PYTHON_TREES)

# The bench harness's structural test needs the bench's python3.13 (a few small wheels); without a
# python3.13 on the machine it is skipped.
test: lint sam-validate $(if $(LAMBDA_PYTHON),$(BENCH_PYTHON)/.installed)
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

# dist/function.zip for python3.13 on arm64 (the template's architecture): pinned runtime wheels for
# manylinux aarch64 plus src/cbr_checkpointer (never the emulator), zipped reproducibly; fails if
# boto3/botocore got in. ARCH=x86_64 builds the same recipe for x86_64 into dist/function-x86_64.zip (what
# `make bench` runs on this machine), leaving the arm64 zip alone.
ARCH ?= arm64
ifeq ($(ARCH),arm64)
PACKAGE_PLATFORM := manylinux2014_aarch64
PACKAGE_SUFFIX :=
else ifeq ($(ARCH),x86_64)
PACKAGE_PLATFORM := manylinux2014_x86_64
PACKAGE_SUFFIX := -x86_64
else
$(error ARCH must be arm64 or x86_64, not $(ARCH))
endif
PACKAGE_DIR := build/package$(PACKAGE_SUFFIX)
PACKAGE_ZIP := dist/function$(PACKAGE_SUFFIX).zip

package: $(STAMP)
	rm -rf $(PACKAGE_DIR) $(PACKAGE_ZIP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--platform $(PACKAGE_PLATFORM) --implementation cp --python-version 3.13 --only-binary=:all: \
		--target $(PACKAGE_DIR) -r requirements/runtime.txt
	cp -R src/cbr_checkpointer $(PACKAGE_DIR)/cbr_checkpointer
	find $(PACKAGE_DIR) -name __pycache__ -prune -exec rm -rf {} +
	@if [ -n "$(LAMBDA_PYTHON)" ]; then \
		$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(PACKAGE_DIR); \
	else echo "warning: no python3.13 found; the zip ships without bytecode (slower cold starts)" >&2; fi
	$(BIN)/python devtools/package.py $(PACKAGE_DIR) $(PACKAGE_ZIP) --require cbr_checkpointer/handler.py

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

# Ours vs a reference handler (official Huawei SDK + boto3 + Powertools idempotency), side by side against
# the same emulator and moto, each started the way Lambda starts it: python3.13 running AWS's runtime
# interface client (awslambdaric, in a bench-only venv from requirements/bench.txt) against a Runtime API
# on loopback, from read-only task directories: ours is dist/function-x86_64.zip unzipped, the reference
# is its pinned packages and benchmarks/reference_handler.py, compiled the same way. Prints the table with
# PASS/MISS per budget, writes BENCHMARKS.md and benchmarks/batch-wall.png. About 8 minutes on 2 quiet cores.
BENCH_PYTHON := build/bench/python3.13
REFERENCE_TASK := build/bench/reference-task
REFERENCE_PACKAGES := boto3 huaweicloudsdkcbr aws-lambda-powertools

$(BENCH_PYTHON)/.installed: requirements/bench.txt
	@test -n "$(LAMBDA_PYTHON)" || { echo "make bench needs a python3.13" >&2; exit 1; }
	rm -rf $(BENCH_PYTHON)
	$(LAMBDA_PYTHON) -m venv $(BENCH_PYTHON)
	$(BENCH_PYTHON)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	@touch $@

$(REFERENCE_TASK)/.built: $(BENCH_PYTHON)/.installed requirements/dev.txt benchmarks/reference_handler.py
	rm -rf $(REFERENCE_TASK)
	$(BENCH_PYTHON)/bin/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--only-binary=:all: --target $(REFERENCE_TASK) -c requirements/dev.txt $(REFERENCE_PACKAGES)
	cp benchmarks/reference_handler.py $(REFERENCE_TASK)/reference_handler.py
	find $(REFERENCE_TASK) -name __pycache__ -prune -exec rm -rf {} +
	$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(REFERENCE_TASK)
	@touch $@

bench-environments: $(STAMP) $(BENCH_PYTHON)/.installed $(REFERENCE_TASK)/.built
	$(MAKE) package ARCH=x86_64

bench: bench-environments
	$(BIN)/python -m benchmarks.bench

# The exactly-once fault matrix (devtools/faults): every scenario in timer and SQS mode, redelivered as
# the platform would; prints the table and fails on any broken invariant or verdict. About 40 s.
faults: $(STAMP)
	$(BIN)/python -m devtools.faults

# A fleet run (devtools/scale.py): one SQS request per vault, drained by a local event source mapping of
# ENVIRONMENTS warm environments (processes) against the emulator with a create rate limit of RATE/s;
# checks every vault got exactly one checkpoint and nothing was lost, prints the table, writes the
# scale section of BENCHMARKS.md and benchmarks/scale-progress.png. About 1.1-1.3 x VAULTS / RATE seconds.
VAULTS ?= 1000
RATE ?= 5
ENVIRONMENTS ?= 4
VISIBILITY ?= 30
scale: $(STAMP)
	$(BIN)/python -m devtools.scale --write --vaults $(VAULTS) --rate $(RATE) --environments $(ENVIRONMENTS) \
		--visibility-timeout $(VISIBILITY)

# README.md's samples, regenerated from fresh runs of their commands (tests/docs checks they are fresh).
readme: $(STAMP)
	$(BIN)/python -m devtools.readme --write

# A fleet of execution environments against CBR's rate limit, in virtual time (devtools/fleet_sim.py):
# today's fixed concurrency vs the adaptive limiter, 10,000 and 100,000 vaults at 50 creates/s. Prints the
# table and where the time goes; fails only if a vault was not created exactly once. A few minutes.
simulate: $(STAMP)
	$(BIN)/python -m devtools.fleet_sim $(SIMULATE_ARGS)
