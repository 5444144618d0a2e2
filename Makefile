# The two commands a newcomer needs: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# The dependencies come from the lockfiles (exact versions, every file's hash checked), the project itself
# with --no-deps; a stamp is stale when pyproject.toml or its lockfile changes.
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
# The lockfiles are for CPython 3.11 on x86_64 Linux, the machines this project runs and is tested on.
UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock"

.PHONY: run test lint typecheck pytest bench screenshots clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The test lock holds setuptools, so the project installs without a build-isolation download.
$(TEST_STAMP): pyproject.toml $(TEST_LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(TEST_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP) $@

# Refreshes both lockfiles from pyproject.toml, keeping the pinned versions that still fit;
# `make lock UPGRADE=--upgrade` moves every pin to the newest allowed release. The test lock is
# constrained by the runtime one, so the two never pin a package differently.
lock: $(TEST_STAMP)
	$(UV_COMPILE) $(UPGRADE) -o $(LOCK)
	$(UV_COMPILE) $(UPGRADE) --extra test -c $(LOCK) -o $(TEST_LOCK)

run: $(STAMP)
	$(BIN)/securemsg demo

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

pytest: $(TEST_STAMP)
	$(BIN)/python tests/run.py $(PYTEST_ARGS)

test: lint typecheck pytest

screenshots: $(TEST_STAMP)
	SECUREMSG_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/browser -q -k sqlite

bench: $(TEST_STAMP)  # the benchmarks reuse the test fakes (tests/fakes), so the test extra
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
