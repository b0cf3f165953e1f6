# WardLens: one entry point for set-up, running, tests and packaging.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint system-deps train package package-test bench clean

# System libraries Qt needs (installed when we are root, else named so an admin can install them).
system-deps:
	@bash installer/system-deps.sh

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,train]"
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) main.py

test: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(VENV)/bin/lint-imports

lint: setup
	$(VENV)/bin/lint-imports

train: setup
	$(PY) -m training readmission
	$(PY) -m training los
	$(PY) -m training xray

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache

# Packaged application (PyInstaller one-folder) from .venv-build (no torch): dist/WardLens/ and the tarball.
package:
	bash installer/build.sh

# Build when stale, then run the frozen bundle headless under strace (installer/smoke_test.py).
package-test:
	bash installer/build.sh --if-needed
	@if ! command -v strace >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing strace (the smoke test's network check)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strace >/dev/null; fi
	$(PYTHON) installer/smoke_test.py
