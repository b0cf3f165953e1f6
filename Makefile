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
