"""deployer=kubernetes against a real kube-apiserver and controller manager (tests/kube_testbed.py): create,
patch and wait for rollouts, roll back as `kubectl rollout undo` does, undo a rollout that never becomes
ready, and report what the API server refuses; the manifests pass `kubernetes-validate --strict`."""

from __future__ import annotations

import json
import os

import pytest

from rcatune.config.deployer import KubernetesDeployerConfig
from rcatune.config.serving import ServingConfig
from rcatune.deploy.records import Release

KUBE_REQUIRED = os.environ.get("RCATUNE_REQUIRE_KUBE") == "1"


def _release(version: str) -> Release:
    return Release(registry_name="rcatune-rca", version=version, served_name=f"rcatune-rca-v{version}",
                   folder="/nonexistent")


def test_manifests_pass_kubernetes_validate_strict():
    import kubernetes_validate

    from rcatune.deploy.kubernetes import manifests

    config = KubernetesDeployerConfig(hpa_max_replicas=3, replicas=2)
    objects = manifests("rcatune-x", _release("3"), "rcatune-serve:rcatune-rca-v3", config,
                        ServingConfig(), token_secret="rcatune-x-token")
    assert [o["kind"] for o in objects] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for version in ("1.25.0", "1.30.0", "1.34.0"):
        for manifest in objects:
            kubernetes_validate.validate(manifest, version, strict=True)  # raises on any problem
    deployment = objects[0]["spec"]
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = deployment["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["runAsNonRoot"] and container["resources"]["limits"]
    assert "--token-file" not in container["args"]  # the token comes from a Secret, never an argument
    assert container["env"][-1]["valueFrom"]["secretKeyRef"] == {"name": "rcatune-x-token", "key": "token"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.kube_testbed import Testbed, binaries

    if binaries() is None:
        reason = "the Kubernetes testbed is not built: scripts/kube-build.sh (make kube)"
        if KUBE_REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    import urllib3

    urllib3.disable_warnings()
    testbed = Testbed(tmp_path_factory.mktemp("kube")).start()
    yield testbed
    testbed.stop()


def _deployer(cluster, **fields):
    from rcatune.deploy.kubernetes import KubernetesDeployer

    fields = {"kubeconfig": str(cluster.kubeconfig), "rollout_timeout_s": 60, **fields}
    return KubernetesDeployer(KubernetesDeployerConfig(**fields), ServingConfig())


@pytest.mark.integration
@pytest.mark.slow
def test_deploy_patch_roll_back_and_stop_like_kubectl(cluster):
    from rcatune.deploy import DeploymentError

    deployer = _deployer(cluster, name="flow", hpa_max_replicas=2)
    first = deployer.deploy(_release("1"))
    assert (first.version, first.previous, first.detail["revision"]) == ("1", None, "1")
    assert first.endpoint == "http://rcatune-flow.default.svc.cluster.local:80"
    second = deployer.deploy(_release("2"))
    assert (second.version, second.previous, second.detail["revision"]) == ("2", "1", "2")
    assert deployer.deploy(_release("2")).changed is False  # the same template: nothing to do

    back = deployer.rollback()
    assert (back.version, back.previous) == ("1", "2")
    status = deployer.status()
    assert (status["version"], status["revision"], status["ready_replicas"]) == ("1", "3", 1)
    assert status["image"] == "rcatune-serve:rcatune-rca-v1"
    assert deployer.rollback().version == "2"  # undo of the undo, as kubectl

    _, core, autoscaling = deployer.clients()
    assert core.read_namespaced_service("rcatune-flow", "default").spec.ports[0].target_port == "http"
    assert autoscaling.read_namespaced_horizontal_pod_autoscaler("rcatune-flow", "default").spec.max_replicas == 2

    apps = deployer.clients()[0]
    apps.patch_namespaced_deployment("rcatune-flow", "default", {"spec": {"paused": True}})
    with pytest.raises(DeploymentError, match="is paused: resume it before rolling back"):
        deployer.rollback()
    apps.patch_namespaced_deployment("rcatune-flow", "default", {"spec": {"paused": False}})

    stopped = deployer.stop()
    assert (stopped.version, stopped.previous) == (None, "2") and deployer.status()["deployed"] is False
    with pytest.raises(DeploymentError, match="does not exist"):
        deployer.rollback()


@pytest.mark.integration
@pytest.mark.slow
def test_a_rollout_that_never_becomes_ready_is_undone_and_a_refused_manifest_changes_nothing(cluster):
    from rcatune.deploy import DeploymentError

    deployer = _deployer(cluster, name="faults")
    deployer.deploy(_release("1"))
    with pytest.raises(DeploymentError, match="nothing to roll back to: .* has no revision before 1"):
        deployer.rollback()

    stuck = _deployer(cluster, name="faults", image="rcatune-serve:never-ready", rollout_timeout_s=5)
    with pytest.raises(DeploymentError, match=r"rollout of v2 was not ready within 5 s .*rolled back to v1"):
        stuck.deploy(_release("2"))
    status = deployer.status()
    assert (status["version"], status["available_replicas"]) == ("1", 1)

    refused = _deployer(cluster, name="faults", requests={"cpu": "lots", "memory": "1Gi"})
    with pytest.raises(DeploymentError, match="API server refused the manifests of v3: .*still serving v1"):
        refused.deploy(_release("3"))
    assert deployer.status()["version"] == "1"
    deployer.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_run_py_deploys_a_registered_version_to_kubernetes_and_records_it(cluster, servable_versions, tmp_path,
                                                                          monkeypatch):
    from tests.conftest import run_py

    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    number = servable_versions[0]["number"]
    run_py("pipeline=deployment", "deployer=kubernetes", "deployer.name=viarun", f"deployment.version={number}",
           "progress=false", f"hydra.run.dir={tmp_path}")
    record = json.loads((tmp_path / "run_summary.json").read_text())["deployment"]
    assert (record["target"], record["version"], record["model"]) == ("kubernetes", number, f"rcatune-rca-v{number}")
    from zenml.client import Client

    assert Client().get_model_version("rcatune-rca", "production").number == int(number)
    _deployer(cluster, name="viarun").stop()
