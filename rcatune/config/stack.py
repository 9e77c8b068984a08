"""`stack=`: the ZenML stack a run executes on, from a definition in `stacks/`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class PodConfig:
    """The pods a cluster stack's orchestrator runs some steps in: resources, node selectors, tolerations."""

    steps: List[str] = field(default_factory=list)  # step names; empty: every step no other pod group names
    cpu: Optional[str] = None  # requests = limits, Kubernetes quantities ("8", "500m")
    memory: Optional[str] = None  # "64Gi"
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: Dict[str, str] = field(default_factory=dict)
    tolerations: List[Dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus: {self.gpus} is negative")


@dataclass
class ContainerConfig:
    """A container stack's steps (ZenML's local Docker orchestrator): the image they run in and the engine."""

    image: str = "localhost/rcatune-base:python3.11-bookworm"  # the offline base image `make podman` imports
    docker_host: Optional[str] = None  # the engine's Docker API (podman's socket); None: $DOCKER_HOST
    # mount this machine's pinned venv and interpreter read-only instead of installing them into the image (no
    # registry or index reaches a build here); false: the image must hold rcatune and its requirements
    mount_environment: bool = True
    network: str = "host"  # the steps reach the stores and servers this machine reaches
    keep: bool = False  # keep the exited step containers of a run that succeeded (a failed run's are always kept)


@dataclass
class StackConfig:
    name: str = MISSING
    definition: str = MISSING  # a YAML file in stacks/
    # the orchestrator runs the steps somewhere else (containers, a cluster): it builds images, so it needs a
    # ZenML server (zenml_url) and components every machine can reach
    remote: bool = False
    # a ZenML server's URL (a team's, or `make team-start`'s); None: the project's own store under the state folder.
    # Its login comes from the environment (ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD or ZENML_STORE_API_KEY),
    # never from here
    zenml_url: Optional[str] = None
    # an MLflow tracking server's URL; None: the embedded SQLite store. Login: MLFLOW_TRACKING_USERNAME/
    # MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN
    mlflow_url: Optional[str] = None
    # what the definition's {values.NAME} placeholders are (a cluster's context, namespace, bucket, registry)
    values: Dict[str, str] = field(default_factory=dict)
    # cluster stacks: the pods each step runs in (the training step on GPU nodes, the rest on CPU)
    pods: Dict[str, PodConfig] = field(default_factory=dict)
    # container stacks: where each step's container comes from
    containers: Optional[ContainerConfig] = None

    def __post_init__(self) -> None:
        named = [step for pod in self.pods.values() for step in pod.steps]
        if len(named) != len(set(named)):
            raise ValueError(f"stack.pods: a step is named by two pod groups ({sorted(named)})")
        if sum(1 for pod in self.pods.values() if not pod.steps) > 1:
            raise ValueError("stack.pods: only one pod group may leave `steps` empty (the default for the rest)")


SCHEMAS = {"base": StackConfig}
