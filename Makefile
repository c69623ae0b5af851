# The two commands of the README, plus helpers. Every target creates the
# environment first if it is missing (scripts/ensure-env, cached by lock hash).
PY := .venv/bin/python
export PYTHONPATH := $(CURDIR)
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

# Tests run on one worker process per core (at most 4): a module, and the modules on the shared
# `hotdog serve` stack (tests/e2e/stack/), stay on one worker (tests/conftest.py), in collection
# order, so the two longest (the stack, Airflow) start first. PARALLEL= runs them in one process.
PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile --no-loadscope-reorder

.PHONY: env run demo test test-fast bench lock

env:
	@scripts/ensure-env >/dev/null

run: env
	@$(PY) -m flows.cli run --fresh

# About a minute of work after start-up: the tiny backbone on 30 images per category.
demo: env
	@$(PY) -m flows.cli run --fresh --workdir data/demo --backbone tiny --max-per-category 30 --epochs 3 \
		--min-accuracy 0 --max-regression 1

test: env
	$(PY) -m pytest -p no:cacheprovider $(PARALLEL) --durations=15

test-fast: env
	$(PY) -m pytest -p no:cacheprovider $(PARALLEL) -m "not slow"

bench: env
	$(PY) bench/ingest.py

# Re-resolve requirements.lock from pyproject.toml (needs uv: python -m pip install uv).
lock:
	python -m uv pip compile pyproject.toml --extra test --python-version 3.10 -o requirements.lock
