"""A/B tests on `deployer=kubernetes`: the treatment as a Deployment of its own, the router as a Deployment in
front of both, and the deployment's Service moved onto the router while the experiment runs.

For a deployment `rcatune-NAME` (the control, as `deploy` left it):

- `rcatune-NAME-treatment`: Deployment and Service of the treatment (the same manifests as any version);
- `rcatune-NAME-control`: a Service onto the control's pods (the router's upstream for control);
- `rcatune-NAME-ab`: a ConfigMap with the router's target (`target.json`: control, treatment, split, salt) and
  the treatment's release (`treatment.json`); its `rcatune.io/phase` annotation says `starting` or `running`;
- `rcatune-NAME-ab-store`: a Secret with the outcome store's URL, which the router pods read from the variable
  `ab_test.store_url_env` names (never in a manifest or a ConfigMap);
- `rcatune-NAME-router`: Deployment of `python -m rcatune.deploy.router` (the serving image has it), the
  ConfigMap mounted read-only as its target file.

The Service `rcatune-NAME` (what clients call) selects the router's pods once every piece is ready; stopping
the experiment points it back at the control's pods and deletes the rest. Promoting the treatment points the
Service at the treatment's pods at once, rolls `rcatune-NAME` to the treatment's template (so `rollback`
undoes it as `kubectl rollout undo` would), then points the Service back at it. The outcome store must be one
that every router pod and the analysis reach (a team's PostgreSQL): the routers' kill switches meet there.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from rcatune.deploy.base import DeploymentError
from rcatune.deploy.records import DeploymentRecord, Release

PHASE = "rcatune.io/phase"
TARGET_DIR = "/etc/rcatune/ab"
ROUTER_APP = "rcatune-router"


def ab_manifests(base: str, namespace: str, target: dict[str, Any], treatment: Release, image: str,
                 store_env: str, replicas: int, phase: str = "starting") -> list[dict[str, Any]]:
    """The experiment's own objects: the control's Service, the ConfigMap, the router's Deployment (the
    treatment's Deployment and Service are `manifests()` of its release; the store's Secret is written apart)."""
    from rcatune.deploy.kubernetes import PORT, labels_of

    control_svc = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": f"{base}-control", "namespace": namespace, "labels": labels_of(base)},
                   "spec": {"selector": labels_of(base), "ports": [{"name": "http", "port": 80,
                                                                    "targetPort": "http", "protocol": "TCP"}]}}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"{base}-ab", "namespace": namespace, "labels": labels_of(base),
                               "annotations": {PHASE: phase}},
                  "data": {"target.json": json.dumps(target, indent=1),
                           "treatment.json": treatment.model_dump_json()}}
    labels = labels_of(f"{base}-router", ROUTER_APP)
    probe = {"periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}
    container = {
        "name": "router", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "rcatune.deploy.router"],
        "args": ["--host", "0.0.0.0", "--port", str(PORT), "--target-file", f"{TARGET_DIR}/target.json"],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "RCATUNE_HOME", "value": "/tmp/rcatune"},
                {"name": store_env, "valueFrom": {"secretKeyRef": {"name": f"{base}-ab-store", "key": "url"}}}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, **probe},  # control answers through it
        "livenessProbe": {"httpGet": {"path": "/router/status", "port": "http"}, **probe},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "target", "mountPath": TARGET_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    router = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{base}-router", "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [container], "terminationGracePeriodSeconds": 30,
                                       "volumes": [{"name": "target", "configMap": {"name": f"{base}-ab"}},
                                                   {"name": "tmp", "emptyDir": {}}]}}}}
    return [control_svc, config_map, router]


class KubernetesABTest:
    """The A/B side of `KubernetesDeployer` (see the module's doc)."""

    # ------------------------------------------------------------------------------------------ actions
    def ab_preflight(self, spec: dict[str, Any]) -> None:
        url = os.environ.get(spec.get("store_url_env") or "")
        if not url or url.startswith("sqlite"):
            raise DeploymentError(
                f"an A/B test on Kubernetes keeps its outcomes where every router pod and the analysis reach them: "
                f"set ${spec.get('store_url_env')} to a PostgreSQL URL (postgresql+psycopg://USER:PASSWORD@HOST/DB) "
                "that this machine and the cluster both reach; it travels to the pods as a Secret")

    def ab_start(self, treatment: Release, spec: dict[str, Any]) -> DeploymentRecord:
        """Serve `treatment` beside the control and put the router in front of both; nothing is promoted."""
        from rcatune.deploy.kubernetes import MODEL, REGISTRY, _default_image, _version, manifests

        started = time.perf_counter()
        self.ab_preflight(spec)
        control = self._deployment()
        if control is None or not (control.status.available_replicas or 0):
            raise DeploymentError(f"an A/B test needs a version serving as control: deploy one first "
                                  f"(deployment {self.object_name} in namespace {self.namespace})")
        running = self._ab_config_map()
        if running is not None and (running.metadata.annotations or {}).get(PHASE) == "running":
            raise DeploymentError(f"A/B test {self._ab_target(running)['experiment']['id']!r} runs already on "
                                  f"{self.name!r}: deployment.action=ab_stop ends it")
        if running is not None:  # a start that did not finish (a crash): clear what it left, then start again
            self._ab_clear(restore=True)
        version = _version(control)
        if treatment.version == version:
            raise DeploymentError(f"v{treatment.version} serves already as control: pick another treatment")
        annotations = control.spec.template.metadata.annotations or {}
        base, port = self.object_name, self.config.service_port
        image = self.config.image or _default_image(treatment)
        target = {"url": f"http://{base}-control.{self.namespace}.svc.cluster.local:80", "version": version,
                  "model": annotations.get(MODEL), "registry_name": annotations.get(REGISTRY, "rcatune-rca"),
                  "experiment": {**spec, "started_at": time.time(), "killed": False,
                                 "treatment": {"url": f"http://{base}-treatment.{self.namespace}.svc.cluster.local:"
                                                      f"{port}", "version": treatment.version,
                                               "model": treatment.served_name}}}
        secret = self._token_secret()
        t_deployment, t_service, *_ = manifests(f"{base}-treatment", treatment, image, self.config, self.serving,
                                                secret)
        router_image = control.spec.template.spec.containers[0].image  # the image that serves control has it
        control_svc, config_map, router = ab_manifests(base, self.namespace, target, treatment, router_image,
                                                       spec["store_url_env"], self.config.replicas)
        self._apply("Secret", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                               "metadata": {"name": f"{base}-ab-store", "namespace": self.namespace},
                               "stringData": {"url": os.environ[spec["store_url_env"]]}})
        for manifest in (config_map, control_svc, t_deployment, t_service):
            self._apply(manifest["kind"], manifest)
        why = self._wait_rollout(f"{base}-treatment")
        if why is not None:
            self._ab_clear(restore=True)
            raise DeploymentError(f"treatment v{treatment.version} was not ready within "
                                  f"{self.config.rollout_timeout_s:.0f} s ({why}): nothing changed, v{version} "
                                  "serves all traffic")
        self._apply("Deployment", router)
        why = self._wait_rollout(f"{base}-router")
        if why is not None:
            self._ab_clear(restore=True)
            raise DeploymentError(f"the A/B router was not ready within {self.config.rollout_timeout_s:.0f} s "
                                  f"({why}): nothing changed, v{version} serves all traffic")
        self._select(f"{base}-router", ROUTER_APP)
        self._ab_patch(annotations={PHASE: "running"})
        return self.record("ab_start", endpoint=self.endpoint, version=version, model=target["model"],
                           registry_name=target["registry_name"], changed=False,
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"experiment": spec["id"], "control": version, "treatment": treatment.version,
                                   "treatment_share": spec["treatment_share"], "ramp": spec.get("ramp"),
                                   "namespace": self.namespace, "router": f"{base}-router",
                                   "instance": target["experiment"]["treatment"]["url"]})

    def ab_state(self) -> Optional[dict[str, Any]]:
        """The running experiment (a switch-off any router or the analysis recorded in the store included)."""
        config_map = self._ab_config_map()
        if config_map is None or (config_map.metadata.annotations or {}).get(PHASE) != "running":
            return None
        target = self._ab_target(config_map)
        experiment = target["experiment"]
        if not experiment.get("killed"):
            thrown = _switched_off_in_store(experiment)
            if thrown:
                experiment.update(killed=True, killed_reason=thrown["reason"], killed_at=thrown["at"])
        treatment = self._deployment(f"{self.object_name}-treatment")
        return {**experiment, "control": target["version"],
                "treatment_answers": bool(treatment is not None and (treatment.status.available_replicas or 0))}

    def ab_running(self) -> Optional[str]:
        """The id of the experiment that runs here, or None (from the ConfigMap alone)."""
        config_map = self._ab_config_map()
        if config_map is None or (config_map.metadata.annotations or {}).get(PHASE) != "running":
            return None
        return self._ab_target(config_map)["experiment"]["id"]

    def ab_switch_off(self, reason: str) -> None:
        """Every unit to control: in the ConfigMap (the routers see it when the kubelet refreshes the mount) and,
        through the caller's store, within seconds."""
        from datetime import datetime, timezone

        config_map = self._ab_config_map()
        if config_map is None:
            return
        target = self._ab_target(config_map)
        if target["experiment"].get("killed"):
            return
        target["experiment"].update(killed=True, killed_reason=reason,
                                    killed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._ab_patch(data={"target.json": json.dumps(target, indent=1)})

    def ab_stop(self, reason: str, promote: bool = False) -> DeploymentRecord:
        """End the experiment. `promote`: the treatment's template becomes the deployment's (the control is its
        previous revision, for `rollback`) and the record moves the registry; else the control keeps serving."""
        from rcatune.deploy.kubernetes import _revision, manifests

        started = time.perf_counter()
        config_map = self._ab_config_map()
        if config_map is None:
            raise DeploymentError(f"no A/B test runs on {self.name!r}")
        target, base = self._ab_target(config_map), self.object_name
        experiment = target["experiment"]
        treatment = Release.model_validate_json(config_map.data["treatment.json"])
        kept = dict(endpoint=self.endpoint, version=target["version"], model=target["model"],
                    registry_name=target["registry_name"])
        t_deployment = self._deployment(f"{base}-treatment")
        if not promote:
            self._ab_clear(restore=True)
            return self.record("ab_stop", changed=False, seconds=round(time.perf_counter() - started, 2),
                               detail={"experiment": experiment["id"], "reason": reason,
                                       "treatment": treatment.version, "kept": target["version"]}, **kept)
        if t_deployment is None or not (t_deployment.status.available_replicas or 0):
            self._ab_clear(restore=True)
            raise DeploymentError(f"v{treatment.version} no longer answers: not promoted; v{target['version']} "
                                  "keeps serving")
        self._select(f"{base}-treatment")  # every request to the treatment now, while the deployment rolls
        image = t_deployment.spec.template.spec.containers[0].image
        deployment, *_ = manifests(base, treatment, image, self.config, self.serving, self._token_secret())
        self._apply("Deployment", deployment)
        why = self._wait_rollout()
        if why is not None:
            self._undo()
            self._wait_rollout()
            self._ab_clear(restore=True)
            raise DeploymentError(f"promoting v{treatment.version}: the rollout was not ready within "
                                  f"{self.config.rollout_timeout_s:.0f} s ({why}); rolled back, v{target['version']} "
                                  "serves all traffic")
        self._ab_clear(restore=True)
        return self.record("deploy", endpoint=self.endpoint, version=treatment.version, model=treatment.served_name,
                           registry_name=treatment.registry_name, previous=target["version"],
                           seconds=round(time.perf_counter() - started, 2),
                           detail={"ab_test": experiment["id"], "reason": reason, "image": image,
                                   "revision": _revision(self._deployment()), "namespace": self.namespace})

    def ab_refuse(self, what: str) -> None:
        """Refuse `what` while an experiment runs (it decides what serves); clear a start that never finished."""
        config_map = self._ab_config_map()
        if config_map is None:
            return
        if (config_map.metadata.annotations or {}).get(PHASE) == "running":
            raise DeploymentError(f"A/B test {self._ab_target(config_map)['experiment']['id']!r} runs on this "
                                  f"deployment: it decides what serves; to {what} now, end it first "
                                  "(deployment.action=ab_stop)")
        self._ab_clear(restore=True)

    # ------------------------------------------------------------------------------------------ pieces
    def _ab_config_map(self):
        from kubernetes.client.exceptions import ApiException

        from rcatune.deploy.kubernetes import _reason

        try:
            return self.clients()[1].read_namespaced_config_map(f"{self.object_name}-ab", self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise DeploymentError(f"reading the A/B test's ConfigMap: {_reason(error)}") from None

    @staticmethod
    def _ab_target(config_map) -> dict[str, Any]:
        return json.loads(config_map.data["target.json"])

    def _ab_patch(self, data: Optional[dict] = None, annotations: Optional[dict] = None) -> None:
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if annotations:
            body["metadata"] = {"annotations": annotations}
        self.clients()[1].patch_namespaced_config_map(f"{self.object_name}-ab", self.namespace, body)

    def _select(self, name: str, app: str = "rcatune-serve") -> None:
        """Point the deployment's Service at `name`'s pods (same label keys: a merge replaces both values)."""
        from rcatune.deploy.kubernetes import labels_of

        self.clients()[1].patch_namespaced_service(self.object_name, self.namespace,
                                                   {"spec": {"selector": labels_of(name, app)}})

    def _ab_clear(self, restore: bool) -> None:
        """Delete the experiment's objects; `restore`: the Service selects the deployment's own pods again first."""
        from kubernetes.client.exceptions import ApiException

        from rcatune.deploy.kubernetes import _reason

        apps, core, _ = self.clients()
        base = self.object_name
        if restore:
            try:
                self._select(base)
            except ApiException as error:
                if error.status != 404:
                    raise DeploymentError(f"could not point service {base} back at its pods: {_reason(error)}"
                                          ) from None
        for delete, name in ((apps.delete_namespaced_deployment, f"{base}-router"),
                             (apps.delete_namespaced_deployment, f"{base}-treatment"),
                             (core.delete_namespaced_service, f"{base}-treatment"),
                             (core.delete_namespaced_service, f"{base}-control"),
                             (core.delete_namespaced_secret, f"{base}-ab-store"),
                             (core.delete_namespaced_config_map, f"{base}-ab")):
            try:
                delete(name, self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise DeploymentError(f"could not delete {name}: {_reason(error)}") from None

    def _apply(self, kind: str, manifest: dict[str, Any]) -> None:
        """Create, or replace what a start that did not finish left."""
        from kubernetes.client.exceptions import ApiException

        from rcatune.deploy.kubernetes import _reason

        apps, core, _ = self.clients()
        verbs = {"Deployment": (apps.create_namespaced_deployment, apps.patch_namespaced_deployment),
                 "Service": (core.create_namespaced_service, core.patch_namespaced_service),
                 "ConfigMap": (core.create_namespaced_config_map, core.replace_namespaced_config_map),
                 "Secret": (core.create_namespaced_secret, core.replace_namespaced_secret)}[kind]
        name = manifest["metadata"]["name"]
        try:
            try:
                verbs[0](self.namespace, manifest)
            except ApiException as error:
                if error.status != 409:
                    raise
                verbs[1](name, self.namespace, manifest)
        except ApiException as error:
            raise DeploymentError(f"the API server refused {kind} {name}: {_reason(error)}") from None


def _switched_off_in_store(experiment: dict[str, Any]) -> Optional[dict[str, str]]:
    """{reason, at} when the outcome store says a router or the analysis switched the treatment off."""
    from datetime import datetime, timezone

    from rcatune.abtest.routing import store_url
    from rcatune.abtest.store import OutcomeStore

    url = store_url(experiment)
    if not url:
        return None
    found = OutcomeStore(url).experiment(experiment["id"])
    if not found or found.get("state") != "switched_off":
        return None
    at = datetime.fromtimestamp(found.get("decided_at") or time.time(), timezone.utc)
    return {"reason": found.get("reason") or "switched off", "at": at.isoformat(timespec="seconds")}
