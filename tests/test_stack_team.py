"""stack=team: a pipeline run lands on a real ZenML server and a real MLflow tracking server, both started by the
project's own module (`make team-start`) on 127.0.0.1 with basic authentication; the login never reaches the run's
files, its logs, MLflow or the server's stack."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
import requests

from tests.conftest import ROOT, run_py

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUICK = ["data.size=40", "trainer.epochs=2", "progress=false", "model.num_layers=2", "evaluation.max_examples=4",
         "evaluation.max_new_tokens=32", "data.split.min_examples=5"]


@pytest.fixture(scope="module")
def team(state_home):
    from rcatune import team as servers
    from rcatune.errors import RcatuneError
    from rcatune.processes import free_port

    try:
        info = servers.start(free_port(), free_port(), quiet=True)
    except RcatuneError as error:
        if os.environ.get("RCATUNE_REQUIRE_TEAM") == "1":
            raise
        pytest.skip(f"no team servers here ({error})")
    creds = servers.credentials()
    yield {"zenml": info["zenml"]["url"], "mlflow": info["mlflow"]["url"], **creds}
    servers.stop()


def zenml_session(team) -> requests.Session:
    session = requests.Session()
    login = session.post(f"{team['zenml']}/api/v1/login", timeout=30,
                         data={"username": team["zenml_username"], "password": team["zenml_password"]})
    login.raise_for_status()
    session.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return session


def test_a_pipeline_run_lands_on_the_team_servers_and_the_login_stays_secret(team, tmp_path, state_home):
    run_dir = tmp_path / "run"
    result = run_py("stack=team", f"stack.zenml_url={team['zenml']}", f"stack.mlflow_url={team['mlflow']}", *QUICK,
                    f"hydra.run.dir={run_dir}")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["status"] == "succeeded" and summary["zenml_server"] == team["zenml"]
    assert f"on {team['zenml']}" in result.stdout and f"UI: {team['mlflow']}" in result.stdout

    # ZenML: the run, its artifacts (in the team's artifact store) and the model version are on the server
    zenml = zenml_session(team)
    runs = zenml.get(f"{team['zenml']}/api/v1/runs", params={"name": summary["zenml_run"]}, timeout=30).json()
    assert runs["total"] == 1 and runs["items"][0]["body"]["status"] == "completed"
    artifacts = zenml.get(f"{team['zenml']}/api/v1/artifact_versions", params={"size": 100}, timeout=30).json()
    uris = [a["body"]["uri"] for a in artifacts["items"]]
    assert uris and all(uri.startswith(str(state_home / "team" / "artifacts")) for uri in uris)
    model, number = summary["decisions"]["zenml_model_version"].rsplit(" v", 1)
    versions = zenml.get(f"{team['zenml']}/api/v1/model_versions", params={"size": 100}, timeout=30).json()["items"]
    assert any(v["name"] == number and v["body"]["model"]["name"] == model for v in versions)
    assert "<html" in zenml.get(f"{team['zenml']}/", timeout=30).text.lower()  # the dashboard is served
    assert requests.get(f"{team['zenml']}/api/v1/runs", timeout=30).status_code == 401
    # ...and not in the project's own store
    local_db = state_home / "zenml" / "config" / "local_stores" / "default_zen_store" / "zenml.db"
    if local_db.exists():
        with sqlite3.connect(local_db) as db:
            assert not db.execute("SELECT 1 FROM pipeline_run WHERE name = ?", (summary["zenml_run"],)).fetchall()

    # MLflow: the run with its metrics and artifacts, and the registered version, on the tracking server
    auth = (team["mlflow_username"], team["mlflow_password"])
    assert requests.get(f"{team['mlflow']}/api/2.0/mlflow/experiments/search", params={"max_results": 5},
                        timeout=30).status_code == 401
    run = requests.get(f"{team['mlflow']}/api/2.0/mlflow/runs/get", params={"run_id": summary["mlflow"]["run_id"]},
                       auth=auth, timeout=30).json()["run"]
    assert run["info"]["status"] == "FINISHED" and run["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    assert {"data_read", "eval_loss"} <= {m["key"] for m in run["data"]["metrics"]}
    stored = list((state_home / "team" / "mlflow" / "artifacts").rglob("*"))
    assert any(summary["mlflow"]["run_id"] in str(path) for path in stored)
    name, number = summary["decisions"]["mlflow_model_version"].rsplit(" v", 1)
    registered = requests.get(f"{team['mlflow']}/api/2.0/mlflow/model-versions/get",
                              params={"name": name, "version": number}, auth=auth, timeout=30)
    assert registered.status_code == 200, registered.text
    assert requests.get(f"{team['mlflow']}/", auth=auth, timeout=30).status_code == 200  # the UI

    # the login: only in the servers' own credential files, never in the run's files, its output, MLflow's
    # params or the stack the server holds (a secret reference there)
    secrets_ = [team["zenml_password"], team["mlflow_password"]]
    for path in run_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            text = path.read_bytes()
            assert not any(s.encode() in text for s in secrets_), path
    assert not any(s in result.stdout + result.stderr for s in secrets_)
    assert not any(s in json.dumps(run["data"]) for s in secrets_)
    tracker = zenml.get(f"{team['zenml']}/api/v1/components", params={"name": "rcatune-team-mlflow", "hydrate": True},
                        timeout=30).json()["items"][0]
    configuration = tracker["metadata"]["configuration"]
    assert configuration["tracking_password"] == "{{rcatune_mlflow.password}}"
    assert not any(s in json.dumps(configuration) for s in secrets_)


def test_a_team_stack_without_a_login_says_which_variables_to_set(team, tmp_path):
    env_free = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("ZENML_STORE_", "MLFLOW_TRACKING_"))}
    try:
        # a server this state folder did not start: no credentials file to fall back on
        result = run_py("stack=team", "stack.zenml_url=http://127.0.0.1:9", f"stack.mlflow_url={team['mlflow']}",
                        *QUICK, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    finally:
        os.environ.update(env_free)
    assert result.returncode != 0
    assert "ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD or ZENML_STORE_API_KEY" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def check_stack(*args: str, env: dict):
    import subprocess
    import sys



    return subprocess.run([sys.executable, "-m", "rcatune.stack_check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **env})


def test_the_kubernetes_stack_registers_on_the_server_validates_and_its_step_jobs_pass_the_api_server(
        team, cluster, tmp_path):
    """stack=kubernetes without a cluster to run on: its components register on the ZenML server, the stack
    validates as ZenML validates it before a run (the context must be in the kubeconfig), and the Jobs ZenML's
    orchestrator would run for the training step (GPU nodes) and the others (CPU) pass kubernetes-validate and a
    server-side dry run on a real API server."""
    import kubernetes_validate
    from kubernetes import client, config

    stack = ["stack=kubernetes", f"stack.zenml_url={team['zenml']}", f"stack.mlflow_url={team['mlflow']}",
             "stack.values.kube_context=testbed", "stack.values.namespace=default"]
    env = {"KUBECONFIG": str(cluster.kubeconfig)}
    result = check_stack(*stack, "--jobs", str(tmp_path / "jobs"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stack rcatune-kubernetes" in result.stdout and "registered and valid" in result.stdout

    zenml = zenml_session(team)
    orchestrator = zenml.get(f"{team['zenml']}/api/v1/components", timeout=30,
                             params={"name": "rcatune-k8s-orchestrator", "hydrate": True}).json()["items"][0]
    assert orchestrator["body"]["flavor_name"] == "kubernetes"
    assert orchestrator["metadata"]["configuration"]["kubernetes_context"] == "testbed"

    train = json.loads((tmp_path / "jobs" / "train_model.json").read_text())
    other = json.loads((tmp_path / "jobs" / "other-steps.json").read_text())
    batch = client.BatchV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    for job in (train, other):
        kubernetes_validate.validate(job, "1.30.0", strict=True)
        created = batch.create_namespaced_job("default", job, dry_run="All")
        container = created.spec.template.spec.containers[0]
        assert container.command[:3] == ["python", "-m", "zenml.entrypoints.entrypoint"]
    train_pod = batch.create_namespaced_job("default", train, dry_run="All").spec.template.spec
    assert train_pod.containers[0].resources.limits == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "1"}
    assert train_pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [t.key for t in train_pod.tolerations] == ["nvidia.com/gpu"]
    other_pod = batch.create_namespaced_job("default", other, dry_run="All").spec.template.spec
    assert other_pod.containers[0].resources.limits == {"cpu": "2", "memory": "8Gi"}
    assert not other_pod.node_selector and not other_pod.tolerations

    # a context the kubeconfig does not have: refused by ZenML's own validation, in one line
    wrong = check_stack(*stack[:-2], "stack.values.kube_context=nowhere", "stack.values.namespace=default", env=env)
    assert wrong.returncode == 2 and "does not validate" in wrong.stderr and "nowhere" in wrong.stderr
    assert "Traceback" not in wrong.stderr
