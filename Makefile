# rcatune: `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
# Training the tiny model: 2 threads ran 2x faster than 1 on an idle 2-core machine. The tests use
# 1 thread (small models, a loaded machine: see FIELD-NOTES) unless OMP_NUM_THREADS is set.
RUN_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: help setup run test test-fast lint lock clean-state zenml-runs zenml-models mlflow-ui

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned set (skipped when done)

run: setup  ## run the default pipeline on embedded defaults
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(RUN_THREADS)} $(PY) run.py

test: setup  ## run the test suite (unit + integration with real local stores)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest

test-fast: setup  ## unit tests only
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -m "not integration and not slow"

lint: setup  ## ruff
	$(VENV)/bin/ruff check rcatune steps pipelines tests run.py

lock: setup  ## rewrite constraints.txt from the current .venv
	{ echo "# Versions tested together (pip constraints). Regenerate: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i '^rcatune' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' \
	  | grep -v -E '^(nvidia-|triton==)'; } > constraints.txt

zenml-runs: setup  ## list ZenML pipeline runs in the project store
	RCATUNE_HOME=$${RCATUNE_HOME:-$(CURDIR)/.rcatune}; \
	ZENML_CONFIG_PATH=$$RCATUNE_HOME/zenml/config ZENML_REPOSITORY_PATH=$$RCATUNE_HOME ZENML_ANALYTICS_OPT_IN=false \
	$(VENV)/bin/zenml pipeline runs list

zenml-models: setup  ## list registered model versions and their stages in the project store
	RCATUNE_HOME=$${RCATUNE_HOME:-$(CURDIR)/.rcatune}; \
	ZENML_CONFIG_PATH=$$RCATUNE_HOME/zenml/config ZENML_REPOSITORY_PATH=$$RCATUNE_HOME ZENML_ANALYTICS_OPT_IN=false \
	$(VENV)/bin/zenml model version list

mlflow-ui: setup  ## MLflow UI on 127.0.0.1:5000 over the project store
	RCATUNE_HOME=$${RCATUNE_HOME:-$(CURDIR)/.rcatune}; MLFLOW_DISABLE_TELEMETRY=true \
	$(VENV)/bin/mlflow ui --host 127.0.0.1 --backend-store-uri sqlite:///$$RCATUNE_HOME/mlflow/mlflow.db

clean-state:  ## delete the state folder (runs, ZenML store, MLflow store)
	rm -rf $${RCATUNE_HOME:-.rcatune}
