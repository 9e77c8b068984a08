"""Register and activate ZenML stacks from the YAML definitions in `stacks/`, on the project's own store or on
a ZenML server (`stack.zenml_url`), tracking into the embedded MLflow store or an MLflow server."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from rcatune.errors import ConfigError
from rcatune.state import mlflow_artifact_root, mlflow_tracking_uri

log = logging.getLogger(__name__)

ZENML_LOGIN = (("ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD"), ("ZENML_STORE_API_KEY",))
MLFLOW_LOGIN = (("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), ("MLFLOW_TRACKING_TOKEN",))


@dataclass(frozen=True)
class Connection:
    """Where a run's ZenML client and MLflow tracking point."""

    repository: Path  # the ZenML repository (`.zen`) the client works in
    mlflow_uri: str
    mlflow_artifact_root: Optional[str]  # None: the MLflow server decides (its proxied artifact store)
    server: bool  # a ZenML server, not the project's own store


def connect(stack: Any, state: Path) -> Connection:
    """Point this process's ZenML client and MLflow at the stack's stores, before ZenML's client is made.

    The project's own store is the default. A ZenML server gets a client configuration of its own under
    `<state>/zenml/servers/` (ZenML keeps its session token there: mode 700), so switching between stacks never
    mixes their ids; its login and the MLflow server's come from the environment, or, for the servers
    `make team-start` started from this state folder, from their credentials file.
    """
    zenml_url, mlflow_url = getattr(stack, "zenml_url", None), getattr(stack, "mlflow_url", None)
    if getattr(stack, "remote", False) and not zenml_url:
        raise ConfigError(f"stack={stack.name} runs its steps elsewhere (remote: true) and needs a ZenML server: set "
                          "stack.zenml_url (stacks/README.md)")
    containers = getattr(stack, "containers", None)
    if containers is not None and containers.docker_host:
        os.environ["DOCKER_HOST"] = containers.docker_host  # ZenML's orchestrator asks docker.from_env()
    if not zenml_url:
        for key in ("ZENML_STORE_URL", "ZENML_STORE_USERNAME", "ZENML_STORE_PASSWORD", "ZENML_STORE_API_KEY"):
            if os.environ.pop(key, None) and key == "ZENML_STORE_URL":
                log.info("stack=%s uses the project's own ZenML store: ZENML_STORE_URL is ignored", stack.name)
        repository = state
    else:
        local = _local_team_credentials(state, zenml_url, mlflow_url)
        folder = state / "zenml" / "servers" / re.sub(r"[^A-Za-z0-9.-]+", "_", zenml_url.split("://")[-1]).strip("_")
        # the login first: a refused one leaves this process's environment pointing where it pointed
        _login("ZenML server", zenml_url, ZENML_LOGIN, {"ZENML_STORE_USERNAME": local.get("zenml_username"),
                                                         "ZENML_STORE_PASSWORD": local.get("zenml_password")})
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        os.environ.update({"ZENML_CONFIG_PATH": str(folder / "config"), "ZENML_REPOSITORY_PATH": str(folder),
                           "ZENML_STORE_URL": zenml_url.rstrip("/")})
        repository = folder
    if not mlflow_url:
        return Connection(repository, mlflow_tracking_uri(state), str(mlflow_artifact_root(state)),
                          server=bool(zenml_url))
    local = _local_team_credentials(state, zenml_url, mlflow_url)
    _login("MLflow server", mlflow_url, MLFLOW_LOGIN,
           {"MLFLOW_TRACKING_USERNAME": local.get("mlflow_username"),
            "MLFLOW_TRACKING_PASSWORD": local.get("mlflow_password")})
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_url.rstrip("/")
    return Connection(repository, mlflow_url.rstrip("/"), None, server=bool(zenml_url))


def _local_team_credentials(state: Path, zenml_url: Optional[str], mlflow_url: Optional[str]) -> dict[str, str]:
    """The login of the servers `make team-start` runs from this state folder, when the URLs are theirs."""
    from rcatune.team import TeamPaths

    paths = TeamPaths.under(state)
    if not (paths.info.exists() and paths.credentials.exists()):
        return {}
    info = json.loads(paths.info.read_text(encoding="utf-8"))
    ours = {info.get("zenml", {}).get("url"), info.get("mlflow", {}).get("url")}
    wanted = {url.rstrip("/") for url in (zenml_url, mlflow_url) if url}
    return json.loads(paths.credentials.read_text(encoding="utf-8")) if wanted <= ours else {}


