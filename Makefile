# WardLens: one entry point for set-up, running, tests and packaging.
# Each target installs only what it needs into .venv: `make run` the application's runtime (about 0.9 GB),
# `make test` adds the test tools and the training stack its pipeline tests need (about 1.8 GB in all),
# `make train` the training stack; `make package` builds from its own torch-free .venv-build.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
TRAIN_STAMP := $(VENV)/.installed-train
ARGS ?=

.PHONY: setup run test lint system-deps train package package-test deb deb-test bench clean

# System libraries Qt needs (installed when we are root, else named so an admin can install them).
system-deps:
	@bash installer/system-deps.sh

$(RUN_STAMP): pyproject.toml
	@$(MAKE) --no-print-directory system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $(RUN_STAMP)

$(TEST_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -e ".[dev,train]"
	@touch $(TEST_STAMP)

$(TRAIN_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -e ".[train]"
	@touch $(TRAIN_STAMP)

setup: $(RUN_STAMP)

# `make run ARGS="--db /path/site.db"` passes arguments on (see `python main.py --help`).
run: $(RUN_STAMP)
	$(PY) main.py $(ARGS)

test: $(TEST_STAMP)
	@bash installer/test-deps.sh
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(VENV)/bin/lint-imports

lint: $(TEST_STAMP)
	$(VENV)/bin/lint-imports

train: $(TRAIN_STAMP)
	$(PY) -m training readmission
	$(PY) -m training los
	$(PY) -m training xray

bench: $(RUN_STAMP)
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

# The Debian package (dist/wardlens_<version>_amd64.deb) from the frozen bundle.
deb:
	bash installer/build.sh --if-needed
	bash installer/build-deb.sh

# Install the package, run the smoke test from /opt/wardlens, remove it and check nothing is left (root).
deb-test: deb
	bash installer/deb-test.sh
