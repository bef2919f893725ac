# Everything a newcomer needs is two commands: `make demo` and `make test`.
# Each target sets up what it needs (virtualenv, install, protobuf stubs) and is
# quick when that is already done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard proto/dockside/v1/*.proto)
STUBS := dockside/v1/sync_pb2.py
# The storage tests run on SQLite and on this PostgreSQL (each test in its own schema or database);
# the tests that need PostgreSQL fail, never skip, when it cannot be reached.
export DOCKSIDE_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: setup stubs demo test coverage lint typecheck pytest test-times bench clean agent-binary

setup: $(VENV)/.installed $(STUBS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

stubs: $(STUBS)

$(STUBS): $(PROTOS) $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		--python_out=. --grpc_python_out=. \
		--mypy_out=quiet:. --mypy_grpc_out=quiet:. $(PROTOS)

demo: setup
	$(BIN)/python -m bench.demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo

typecheck: setup
	$(BIN)/mypy dockside cloud edge_agent hardware_mocks

# python-escpos parses its printer-capabilities JSON in every process that imports it (the cloud,
# each agent and CLI run the tests start), and caches the result in a new temporary folder each
# time: 0.2 to 0.5 s a process and a folder left in /tmp. The suite's processes share one cache,
# made once before they start (after each reinstall), so no two processes ever write it at once.
ESCPOS_CACHE := $(CURDIR)/build/escpos-capabilities
pytest coverage: export ESCPOS_CAPABILITIES_PICKLE_DIR := $(ESCPOS_CACHE)

$(ESCPOS_CACHE)/.made: $(VENV)/.installed
	mkdir -p $(ESCPOS_CACHE)
	ESCPOS_CAPABILITIES_PICKLE_DIR=$(ESCPOS_CACHE) $(BIN)/python -c "import escpos.capabilities"
	touch $@

# Four workers (pytest-xdist) on two cores: most tests wait on processes, sockets and ptys, not
# on the CPU (three kept ~1.5 cores busy). Modules go to the workers longest first, by
# tests/module_seconds.json (see tests/conftest.py and `make test-times`).
# `make pytest PYTEST_ARGS=tests/e2e` runs a part alone.
PYTEST_ARGS ?= --numprocesses 4 --dist loadfile --no-loadscope-reorder

pytest: setup $(ESCPOS_CACHE)/.made
	$(BIN)/pytest $(PYTEST_ARGS)

# Runs the whole suite and records each module's seconds in tests/module_seconds.json, the order
# in which the modules are handed to the workers, longest first (tests/conftest.py). Refresh it on
# a quiet machine after adding or much changing slow modules, and commit it.
test-times: export DOCKSIDE_RECORD_MODULE_SECONDS := $(CURDIR)/tests/module_seconds.json
test-times: pytest

# The agent binary is built before the tests that run it (tests/e2e/test_agent_binary.py would
# build it in its fixture otherwise): a build step, not a test, and a minute of one worker's time.
test: lint typecheck agent-binary pytest

# Line and branch coverage (.coveragerc) of the whole suite, the cloud, agent and mock processes
# the tests start included (not the agent binary): `.ci/run` runs it after `make test`. Prints
# each package's figure and fails when dockside/, cloud/ and edge_agent/ together fall below
# COVERAGE_FLOOR, set just under the figure README.md states (94.0%, 7 Dec 2026). Under coverage
# Python runs several times slower: hang deadlines stretch three times (tests/deadlines.py, and
# pytest-timeout's 180 s here). Per file: build/coverage/report.txt.
COVERAGE_FLOOR ?= 93
PRODUCT_FILES := dockside/*,cloud/*,edge_agent/*

coverage: setup $(ESCPOS_CACHE)/.made
	rm -rf build/coverage
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS) --timeout 540
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report --include='$(PRODUCT_FILES),hardware_mocks/*' > build/coverage/report.txt
	@for part in dockside cloud edge_agent hardware_mocks; do \
		printf '%-16s %s%%\n' "$$part/" "$$($(BIN)/coverage report --include="$$part/*" --format=total)"; \
	done
	@echo "dockside/, cloud/ and edge_agent/ together (floor $(COVERAGE_FLOOR)%):"
	@$(BIN)/coverage report --include='$(PRODUCT_FILES)' --format=total --fail-under=$(COVERAGE_FLOOR)

# Every bench script prints one JSON object; run them as modules so they can share bench/stack.py.
BENCHES := $(basename $(notdir $(filter-out bench/__init__.py bench/stack.py bench/provision.py bench/demo.py bench/demo_data.py,$(wildcard bench/*.py))))

bench: setup
	@set -e; for name in $(BENCHES); do echo "== bench/$$name.py"; $(BIN)/python -m bench.$$name; done

# The one-file agent binary (installers/dockside-agent.spec). Rebuilt only when the agent's
# sources, the spec or the dependencies change: CI runs this on every submission.
AGENT_SOURCES := $(shell find edge_agent dockside -name '*.py' -o -name '*.json' -o -name '*.j2' -o -name '*.zpl' 2>/dev/null)

agent-binary: dist/dockside-agent

dist/dockside-agent: $(AGENT_SOURCES) installers/dockside-agent.spec installers/dockside_agent_entry.py $(VENV)/.installed $(STUBS)
	cd installers && ../$(BIN)/pyinstaller --noconfirm --log-level WARN \
		--distpath ../dist --workpath ../build/agent-binary dockside-agent.spec
	@ls -l $@

clean:
	rm -rf $(VENV) .demo build dist *.egg-info dockside/v1/*_pb2*.py dockside/v1/*_pb2*.pyi
