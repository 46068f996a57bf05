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

# tools: Node under .tools/ runs the extension's wire.js against the Python protocol
# (tests/unit/extension) and the CDK synthesis (tests/infrastructure).
test: lint typecheck chromium tools
	$(BIN)/pytest -q

unit: $(STAMP) tools
	$(BIN)/pytest -q tests/unit

# --- Deploy to AWS (CDK). Node 22 and a pinned aws-cdk CLI install under .tools/ (no
# global installs); synth needs no AWS credentials. STAGE picks the stage (-c stage=...).
NODE_PKG := node-linux-$(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)@22.23.3
CDK_PKG := aws-cdk@2.1148.1
TOOLS := .tools
TOOLS_STAMP := $(TOOLS)/.installed-node22.23.3-cdk2.1148.1
STAGE ?= dev
CDK_CONTEXT ?=
CDK := PATH="$(CURDIR)/$(TOOLS)/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
	CDK_DISABLE_CLI_TELEMETRY=true $(TOOLS)/node_modules/.bin/cdk --no-notices
CDK_ARGS := -c stage=$(STAGE) $(CDK_CONTEXT)

.PHONY: tools synth diff deploy destroy

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error $(NODE_PKG) $(CDK_PKG)
	touch $@

synth: $(STAMP) $(TOOLS_STAMP)
	$(CDK) synth $(CDK_ARGS) --quiet
	# W3005 (DependsOn already implied by a GetAtt) is how CDK orders every function
	# after its role's policy; redundant, harmless. Any other warning or error fails.
	$(BIN)/cfn-lint --ignore-checks W3005 -- cdk.out/TabRelay-$(STAGE).template.json

diff: $(STAMP) $(TOOLS_STAMP)
	$(CDK) diff $(CDK_ARGS)

deploy: $(STAMP) $(TOOLS_STAMP)
	$(CDK) deploy $(CDK_ARGS) --require-approval broadening \
		--outputs-file cdk.out/outputs-$(STAGE).json

destroy: $(STAMP) $(TOOLS_STAMP)
	$(CDK) destroy $(CDK_ARGS)

# --- Local mode (docs/local.md): the whole gateway on this machine, from the CDK template.
PORT ?= 8765
.PHONY: run token dlq

run: $(STAMP)
	$(BIN)/python -m emulator run --port $(PORT)

# What sits in each DLQ of the `make run` on PORT (run it in another terminal).
dlq: $(STAMP)
	@$(BIN)/python -m emulator dlq --port $(PORT)

# The token is the last line of the output, alone.
token: $(STAMP)
	@test -n "$(ROLE)" -a -n "$(TENANT)" -a -n "$(CLIENT)" || \
		{ echo "usage: make token ROLE=browser|consumer TENANT=t CLIENT=id" >&2; exit 2; }
	@$(BIN)/python -m emulator token --role "$(ROLE)" --tenant "$(TENANT)" --client "$(CLIENT)"

# Debian's Chromium for the real-browser tests (tests/browser). Idempotent:
# returns at once when /usr/bin/chromium is already there. Needs root (CI is).
.PHONY: chromium
chromium:
	@test -x /usr/bin/chromium || { \
	  apt-get update -qq -o DPkg::Lock::Timeout=600 && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
	    --no-install-recommends chromium fonts-dejavu-core; }
	@/usr/bin/chromium --version

# --- Benchmarks (issue 7): cost model, local load, capacity, cold start. Writes
# bench/report.md, bench/results.json and PNG plots; under 10 minutes on 2 cores.
.PHONY: bench
bench: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/python -m bench

# --- Fuzzing (issue 10): at least 10,000 random and adversarial frames from both roles
# and two tenants through the real handlers and workers on moto. Prints the counts and
# writes fuzz/out/fuzz.json; fails unless every count is 0. SEED and FRAMES replay a run.
SEED ?= 1
FRAMES ?= 10000
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python -m fuzz --seed $(SEED) --frames $(FRAMES)
