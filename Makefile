# Everything runs inside .venv, built from the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EVENT ?= events/schedule.json
AUTH ?= aksk
PYTEST_ARGS ?=

.PHONY: help run test lint format unit integration contract clean package validate

help:
	@echo "make run      - one trigger (EVENT=$(EVENT)) through the handler against the local emulator + moto"
	@echo "make test     - lint, type-check and the whole test suite"
	@echo "make lint     - ruff + mypy --strict on src/"
	@echo "make format   - ruff format + autofix"
	@echo "make package  - dist/function.zip for python3.13/arm64 (no boto3 inside)"
	@echo "make validate - template.yaml through the SAM translator and cfn-lint, offline"

$(STAMP): requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

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

# dist/function.zip for python3.13 on arm64: pinned runtime wheels for manylinux aarch64 plus
# src/cbr_checkpointer (never the emulator), zipped reproducibly; fails if boto3/botocore got in.
package: $(STAMP)
	rm -rf build/package dist/function.zip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all: \
		--target build/package -r requirements/runtime.txt
	cp -R src/cbr_checkpointer build/package/cbr_checkpointer
	$(BIN)/python devtools/package.py build/package dist/function.zip --require cbr_checkpointer/handler.py

# template.yaml: SAM transform offline, cfn-lint on the expansion, and assertions on the result.
validate: $(STAMP)
	$(BIN)/pytest tests/infrastructure $(PYTEST_ARGS)
