# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
INTEGRATIONS := $(wildcard integrations/*/pyproject.toml)
STAMP := $(VENV)/.installed

.PHONY: install sandbox chromium demo lint test test-fast bench clean

install: $(STAMP) sandbox chromium

# Generated code is verified only inside bubblewrap (see sls_router/sandbox.py): install it
# where it is missing (Debian/Ubuntu; root or sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
sandbox:
	@command -v bwrap >/dev/null 2>&1 || $(SUDO) apt-get install -y -q bubblewrap \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q bubblewrap; }

# The dashboard's test drives Debian's headless Chromium: install it where it is missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -q chromium \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when a project file changed; editable installs pick up code changes by themselves.
$(STAMP): $(VENV)/bin/python pyproject.toml constraints.txt $(INTEGRATIONS)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[test]" $(foreach p,$(dir $(INTEGRATIONS)),-e "./$(p)[test]")
	touch $(STAMP)

# The main job: 24,000 recorded log-parsing requests answered by 8 real LLMs, routed by
# sls-router learning without labels, against the baselines; writes out/demo/.
DEMO_STRATEGIES := sls,best_single,cheapest,oracle,cascade,random,static_knn

demo: install
	$(VENV)/bin/sls-router bench --data sls_router/data/replay/logparsing.jsonl.gz \
		--feedback label-free --strategies $(DEMO_STRATEGIES) \
		--json out/demo/bench.json --report out/demo

# ruff (lint and format check) and mypy, configured in pyproject.toml
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# every test: tests/unit (fast, no server), tests/integration (PostgreSQL, subprocesses,
# the sandbox), and each integration's own tests, after the lint
test: lint
	$(PY) -m pytest -q

# the quick loop while working: unit tests without a server or the slow ones
test-fast: install
	$(PY) -m pytest -q tests/unit -m "not postgres and not slow"

clean:
	rm -rf $(VENV) .pytest_cache
