# dabba — make targets. Everything installs itself: a fresh machine needs only `make demo`
# and `make test` (plus Go and Python 3.11, which the machine image provides).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export DABBA_HOME ?= $(HOME)/.cache/dabba
export NO_PROXY := 127.0.0.1,localhost
LOCALCLUSTER := PYTHONPATH=$(CURDIR)/e2e $(BIN)/python -m localcluster
PYTEST_ARGS ?=

.PHONY: help venv deps binaries cluster-up cluster-down cluster-status lint fmt unit \
        integration e2e test chaos demo clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)  ## create .venv with dabba and the dev tools

deps:  ## system packages: Prometheus from Debian (root or sudo), and a Go toolchain check
	@command -v go >/dev/null || { echo "Go >= 1.21 is required to build the control plane" >&2; exit 1; }
	@if ! command -v prometheus >/dev/null; then \
	  echo "[dabba] installing prometheus from Debian"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus >/dev/null; \
	fi

binaries: venv deps  ## build etcd, kubernetes, kwok, helm from Go modules (cached in $DABBA_HOME)
	$(LOCALCLUSTER) build

cluster-up: binaries  ## start the local control plane + Prometheus (idempotent)
	$(LOCALCLUSTER) up

cluster-down: venv  ## stop every process cluster-up started (keeps the binary cache)
	$(LOCALCLUSTER) down

cluster-status: venv  ## show the running cluster's endpoints and PIDs
	$(LOCALCLUSTER) status

lint: venv  ## ruff, mypy --strict, import-linter, hadolint, shellcheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck -x -P SCRIPTDIR .ci/run e2e/localcluster/build.sh e2e/kind/run.sh

fmt: venv  ## apply ruff's formatting and autofixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: venv  ## pure-core unit tests (no cluster)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: binaries  ## integration tests against the real API server
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

e2e: binaries  ## e2e suite against the local cluster (or any KUBECONFIG with DABBA_E2E_KUBECONFIG)
	$(BIN)/pytest e2e $(PYTEST_ARGS)

test: lint binaries  ## everything CI runs: lint, type check, layers, unit, integration, e2e
	$(BIN)/pytest $(PYTEST_ARGS)

chaos: binaries  ## the reliability and security suite at full size (e2e/chaos; DABBA_CHAOS_SEED=n replays)
	DABBA_CHAOS_SCALE=full $(BIN)/pytest e2e/chaos -m chaos -s --timeout=5400 $(PYTEST_ARGS)

demo: cluster-up  ## bring the cluster up and show a sample Canary and MeshCertificate
	PYTHONPATH=$(CURDIR)/e2e $(BIN)/python e2e/demo.py

BENCH_STAMP := $(VENV)/.bench-installed-$(shell sha1sum pyproject.toml | cut -c1-12)
BENCH_ARGS ?=

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@rm -f $(VENV)/.bench-installed-*; touch $@

.PHONY: bench
bench: binaries $(BENCH_STAMP)  ## benchmarks on the local cluster (BENCH_ARGS, bench/README.md)
	PYTHONPATH=$(CURDIR)/e2e:$(CURDIR) $(BIN)/python -m bench $(BENCH_ARGS)

clean: cluster-down  ## stop the cluster and remove .venv (the binary cache stays)
	rm -rf $(VENV)
