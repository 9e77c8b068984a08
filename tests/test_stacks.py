"""Stack definitions and settings without a server: placeholders, the per-step pods a cluster stack asks for, the
login a server stack needs, and every conf/stack option composing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_placeholders_are_filled_and_a_missing_value_is_named(tmp_path):
    from rcatune.errors import ConfigError
    from rcatune.stacks import load_definition

    definition = load_definition(ROOT / "stacks" / "kubernetes.yaml", tmp_path, "https://mlflow.example.com",
                                 {"kube_context": "prod", "namespace": "ml", "artifact_path": "s3://b/z",
                                  "registry": "ghcr.io/acme/rcatune"})
    components = definition["components"]
    assert components["orchestrator"]["configuration"] == {"kubernetes_context": "prod", "kubernetes_namespace": "ml"}
    assert components["experiment_tracker"]["configuration"] == {
        "tracking_uri": "https://mlflow.example.com", "tracking_username": "{{rcatune_mlflow.username}}",
        "tracking_password": "{{rcatune_mlflow.password}}"}  # a secret reference, never the login itself
    with pytest.raises(ConfigError, match=r"needs stack.values.artifact_path \(and kube_context, namespace"):
        load_definition(ROOT / "stacks" / "kubernetes.yaml", tmp_path, None, {"registry": "r"})
    local = load_definition(ROOT / "stacks" / "local.yaml", tmp_path)
    assert local["components"]["artifact_store"]["configuration"]["path"] == f"{tmp_path}/zenml/artifacts"


def test_the_training_step_gets_the_gpu_pod_and_every_other_step_the_default_one():
    from rcatune.jobs import compose
    from rcatune.stacks import run_settings

    stack = compose(["stack=kubernetes", "stack.pods.training.gpus=8"]).config().stack
    pipeline, steps = run_settings(stack)
    assert pipeline == {"orchestrator.kubernetes": {"pod_settings": {
        "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}}}}
    train = steps["train_model"]["settings"]["orchestrator.kubernetes"]["pod_settings"]
    assert train["resources"]["limits"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "8"}
    assert train["node_selectors"] == {"nvidia.com/gpu.present": "true"}
    assert train["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert run_settings(compose([]).config().stack) == ({}, {})  # stack=local: nothing to add

    from zenml.integrations.kubernetes.flavors import KubernetesOrchestratorSettings

    KubernetesOrchestratorSettings(**steps["train_model"]["settings"]["orchestrator.kubernetes"])  # ZenML takes it


def test_a_step_in_two_pod_groups_is_refused():
    from rcatune.errors import ConfigError
    from rcatune.jobs import compose

    with pytest.raises(ConfigError, match="a step is named by two pod groups"):
        compose(["stack=kubernetes", "stack.pods.default.steps=[train_model]"])


def test_a_server_stack_takes_its_login_from_the_environment_and_never_from_yaml(tmp_path, monkeypatch):
    from rcatune.errors import ConfigError
    from rcatune.jobs import compose
    from rcatune.stacks import connect

    for key in list(os.environ):
        if key.startswith(("ZENML_STORE_", "MLFLOW_TRACKING_")):
            monkeypatch.delenv(key)
    for key in ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # connect changes them: monkeypatch restores them
    stack = compose(["stack=team", "stack.zenml_url=https://zenml.example.com",
                     "stack.mlflow_url=https://mlflow.example.com"]).config().stack
    with pytest.raises(ConfigError, match="ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD or ZENML_STORE_API_KEY"):
        connect(stack, tmp_path)
    # a refused login changes nothing: later runs of this process would otherwise talk to that server
    assert "ZENML_STORE_URL" not in os.environ and "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("ZENML_STORE_API_KEY", "key")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "token")
    monkeypatch.setenv("ZENML_STORE_URL", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    connection = connect(stack, tmp_path)
    assert connection.server and connection.mlflow_uri == "https://mlflow.example.com"
    assert connection.mlflow_artifact_root is None  # the tracking server's own artifact store
    assert os.environ["ZENML_STORE_URL"] == "https://zenml.example.com"
    assert Path(os.environ["ZENML_CONFIG_PATH"]).parent == connection.repository
    assert oct(connection.repository.stat().st_mode & 0o777) == "0o700"  # ZenML keeps its session token there
    with pytest.raises(ConfigError, match="needs a ZenML server"):
        connect(compose(["stack=kubernetes"]).config().stack, tmp_path)


@pytest.mark.parametrize("option", sorted(p.stem for p in (ROOT / "conf" / "stack").glob("*.yaml")))
def test_every_stack_option_composes_and_names_a_definition(option):
    from rcatune.jobs import compose

    stack = compose([f"stack={option}"]).config().stack
    assert (ROOT / "stacks" / stack.definition).is_file()


def test_a_container_stack_mounts_the_stores_at_their_own_paths_and_passes_no_login(tmp_path, monkeypatch):
    import sys

    from rcatune.jobs import compose
    from rcatune.stacks import run_settings

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2")
    monkeypatch.setenv("ZENML_STORE_PASSWORD", "hunter3")
    stack = compose(["stack=docker"]).config().stack
    project, run_dir = tmp_path / "project", tmp_path / "project" / "runs" / "r1"
    pipeline, steps = run_settings(stack, [project, run_dir, tmp_path / "state"], project)
    assert steps == {}
    assert pipeline["docker"] == {"parent_image": "localhost/rcatune-base:python3.11-bookworm", "skip_build": True}
    run_args = pipeline["orchestrator.local_docker"]["run_args"]
    volumes = run_args["volumes"]
    assert volumes[str(project)] == {"bind": str(project), "mode": "rw"}
    assert str(run_dir) not in volumes  # inside the project's mount already
    assert volumes[sys.prefix]["mode"] == "ro"  # this machine's venv, read-only
    assert run_args["environment"]["PATH"].startswith(f"{sys.prefix}/bin:")
    assert "hunter" not in repr(run_args)
    assert run_args["working_dir"] == str(project) and run_args["network_mode"] == "host"


def _printed_last(code: str) -> str:
    """The last line `python -c CODE` prints, from a fresh process (what it imported is its own)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0 and result.stdout.strip(), result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_a_run_does_not_activate_the_integrations_no_step_uses():
    """ZenML's activation of every installed integration is narrowed through the registry's own dict: if
    upstream stops reading it, torch and scikit-learn come back into every run (4.5 s) and this fails."""
    code = ("import sys; from rcatune.stacks import skip_unused_integrations; skip_unused_integrations(); "
            "from zenml.integrations.registry import integration_registry as r; r.activate_integrations(); "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    assert _printed_last(code) == "[]"
    assert _printed_last(code.replace("skip_unused_integrations(); ", "")) == "['sklearn', 'torch']"


def test_a_step_ends_without_importing_the_mlflow_flavors_no_one_loaded():
    """ZenML's MLflow tracker switches autologging off after every step by importing eight MLflow flavors
    (mlflow.pytorch imports torch). Replaced, it still switches off what was loaded, and no more; if upstream
    stops calling `disable_autologging` at a step's end, or renames it, this fails."""
    import inspect

    from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import MLFlowExperimentTracker

    assert "self.disable_autologging()" in inspect.getsource(MLFlowExperimentTracker.cleanup_step_run)
    code = ("import sys; from rcatune.stacks import skip_unloaded_autologging; skip_unloaded_autologging(); "
            "from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import "
            "MLFlowExperimentTracker as T; T.disable_autologging(None); print('torch' in sys.modules)")
    assert _printed_last(code) == "False"
    assert _printed_last(code.replace("skip_unloaded_autologging(); ", "")) == "True"  # upstream's imports torch
    # a flavor that was loaded and switched on is still switched off
    check = ("import mlflow.sklearn; from mlflow.utils.autologging_utils import autologging_is_disabled as off; "
             "mlflow.sklearn.autolog(); before = off('sklearn'); "
             "from rcatune.stacks import skip_unloaded_autologging; skip_unloaded_autologging(); "
             "from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import "
             "MLFlowExperimentTracker as T; T.disable_autologging(None); print(before, off('sklearn'))")
    assert _printed_last(check) == "False True"
