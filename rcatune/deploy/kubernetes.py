"""`deployer=kubernetes`: a Deployment, a Service and an optional HPA, through the official client.

The Deployment runs the serving image (`deployer.image`, or the tag `deployer=docker` builds) with
readiness on /ready and liveness on /health, resources, a non-root security context and a rolling update
that never drops below the wanted replicas (`maxUnavailable: 0`). A deploy creates or patches it and waits
for the rollout as `kubectl rollout status` does; one that is not ready within `deployer.rollout_timeout_s`
is undone automatically. `rollback` restores the previous revision's pod template, as `kubectl rollout
undo` does (apps/v1 has no server-side rollback): it refuses a paused Deployment and says when there is
nothing to undo. A/B tests put a router Deployment in front of the control and the treatment
(`rcatune.deploy.kubernetes_ab`).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Optional

from rcatune.config.deployer import KubernetesDeployerConfig
from rcatune.config.serving import ServingConfig
from rcatune.deploy.base import Deployer, DeploymentError
from rcatune.deploy.bluegreen import serve_args
from rcatune.deploy.kubernetes_ab import KubernetesABTest
from rcatune.deploy.records import DeploymentRecord, Release

PORT = 8000
REVISION = "deployment.kubernetes.io/revision"
VERSION = "rcatune.io/version"
MODEL = "rcatune.io/model"
REGISTRY = "rcatune.io/registry"


def labels_of(name: str, app: str = "rcatune-serve") -> dict[str, str]:
    """The labels of `name`'s pods (and its Service's selector): the same two keys for every object."""
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": name}


def manifests(name: str, release: Release, image: str, config: KubernetesDeployerConfig,
              serving: ServingConfig, token_secret: Optional[str] = None) -> list[dict[str, Any]]:
    """The Deployment, Service and (optional) HPA of `release`, as plain manifests."""
    labels = labels_of(name)
    annotations = {VERSION: release.version, MODEL: release.served_name, REGISTRY: release.registry_name}
    probe = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 3,
             "failureThreshold": 3}
    container: dict[str, Any] = {
        "name": "serve", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": serve_args(release, serving, "0.0.0.0", PORT, "/app/model"),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "RCATUNE_HOME", "value": "/tmp/rcatune"}],
        "readinessProbe": probe,
        "startupProbe": {**probe, "failureThreshold": max(1, int(serving.ready_timeout_s // 5))},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
        "resources": {"requests": dict(config.requests), "limits": dict(config.limits)},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if token_secret:
        container["env"].append({"name": "RCATUNE_SERVE_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": token_secret, "key": "token"}}})
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": config.namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": config.replicas, "revisionHistoryLimit": 10, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels, "annotations": annotations},
                         "spec": {"containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}],
                                  "terminationGracePeriodSeconds": 30}}}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": "http", "port": config.service_port,
                                                        "targetPort": "http", "protocol": "TCP"}]}}
    out = [deployment, service]
    if config.hpa_max_replicas:
        out.append({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                             "minReplicas": config.replicas, "maxReplicas": config.hpa_max_replicas,
                             "targetCPUUtilizationPercentage": config.hpa_cpu_percent}})
    return out


class KubernetesDeployer(KubernetesABTest, Deployer):
    target = "kubernetes"

    def __init__(self, config: KubernetesDeployerConfig, serving: ServingConfig) -> None:
        super().__init__(config, serving)
        self.object_name = f"rcatune-{self.name}"
        self.namespace = config.namespace
        self._clients = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.object_name}.{self.namespace}.svc.cluster.local:{self.config.service_port}"

    # ------------------------------------------------------------------------------------------ actions
    def deploy(self, release: Release) -> DeploymentRecord:
        from kubernetes.client.exceptions import ApiException

        started = time.perf_counter()
        apps, core, autoscaling = self.clients()
        self.ab_refuse("deploy")
        image = self.config.image or _default_image(release)
        current = self._deployment()
        before = _version(current)
        secret = self._token_secret()
        deployment, service, *hpa = manifests(self.object_name, release, image, self.config, self.serving, secret)
        if current is not None and _template_equal(current.spec.template, deployment["spec"]["template"]):
            return self.record("deploy", endpoint=self.endpoint, version=release.version, model=release.served_name,
                               previous=before, registry_name=release.registry_name, changed=False)
        try:
            if current is None:
                apps.create_namespaced_deployment(self.namespace, deployment)
            else:
                apps.patch_namespaced_deployment(self.object_name, self.namespace, deployment)
            self._apply_service(service)
            self._apply_hpa(hpa[0] if hpa else None)
        except ApiException as error:
            raise DeploymentError(f"the API server refused the manifests of v{release.version}: "
                                  f"{_reason(error)}; {'still serving v' + before if before else 'nothing serves'}"
                                  ) from None
        rollout = self._wait_rollout()
        if rollout is not None:  # not ready in time: undo, then say so
            undone = ""
            if current is not None:
                self._undo()
                undone = f"; rolled back to v{before}" + (
                    "" if self._wait_rollout() is None else " (which is not ready either)")
            raise DeploymentError(f"the rollout of v{release.version} was not ready within "
                                  f"{self.config.rollout_timeout_s:.0f} s ({rollout}){undone}")
        return self.record("deploy", endpoint=self.endpoint, version=release.version, model=release.served_name,
                           previous=before, registry_name=release.registry_name,
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"image": image, "revision": _revision(self._deployment()),
                                   "namespace": self.namespace,
                                   **({"forced": release.forced} if release.forced else {})})

    def rollback(self) -> DeploymentRecord:
        started = time.perf_counter()
        current = self._deployment()
        if current is None:
            raise DeploymentError(f"nothing to roll back: deployment {self.object_name} does not exist in "
                                  f"namespace {self.namespace}")
        before = _version(current)
        self.ab_refuse("roll back")
        restored = self._undo()
        rollout = self._wait_rollout()
        if rollout is not None:
            raise DeploymentError(f"the rollback to v{restored} was not ready within "
                                  f"{self.config.rollout_timeout_s:.0f} s ({rollout})")
        annotations = self._deployment().spec.template.metadata.annotations or {}
        return self.record("rollback", endpoint=self.endpoint, version=restored, model=annotations.get(MODEL),
                           previous=before, registry_name=annotations.get(REGISTRY, "rcatune-rca"),
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"revision": _revision(self._deployment())})

    def status(self) -> dict[str, Any]:
        current = self._deployment()
        if current is None:
            return {"target": self.target, "name": self.name, "deployed": False, "namespace": self.namespace}
        s = current.status
        return {"target": self.target, "name": self.name, "deployed": True, "namespace": self.namespace,
                "endpoint": self.endpoint, "version": _version(current), "revision": _revision(current),
                "image": current.spec.template.spec.containers[0].image, "replicas": current.spec.replicas,
                "ready_replicas": s.ready_replicas or 0, "updated_replicas": s.updated_replicas or 0,
                "available_replicas": s.available_replicas or 0,
                "ab_test": self.ab_running()}

    def stop(self) -> DeploymentRecord:
        from kubernetes.client.exceptions import ApiException

        apps, core, autoscaling = self.clients()
        current = self._deployment()
        self._ab_clear(restore=False)  # a running experiment ends with the deployment
        for delete in (apps.delete_namespaced_deployment, core.delete_namespaced_service,
                       autoscaling.delete_namespaced_horizontal_pod_autoscaler):
            try:
                delete(self.object_name, self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise DeploymentError(f"could not delete {self.object_name}: {_reason(error)}") from None
        annotations = (current.spec.template.metadata.annotations or {}) if current else {}
        return self.record("stop", endpoint=None, version=None, previous=_version(current),
                           registry_name=annotations.get(REGISTRY, "rcatune-rca"))

    # ------------------------------------------------------------------------------------------ pieces
    def clients(self):
        if self._clients is None:
            from kubernetes import client, config
            from kubernetes.config.config_exception import ConfigException

            try:
                api = config.new_client_from_config(config_file=self.config.kubeconfig)
            except (ConfigException, OSError, TypeError) as error:
                raise DeploymentError(f"no Kubernetes cluster configured ({error}): set KUBECONFIG or "
                                      "deployer.kubeconfig") from None
            self._clients = (client.AppsV1Api(api), client.CoreV1Api(api), client.AutoscalingV1Api(api))
        return self._clients

    def _deployment(self, name: Optional[str] = None):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        apps, name = self.clients()[0], name or self.object_name
        try:
            return apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise DeploymentError(f"reading deployment {name}: {_reason(error)}") from None
        except HTTPError as error:
            raise DeploymentError(f"the Kubernetes API server does not answer ({error})") from None

    def _token_secret(self) -> Optional[str]:
        """The serve token as a Secret the pods read (None: the API is open)."""
        from kubernetes.client.exceptions import ApiException

        token = self.serving.token()
        if not token:
            return None
        core, name = self.clients()[1], f"{self.object_name}-token"
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.namespace},
                "type": "Opaque", "stringData": {"token": token}}
        try:
            core.create_namespaced_secret(self.namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise DeploymentError(f"could not store the serve token as a Secret: {_reason(error)}") from None
            core.replace_namespaced_secret(name, self.namespace, body)
        return name

    def _apply_service(self, service: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        core = self.clients()[1]
        try:
            core.create_namespaced_service(self.namespace, service)
        except ApiException as error:
            if error.status != 409:
                raise
            core.patch_namespaced_service(self.object_name, self.namespace, service)

    def _apply_hpa(self, hpa: Optional[dict]) -> None:
        from kubernetes.client.exceptions import ApiException

        autoscaling = self.clients()[2]
        try:
            if hpa is None:
                autoscaling.delete_namespaced_horizontal_pod_autoscaler(self.object_name, self.namespace)
            else:
                autoscaling.create_namespaced_horizontal_pod_autoscaler(self.namespace, hpa)
        except ApiException as error:
            if hpa is None and error.status == 404:
                return
            if hpa is None or error.status != 409:
                raise
            autoscaling.patch_namespaced_horizontal_pod_autoscaler(self.object_name, self.namespace, hpa)

    def _wait_rollout(self, name: Optional[str] = None) -> Optional[str]:
        """None once the rollout is complete (as `kubectl rollout status`), else why it is not, at the timeout."""
        deadline = time.monotonic() + self.config.rollout_timeout_s
        why = "no status yet"
        while time.monotonic() < deadline:
            current = self._deployment(name)
            if current is None:
                return "the deployment is gone"
            s, wanted = current.status, current.spec.replicas
            if (s.observed_generation or 0) < current.metadata.generation:
                why = "the controller has not seen the new spec"
            elif (s.updated_replicas or 0) < wanted:
                why = f"{s.updated_replicas or 0} of {wanted} replicas updated"
            elif (s.replicas or 0) > (s.updated_replicas or 0):
                why = f"{(s.replicas or 0) - (s.updated_replicas or 0)} old replicas pending termination"
            elif (s.available_replicas or 0) < (s.updated_replicas or 0):
                why = f"{s.available_replicas or 0} of {s.updated_replicas} updated replicas available (ready)"
            else:
                return None
            time.sleep(0.5)
        return why

    def _undo(self) -> str:
        """Restore the previous revision's pod template (kubectl rollout undo); the version it serves."""
        from kubernetes.client.exceptions import ApiException

        apps = self.clients()[0]
        current = self._deployment()
        if current.spec.paused:
            raise DeploymentError(f"deployment {self.object_name} is paused: resume it before rolling back "
                                  "(kubectl rollout resume), as kubectl would")
        selector = ",".join(f"{k}={v}" for k, v in current.spec.selector.match_labels.items())
        owned = [rs for rs in apps.list_namespaced_replica_set(self.namespace, label_selector=selector).items
                 if any(ref.uid == current.metadata.uid for ref in rs.metadata.owner_references or [])]
        revision = int(_revision(current) or 0)
        older = sorted((rs for rs in owned if int((rs.metadata.annotations or {}).get(REVISION, 0)) < revision),
                       key=lambda rs: int(rs.metadata.annotations[REVISION]))
        if not older:
            raise DeploymentError(f"nothing to roll back to: {self.object_name} has no revision before "
                                  f"{revision} (v{_version(current)} is the only one deployed)")
        template = apps.api_client.sanitize_for_serialization(older[-1].spec.template)
        template["metadata"]["labels"].pop("pod-template-hash", None)
        if _template_equal(current.spec.template, template):
            raise DeploymentError(f"the previous revision of {self.object_name} is the same as the current one: "
                                  "nothing changed")
        try:
            apps.patch_namespaced_deployment(self.object_name, self.namespace,
                                             [{"op": "replace", "path": "/spec/template", "value": template}])
        except ApiException as error:
            raise DeploymentError(f"the API server refused the rollback: {_reason(error)}") from None
        return template["metadata"].get("annotations", {}).get(VERSION, "unknown")


def _default_image(release: Release) -> str:
    from rcatune.deploy.docker import image_tag

    return image_tag(release)


def _version(deployment) -> Optional[str]:
    if deployment is None:
        return None
    return (deployment.spec.template.metadata.annotations or {}).get(VERSION)


def _revision(deployment) -> Optional[str]:
    return (deployment.metadata.annotations or {}).get(REVISION) if deployment is not None else None


def _template_equal(current, wanted: dict) -> bool:
    """Whether a live pod template is the one `wanted` describes (fields the server fills in ignored)."""
    from kubernetes import client

    live = client.ApiClient().sanitize_for_serialization(current)
    live = copy.deepcopy(live)
    live["metadata"].get("labels", {}).pop("pod-template-hash", None)
    return _subset(wanted, live)


def _subset(wanted: Any, live: Any) -> bool:
    """Every field of `wanted` has the same value in `live` (the server adds defaults; they do not count)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(_subset(v, live.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(live, list) and len(wanted) == len(live) and all(map(_subset, wanted, live))
    return wanted == live or str(wanted) == str(live)


def _reason(error) -> str:
    import json

    try:
        return json.loads(error.body).get("message", str(error))
    except (TypeError, ValueError):
        return f"{error.status} {error.reason}"