def _login(what: str, url: str, choices: tuple[tuple[str, ...], ...], fallback: dict[str, Optional[str]]) -> None:
    if any(all(os.environ.get(key) for key in keys) for keys in choices):
        return
    if all(fallback.values()):
        os.environ.update({k: v for k, v in fallback.items() if v})
        return
    names = " or ".join("/".join(keys) for keys in choices)
    raise ConfigError(f"no login for the {what} at {url}: export {names} (a team's servers), or start the "
                      "project's own with `make team-start`")


def load_definition(path: Path, state: Path, mlflow_uri: Optional[str] = None,
                    values: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The definition with its placeholders filled: {state}, {mlflow_uri}, {values.NAME} (stack.values)."""
    if not path.is_file():
        raise ConfigError(f"stack.definition: no stack definition at {path}")
    values = dict(values or {})
    text = path.read_text(encoding="utf-8").replace("{state}", str(state)).replace(
        "{mlflow_uri}", mlflow_uri or mlflow_tracking_uri(state))
    placeholder = re.compile(r"(?<!\{)\{values\.([A-Za-z0-9_]+)\}")
    wanted: set[str] = set()

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            wanted.update(set(placeholder.findall(node)) - set(values))
            return placeholder.sub(lambda m: str(values.get(m.group(1), m.group(0))), node)
        return node

    definition = fill(yaml.safe_load(text))
    if wanted:
        names = sorted(wanted)
        raise ConfigError(f"stack {path.name} needs stack.values.{names[0]}" + (
            f" (and {', '.join(names[1:])})" if names[1:] else "") + ": set it in conf/stack or on the command line")
    return definition


ORCHESTRATOR_SETTINGS = "orchestrator.kubernetes"


def pod_settings(pod: Any) -> dict[str, Any]:
    """A pod group (stack.pods.NAME) as ZenML's KubernetesPodSettings fields: requests = limits."""
    quantities = {key: value for key, value in (("cpu", pod.cpu), ("memory", pod.memory)) if value}
    limits = {**quantities, **({pod.gpu_resource: str(pod.gpus)} if pod.gpus else {})}
    settings: dict[str, Any] = {"resources": {"requests": quantities, "limits": limits}} if limits else {}
    if pod.node_selector:
        settings["node_selectors"] = dict(pod.node_selector)
    if pod.tolerations:
        settings["tolerations"] = [dict(t) for t in pod.tolerations]
    return settings


# what a step's container gets from the run's environment (never a login: those stay on this machine)
CONTAINER_ENV = ("RCATUNE_HOME", "ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "ZENML_ANALYTICS_OPT_IN",
                 "ZENML_LOGGING_VERBOSITY", "ZENML_ENABLE_RICH_TRACEBACK", "ZENML_AUTO_OPEN_DASHBOARD",
                 "MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HOME", "HF_HUB_OFFLINE",
                 "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS", "RCATUNE_PAUSE_AT", "RCATUNE_PAUSE_DIR")


def container_settings(containers: Any, mounts: list[Path], workdir: Path) -> dict[str, Any]:
    """ZenML settings that run each step in `containers.image` with `mounts` (the project, the state folder, the
    run's folder) at the same paths, so the steps read and write what a local run would. With
    `mount_environment`, this machine's venv and interpreter are mounted read-only and put first on PATH."""
    import sys

    volumes: dict[str, dict[str, str]] = {}
    for path in sorted({str(Path(m).resolve()) for m in mounts}):
        if not any(path.startswith(other + os.sep) for other in volumes):
            volumes[path] = {"bind": path, "mode": "rw"}
    environment = {key: os.environ[key] for key in CONTAINER_ENV if os.environ.get(key)}
    if containers.mount_environment:
        for path in sorted({sys.prefix, sys.base_prefix}):
            volumes.setdefault(path, {"bind": path, "mode": "ro"})
        environment.update({"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": sys.prefix})
    environment.update({"PYTHONPATH": str(workdir), "GIT_PYTHON_REFRESH": "quiet"})  # no git in the image
    return {"docker": {"parent_image": containers.image, "skip_build": True},
            "orchestrator.local_docker": {"run_args": {"volumes": volumes, "environment": environment,
                                                       "network_mode": containers.network,
                                                       "working_dir": str(workdir), "labels": {STEP_LABEL: "1"}}}}


STEP_LABEL = "io.rcatune.step"


def remove_step_containers(docker_host: Optional[str] = None) -> int:
    """Remove the exited step containers of a container stack (ZenML's orchestrator leaves them); return how many.
    A failed run keeps its containers for `podman logs`/`docker logs`: this runs after a success only."""
    import docker

    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    removed = 0
    for container in client.containers.list(all=True, filters={"label": STEP_LABEL, "status": "exited"}):
        container.remove()
        removed += 1
    return removed


def run_settings(stack: Any, mounts: Optional[list[Path]] = None,
                 workdir: Optional[Path] = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline settings, per-step configurations) for `pipeline.with_options`: a container stack's image and
    mounts for every step; a cluster stack's pod group without `steps` for every step, each named step its own
    group's pod."""
    pods = getattr(stack, "pods", None) or {}
    pipeline_settings: dict[str, Any] = {}
    if getattr(stack, "containers", None) is not None:
        pipeline_settings.update(container_settings(stack.containers, list(mounts or []),
                                                    workdir or Path.cwd()))
    steps: dict[str, Any] = {}
    for pod in pods.values():
        settings = {ORCHESTRATOR_SETTINGS: {"pod_settings": pod_settings(pod)}}
        if not pod.steps:
            pipeline_settings.update(settings)
        for step in pod.steps:
            steps[step] = {"settings": settings}
    return pipeline_settings, steps


def ensure_zenml_repository(root: Path) -> None:
    """`zenml init` in `root` (the state folder, or a server's client folder), once."""
    if not (root / ".zen").exists():
        from zenml.client import Client

        Client.initialize(root=root)


def ensure_secrets(definition: dict[str, Any]) -> None:
    """The definition's ZenML secrets, each value from the environment variable it names (made or updated)."""
    from zenml.client import Client

    client = Client()
    for name, keys in (definition.get("secrets") or {}).items():
        values = {key: os.environ.get(variable) for key, variable in keys.items()}
        missing = [keys[key] for key, value in values.items() if not value]
        if missing:
            raise ConfigError(f"stack {definition['name']}: the ZenML secret {name} needs {', '.join(missing)} in "
                              "the environment")
        existing = client.list_secrets(name=name)
        if not existing.items:
            log.info("making the ZenML secret %s", name)
            client.create_secret(name, values=values)
            continue
        secret = client.get_secret(existing.items[0].id)
        if secret.secret_values != values:
            client.update_secret(secret.id, add_or_update_values=values)


def ensure_stack(definition: dict[str, Any]) -> str:
    """Create or update the stack's components, activate the stack; return its id."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    ensure_secrets(definition)
    component_ids = {}
    for kind, spec in definition["components"].items():
        component_type = StackComponentType(kind)
        existing = client.list_stack_components(name=spec["name"], type=component_type)
        configuration = spec.get("configuration") or {}
        if existing.items:
            component = existing.items[0]
            if component.configuration != {**component.configuration, **configuration}:
                component = client.update_stack_component(spec["name"], component_type, configuration=configuration)
        else:
            log.info("registering ZenML %s %s (%s)", kind, spec["name"], spec["flavor"])
            component = client.create_stack_component(spec["name"], spec["flavor"], component_type, configuration)
        component_ids[component_type] = component.id
    stacks = client.list_stacks(name=definition["name"])
    if stacks.items:
        stack = stacks.items[0]
        current = {t: [c.id for c in cs] for t, cs in stack.components.items()}
        if any(current.get(t) != [i] for t, i in component_ids.items()):
            updates = {t: [i] for t, i in component_ids.items()}
            stack = client.update_stack(definition["name"], component_updates=updates)
    else:
        log.info("registering ZenML stack %s", definition["name"])
        stack = client.create_stack(definition["name"], components={t: i for t, i in component_ids.items()})
    if client.active_stack_model.id != stack.id:
        client.activate_stack(stack.id)
    return str(stack.id)


# ZenML activates every installed integration before each pipeline run. Two of those here only import a library
# for its materializers, and no step of ours hands ZenML a torch module or a scikit-learn estimator (our artifacts
# are pydantic models, ZenML's built-in materializer): activating them cost every run 4.5 s (pytorch 2.5 s,
# sklearn 2.0 s, measured). A step that imports the library itself still can.
UNUSED_INTEGRATIONS = ("pytorch", "sklearn")


def skip_unused_integrations() -> None:
    """Keep ZenML from activating UNUSED_INTEGRATIONS in this process. No public API narrows the activation: the
    registry's `integrations` property hands out its own dict, which this edits (tests/test_stacks.py fails if
    upstream stops activating from it)."""
    from zenml.integrations.registry import integration_registry

    for name in UNUSED_INTEGRATIONS:
        integration_registry.integrations.pop(name, None)


# ZenML's MLflow tracker ends every step by switching autologging off for eight frameworks, importing each one's
# MLflow flavor to do it; mlflow.pytorch imports torch (1.2 s of a run that never touches a model, measured).
# Autologging can only have been switched on through a flavor already imported, so the others are left alone.
AUTOLOG_FRAMEWORKS = ("tensorflow", "xgboost", "lightgbm", "statsmodels", "spark", "sklearn", "fastai", "pytorch")


def skip_unloaded_autologging() -> None:
    """Make ZenML's MLflow tracker switch autologging off only for the MLflow flavors this process imported. No
    setting turns the imports off: this replaces the tracker's `disable_autologging` (tests/test_stacks.py fails
    if upstream renames it, or stops calling it when a step ends)."""
    import sys

    from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import MLFlowExperimentTracker

    def disable_autologging(self) -> None:
        for framework in AUTOLOG_FRAMEWORKS:
            flavor = sys.modules.get(f"mlflow.{framework}")
            if flavor is not None:
                try:
                    flavor.autolog(disable=True)
                except Exception as error:  # as upstream: a flavor that cannot say so is not a failed step
                    log.warning("could not switch MLflow autologging off for %s: %s", framework, error)

    MLFlowExperimentTracker.disable_autologging = disable_autologging


def step_jobs(stack: Any, image: str, namespace: str = "default") -> dict[str, dict[str, Any]]:
    """The Kubernetes Jobs ZenML's Kubernetes orchestrator would run for each pod group's steps (the group
    without steps stands for every other step, shown as `other-steps`), built with the orchestrator's own
    manifest functions and ZenML's step entrypoint: {step: Job manifest as the API takes it}."""
    import uuid

    from kubernetes.client import ApiClient
    from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from zenml.integrations.kubernetes.kube_utils import apply_default_resource_requests, sanitize_label
    from zenml.integrations.kubernetes.manifest_utils import (
        build_job_manifest,
        build_pod_manifest,
        pod_template_manifest_from_pod,
    )
    from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings

    snapshot = uuid.uuid4()
    jobs = {}
    for pod in (getattr(stack, "pods", None) or {}).values():
        for step in pod.steps or ["other-steps"]:
            settings = apply_default_resource_requests(memory="400Mi",  # as the orchestrator does
                                                       pod_settings=KubernetesPodSettings(**pod_settings(pod)))
            manifest = build_pod_manifest(
                pod_name=None, image_name=image, command=StepEntrypointConfiguration.get_entrypoint_command(),
                args=StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step, snapshot_id=snapshot),
                privileged=False, pod_settings=settings, labels={"step_name": step})
            name = sanitize_label(f"rcatune-{snapshot.hex[:8]}-{step}")
            job = build_job_manifest(job_name=name, pod_template=pod_template_manifest_from_pod(manifest),
                                     backoff_limit=0, labels={"step_name": step})
            rendered = ApiClient().sanitize_for_serialization(job)
            rendered.setdefault("apiVersion", "batch/v1")
            rendered.setdefault("kind", "Job")
            rendered["metadata"]["namespace"] = namespace
            jobs[step] = rendered
    return jobs
