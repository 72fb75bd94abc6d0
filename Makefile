# Entry points for people and CI. `make demo` and `make test` each install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV       ?= .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
APT_STAMP  := .cache/apt-installed
# Debian packages the sandbox and tests use: Prometheus (and promtool), Alertmanager, SQLite CLI,
# and Chromium with its WebDriver for the browser tests (tests/browser).
APT_PKGS   := prometheus prometheus-alertmanager sqlite3 chromium chromium-driver

.PHONY: help install system-deps sandbox-build sandbox-up sandbox-down down demo demo-alert assess-demo test lint typecheck unit bench clean

help:
	@echo "make demo    - bring the sandbox up, break it, run the rollback notebook headlessly, leave evidence"
	@echo "make demo-alert - the same, started by a Prometheus alert via Alertmanager and runbook serve"
	@echo "make test    - lint, type checks and the whole pytest suite (builds/starts the sandbox)"
	@echo "make assess-demo - the read-only assessment notebook on the bundled bad-deploy replay"
	@echo "make bench   - benchmarks (numbers and ratios printed)"
	@echo "make down    - stop the sandbox"
	@echo "make install - .venv with the project editable, JupyterLab, sandbox and developer tools"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[lab,sandbox,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# Debian packages; needs root (as on this machine kind and in CI). Idempotent.
# policy-rc.d keeps Debian from starting its own Prometheus service on 0.0.0.0:9090:
# the sandbox runs its own, on loopback.
system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  status=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; [ $$status -eq 0 ] || exit $$status; \
	fi

# Control-plane binaries from the Go module proxy, built once and cached (idempotent).
sandbox-build: install
	$(VENV)/bin/runbook sandbox build

sandbox-up: install system-deps sandbox-build
	$(VENV)/bin/runbook sandbox up

sandbox-down: install
	$(VENV)/bin/runbook sandbox down

down: sandbox-down

demo: install system-deps sandbox-build
	$(PY) scripts/demo.py

# A bad deploy rolled back by an alert alone: Prometheus rules, Alertmanager, runbook serve.
demo-alert: install system-deps sandbox-build
	$(PY) scripts/demo_alert.py

# The read-only assessment on the bundled replay of a bad deploy: no cluster needed.
assess-demo: install
	$(VENV)/bin/runbook run assess -p replay_csv notebooks/data/bad_deploy.csv \
		-p deployed_at 2026-11-20T14:00:00+00:00 --output-dir evidence --quiet

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest tests/unit -q

test: install system-deps sandbox-build lint typecheck
	$(VENV)/bin/pytest

bench: install
	$(PY) benchmarks/bench_decision.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache evidence
