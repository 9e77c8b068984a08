"""`deployer=`: where `pipeline=deployment` puts a version (local processes, a container, Kubernetes), and
`deployment.*`: what it does there (deploy | rollback | status | stop, and the A/B test's ab_start | ab_status |
ab_analyse | ab_stop, with `ab_test.*`) with which version."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Optional

from omegaconf import MISSING

from rcatune.config._require import require
from rcatune.config.pipeline import STAGES


class DeploymentAction(str, enum.Enum):
    deploy = "deploy"
    rollback = "rollback"
    status = "status"
    stop = "stop"
    ab_start = "ab_start"  # serve ab_test.treatment beside what serves, split traffic by unit
    ab_status = "ab_status"  # the experiment, its counts and its analysis now (nothing acts)
    ab_analyse = "ab_analyse"  # the analysis, and the decision acted on (promote, switch off, or continue)
    ab_stop = "ab_stop"  # end it, keeping control (deployment.reason says why)


@dataclass
class DeploymentConfig:
    action: DeploymentAction = DeploymentAction.deploy
    version: str = "production"  # a stage (production, staging, latest) or a version number
    # A version that failed its gate, or is neither staging nor production, is refused unless forced; a forced
    # deploy records who forced it and `reason`.
    force: bool = False
    reason: Optional[str] = None

    def __post_init__(self) -> None:
        require(self.version.isdigit() or self.version in STAGES, "deployment.version",
                f"{self.version!r} is neither a version number nor one of {list(STAGES)}")
        require(not self.force or bool(self.reason and self.reason.strip()), "deployment.reason",
                "a forced deploy needs a reason (deployment.reason='why it must ship anyway')")


@dataclass
class DeployerConfig:
    _target_: str = MISSING  # the Deployer class
    target: str = MISSING  # local | docker | kubernetes
    name: str = "rcatune"  # the deployment's name: several can live side by side
    # Every instance of a deployment uses the token source its first deploy used (rollback and failover
    # included); a deploy that would change it is refused unless this is set (the warm previous is then stopped).
    change_auth: bool = False

    def __post_init__(self) -> None:
        require(bool(self.name) and self.name.replace("-", "").isalnum() and self.name.islower(), "deployer.name",
                f"{self.name!r}: lower-case letters, digits and '-' only (it names processes, images and objects)")


@dataclass
class BlueGreenConfig(DeployerConfig):
    """Instances on this machine behind a stable endpoint (a small router), blue/green."""

    host: str = "127.0.0.1"
    port: int = 8300  # the stable endpoint

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.port < 65536, "deployer.port", f"{self.port} is not a TCP port")


@dataclass
class LocalDeployerConfig(BlueGreenConfig):
    """The server as managed background processes."""

    _target_: str = "rcatune.deploy.local.LocalDeployer"
    target: str = "local"


@dataclass
class DockerDeployerConfig(BlueGreenConfig):
    """An image built from a generated context (a slim Python base, pinned requirements with their wheels, the
    export, a non-root user, a HEALTHCHECK), run through the Docker API (Docker, or podman's API service)."""

    _target_: str = "rcatune.deploy.docker.DockerDeployer"
    target: str = "docker"
    port: int = 8310
    base_image: str = "python:3.11-slim"
    docker_host: Optional[str] = None  # the Docker API (default: $DOCKER_HOST, then the local socket)
    network: str = "bridge"  # bridge: publish the container's port on 127.0.0.1; host: share the host's network
    build: bool = True  # false: write the build context and print the build and run commands only

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.network in ("bridge", "host"), "deployer.network", f"{self.network!r}: bridge or host")


@dataclass
class KubernetesDeployerConfig(DeployerConfig):
    """A Deployment (probes on the health endpoints, resources, rolling update with maxUnavailable 0), a
    Service and an optional HPA, applied through the official client; rollback as `kubectl rollout undo`."""

    _target_: str = "rcatune.deploy.kubernetes.KubernetesDeployer"
    target: str = "kubernetes"
    namespace: str = "default"
    kubeconfig: Optional[str] = None  # default: $KUBECONFIG, then ~/.kube/config
    image: Optional[str] = None  # the serving image (deployer=docker builds one); default: rcatune-serve:v<N>
    replicas: int = 1
    requests: Dict[str, str] = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    limits: Dict[str, str] = field(default_factory=lambda: {"cpu": "2", "memory": "4Gi"})
    hpa_max_replicas: int = 0  # 0: no HorizontalPodAutoscaler
    hpa_cpu_percent: int = 80
    rollout_timeout_s: float = 600.0  # then the rollout is undone
    service_port: int = 80

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.replicas >= 1, "deployer.replicas", "must be at least 1")
        require(self.rollout_timeout_s > 0, "deployer.rollout_timeout_s", "must be positive")
        require(self.hpa_max_replicas == 0 or self.hpa_max_replicas >= self.replicas, "deployer.hpa_max_replicas",
                "0 (no autoscaler) or at least deployer.replicas")


SCHEMAS = {"base": DeployerConfig, "local": LocalDeployerConfig, "docker": DockerDeployerConfig,
           "kubernetes": KubernetesDeployerConfig}
