"""deployer=kubernetes against a real kube-apiserver and controller manager (tests/kube_testbed.py): create,
patch and wait for rollouts, roll back as `kubectl rollout undo` does, undo a rollout that never becomes
ready, and report what the API server refuses; the manifests pass `kubernetes-validate --strict`."""

from __future__ import annotations

import json

import pytest

from rcatune.config.deployer import KubernetesDeployerConfig
from rcatune.config.serving import ServingConfig
from rcatune.deploy.records import Release


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


def test_ab_manifests_pass_kubernetes_validate_strict_and_carry_no_store_url():
    import kubernetes_validate

    from rcatune.deploy.kubernetes_ab import ab_manifests

    target = {"url": "http://rcatune-x-control.default.svc.cluster.local:80", "version": "1", "model": "m",
              "experiment": {"id": "e", "store_url_env": "RCATUNE_AB_STORE_URL", "store_url": None}}
    objects = ab_manifests("rcatune-x", "default", target, _release("2"), "rcatune-serve:rcatune-rca-v1",
                           "RCATUNE_AB_STORE_URL", 2)
    assert [o["kind"] for o in objects] == ["Service", "ConfigMap", "Deployment"]
    for manifest in objects:
        kubernetes_validate.validate(manifest, "1.30.0", strict=True)
    router = objects[2]["spec"]["template"]["spec"]
    container = router["containers"][0]
    assert container["command"] == ["python3", "-m", "rcatune.deploy.router"]
    assert container["args"][-1] == "/etc/rcatune/ab/target.json" and container["volumeMounts"][0]["readOnly"]
    assert container["env"][1] == {"name": "RCATUNE_AB_STORE_URL", "valueFrom": {"secretKeyRef": {
        "name": "rcatune-x-ab-store", "key": "url"}}}
    assert "postgresql" not in json.dumps(objects)  # the URL (and its password) only in the Secret
    from rcatune.deploy.router import main

    with pytest.raises(SystemExit) as shown:  # the router takes the arguments the pod gives it
        main([*container["args"], "--help"])
    assert shown.value.code == 0


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


def _units(spec: dict, count: int, right: dict[str, float], seed: int):
    """Outcomes and feedback as the router pods record them: each unit on its arm by the experiment's own
    assignment, the treatment truly better (`right`: each arm's chance of a right root cause)."""
    import random
    import time

    from rcatune.abtest.routing import assignment

    rng, plan, now = random.Random(seed), assignment(spec), time.time()
    for i in range(count):
        unit = f"inc-{seed}-{i}"
        arm = plan.arm(unit, now)
        yield ({"request_id": f"req-{seed}-{i}", "experiment": spec["id"], "arm": arm, "unit": unit,
                "version": "x", "at": now, "latency_ms": 80.0 + rng.random() * 20, "status": 200,
                "prompt_tokens": 30, "completion_tokens": 40, "root_cause": "r", "query_parses": True},
               {"root_cause_correct": rng.random() < right[arm], "human_prompts": rng.choice([1, 2, 3])})


