"""stack=docker: ZenML's local Docker orchestrator runs every step of a fine-tuning run in a container of its own,
on podman's Docker API (the engine the docker deployer's tests use), from the offline base image, with the
project's stores mounted: the run succeeds, its outputs land where a local run's would, and the engine holds one
exited container per step (kept for the test; a run removes them after a success)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_py

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUICK = ["data.size=40", "trainer.epochs=2", "progress=false", "model.num_layers=2", "evaluation.max_examples=4",
         "evaluation.max_new_tokens=32", "data.split.min_examples=5"]


def test_a_fine_tuning_run_with_every_step_in_a_container(engine, tmp_path):
    import docker
    from zenml.client import Client

    from rcatune.stacks import STEP_LABEL, remove_step_containers

    client = docker.DockerClient(base_url=engine)
    remove_step_containers(engine)
    run_dir = tmp_path / "run"
    run_py("stack=docker", f"stack.containers.docker_host={engine}", "stack.containers.keep=true", *QUICK,
           f"hydra.run.dir={run_dir}", timeout=1500)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded"
    assert (run_dir / "training" / "model").is_dir() and (run_dir / "evaluation" / "report.md").is_file()
    assert summary["mlflow"]["run_id"] and summary["decisions"]["zenml_model_version"]

    run = Client().get_pipeline_run(summary["zenml_run"])
    assert run.stack.components["orchestrator"][0].flavor_name == "local_docker"
    assert all(step.status.value == "completed" for step in run.steps.values()) and len(run.steps) >= 8

    # one container per step, each exited 0, from the offline base image, the stores mounted at their own paths
    containers = client.containers.list(all=True, filters={"label": STEP_LABEL})
    assert len(containers) == len(run.steps)
    for container in containers:
        container.reload()
        state = container.attrs["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0)
        assert "rcatune-base" in container.attrs["Config"]["Image"]
        assert container.attrs["Config"]["Entrypoint"][-1] == "zenml.entrypoints.entrypoint"
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert str(run_dir) in mounts and mounts[str(run_dir)]["RW"]
    assert remove_step_containers(engine) == len(run.steps)  # what a run that keeps none does after success
    assert not client.containers.list(all=True, filters={"label": STEP_LABEL})
