# The commands users run (see README.md). Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint typecheck unit

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet -e clients/python
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# --- Local mode (docs/local.md): the whole gateway on this machine, from the CDK template.
PORT ?= 8765
.PHONY: run token

run: $(STAMP)
	$(BIN)/python -m emulator run --port $(PORT)

# The token is the last line of the output, alone.
token: $(STAMP)
	@test -n "$(ROLE)" -a -n "$(TENANT)" -a -n "$(CLIENT)" || \
		{ echo "usage: make token ROLE=browser|consumer TENANT=t CLIENT=id" >&2; exit 2; }
	@$(BIN)/python -m emulator token --role "$(ROLE)" --tenant "$(TENANT)" --client "$(CLIENT)"