@pytest.mark.integration
@pytest.mark.slow
def test_an_ab_test_on_kubernetes_routes_through_a_router_deployment_and_its_decision_promotes(
        cluster, postgres, servable_versions, monkeypatch):
    """Two registered versions on the API server: the treatment and the router as Deployments of their own, the
    Service moved onto the router (nothing promoted), deploys refused meanwhile, a switch-off a router records in
    the store seen by the analysis; the decision promotes (the control is the revision a rollback restores);
    a treatment that never becomes ready changes nothing; and without a shared store nothing starts."""
    import time

    from zenml.client import Client

    from rcatune.abtest.store import OutcomeStore
    from rcatune.config.abtest import ABTestConfig
    from rcatune.deploy import DeploymentError, abtest, act, release

    first, second = (v["number"] for v in servable_versions)
    fields = {"kubeconfig": str(cluster.kubeconfig), "rollout_timeout_s": 60, "name": "abk"}
    config, serving = KubernetesDeployerConfig(**fields), ServingConfig()
    deployer = _deployer(cluster, name="abk")
    apps, core, _ = deployer.clients()
    act("deploy", config, serving, release("rcatune-rca", first))
    production_before = Client().get_model_version("rcatune-rca", "production").number
    decide = dict(min_effect=0.2, tuning_units=200, latency_margin=1.0)

    monkeypatch.delenv("RCATUNE_AB_STORE_URL", raising=False)
    with pytest.raises(DeploymentError, match="set \\$RCATUNE_AB_STORE_URL to a PostgreSQL URL"):
        abtest.start(config, serving, ABTestConfig(treatment=second, name="k8s-none"), "rcatune-rca")
    monkeypatch.setenv("RCATUNE_AB_STORE_URL", postgres)
    name = f"k8s-better-{int(time.time())}"
    started = abtest.start(config, serving, ABTestConfig(treatment=second, name=name), "rcatune-rca")
    assert (started["control"], started["treatment"]) == (first, second)
    assert Client().get_model_version("rcatune-rca", "production").number == production_before  # nothing promoted
    service = core.read_namespaced_service("rcatune-abk", "default")
    assert service.spec.selector["app.kubernetes.io/instance"] == "rcatune-abk-router"
    assert apps.read_namespaced_deployment("rcatune-abk-treatment", "default").status.available_replicas == 1
    assert core.read_namespaced_service("rcatune-abk-control", "default").spec.selector[
        "app.kubernetes.io/instance"] == "rcatune-abk"
    mounted = json.loads(core.read_namespaced_config_map("rcatune-abk-ab", "default").data["target.json"])
    assert mounted["experiment"]["treatment"] == {
        "url": "http://rcatune-abk-treatment.default.svc.cluster.local:80", "version": second,
        "model": f"rcatune-rca-v{second}"}
    assert mounted["url"] == "http://rcatune-abk-control.default.svc.cluster.local:80"
    router = apps.read_namespaced_deployment("rcatune-abk-router", "default")
    assert postgres not in json.dumps(apps.api_client.sanitize_for_serialization(router)) + json.dumps(mounted)
    assert deployer.status()["ab_test"] == name
    with pytest.raises(DeploymentError, match=f"A/B test '{name}' runs on this deployment"):
        deployer.deploy(_release(second))
    with pytest.raises(DeploymentError, match="runs on this deployment"):
        deployer.rollback()

    store = OutcomeStore(postgres)
    spec = deployer.ab_state()
    assert spec["treatment_answers"] and not spec["killed"]
    for outcome, feedback in _units(spec, 400, {"control": 0.4, "treatment": 0.9}, seed=1):
        store.record(outcome)
        store.give_feedback(outcome["request_id"], name, **feedback)
    looked = abtest.look(config, serving, ABTestConfig(**decide), act=True)
    assert looked["analysis"]["decision"] == "deploy_treatment", looked["analysis"]["reasons"]
    assert "promoted" in looked["acted"]
    assert Client().get_model_version("rcatune-rca", "production").number == int(second)
    status = deployer.status()
    assert (status["version"], status["revision"], status["ab_test"]) == (second, "2", None)
    assert core.read_namespaced_service("rcatune-abk", "default").spec.selector[
        "app.kubernetes.io/instance"] == "rcatune-abk"
    assert deployer._deployment("rcatune-abk-router") is None and deployer._deployment("rcatune-abk-treatment") is None
    assert deployer.rollback().version == first  # the control is the revision before: kubectl rollout undo

    # a switch-off a router recorded in the store: the next look sees it and ends nothing else
    killed = f"k8s-killed-{int(time.time())}"
    abtest.start(config, serving, ABTestConfig(treatment=second, name=killed), "rcatune-rca")
    store.finish(killed, "switched_off", "keep_control", "treatment v2 stopped answering its /ready (2 checks)")
    seen = abtest.look(config, serving, ABTestConfig(**decide), act=True)
    assert seen["killed"] and seen["analysis"]["switch_off"] and "switched off" in seen["acted"]
    assert "stopped answering" in seen["analysis"]["reasons"][0]
    ended = abtest.stop(config, serving, "the treatment is off")
    assert ended["record"]["version"] == first and deployer.status()["ab_test"] is None
    assert core.read_namespaced_service("rcatune-abk", "default").spec.selector[
        "app.kubernetes.io/instance"] == "rcatune-abk"

    # a treatment that never becomes ready: the experiment never starts, the control keeps every request
    stuck = KubernetesDeployerConfig(**{**fields, "image": "rcatune-serve:never-ready", "rollout_timeout_s": 5})
    with pytest.raises(DeploymentError, match="was not ready within 5 s .*nothing changed"):
        abtest.start(stuck, serving, ABTestConfig(treatment=second, name=f"k8s-stuck-{int(time.time())}"),
                     "rcatune-rca")
    assert deployer.status()["ab_test"] is None and deployer._deployment("rcatune-abk-treatment") is None
    assert core.read_namespaced_service("rcatune-abk", "default").spec.selector[
        "app.kubernetes.io/instance"] == "rcatune-abk"
    deployer.stop()


@pytest.mark.integration
def test_the_pods_a_training_pytorchjob_implies_pass_the_api_server(cluster):
    """The PyTorchJob's pods (multi-node DeepSpeed, GPUs, node selector, tolerations, the shared volume), created
    with a server-side dry run: the API server's own validation and admission, nothing scheduled."""
    from rcatune.config.trainer import ClusterConfig, DistributedConfig, Strategy
    from rcatune.training.cluster import pods, pytorchjob

    cluster_cfg = ClusterConfig(node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                                tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    distributed = DistributedConfig(strategy=Strategy.deepspeed_zero3, nproc_per_node=8, nodes=4, cluster=cluster_cfg)
    core = cluster.api()
    for pod in pods(pytorchjob("rca-train", distributed)):
        created = core.create_namespaced_pod("default", pod, dry_run="All")
        assert created.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
        assert any(t.key == "nvidia.com/gpu" for t in created.spec.tolerations)
        assert created.spec.volumes[0].persistent_volume_claim.claim_name == "rcatune-runs"
