"""Deployment steps: find the release, then deploy, roll back, report or stop on the configured deployer.
Every deploy and rollback is recorded (records file, ZenML model version, MLflow registry and run)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel
from zenml import step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import Spec, load_spec
from rcatune.config.serving import ServingConfig
from rcatune.deploy import DeploymentRecord, Release, deployer_for, release
from rcatune.deploy.records import recorded
from rcatune.runinfo import RunSummary


class DeploymentStatus(BaseModel):
    status: dict[str, Any]

    def summarise(self, summary: RunSummary) -> None:
        summary.deployment = self.status


@step(enable_cache=False)
def resolve_release(registry_name: str, version: str, force: bool = False, reason: Optional[str] = None) -> Annotated[
    Release, ArtifactConfig(name=constants.RELEASE)
]:
    """The registered version to deploy and the export it serves (refused when it failed its gate, unless forced)."""
    return release(registry_name, version, force, reason)


@step(enable_cache=False, experiment_tracker=True)
def deploy_release(release: Release, deployer: Spec, serving: ServingConfig) -> Annotated[
    DeploymentRecord, ArtifactConfig(name=constants.DEPLOYMENT)
]:
    """Start the release beside what serves, smoke-test it, switch traffic; record it."""
    return _recorded(deployer_for(load_spec(deployer), serving).deploy(release))


@step(enable_cache=False, experiment_tracker=True)
def rollback_deployment(deployer: Spec, serving: ServingConfig) -> Annotated[
    DeploymentRecord, ArtifactConfig(name=constants.DEPLOYMENT)
]:
    """Serve the previous version again; record it."""
    return _recorded(deployer_for(load_spec(deployer), serving).rollback())


@step(enable_cache=False, experiment_tracker=True)
def stop_deployment(deployer: Spec, serving: ServingConfig) -> Annotated[
    DeploymentRecord, ArtifactConfig(name=constants.DEPLOYMENT)
]:
    """Stop serving; record it."""
    return _recorded(deployer_for(load_spec(deployer), serving).stop())


@step(enable_cache=False)
def deployment_status(deployer: Spec, serving: ServingConfig) -> Annotated[
    DeploymentStatus, ArtifactConfig(name=constants.DEPLOYMENT_STATUS)
]:
    """What serves, where, and whether it answers."""
    return DeploymentStatus(status=deployer_for(load_spec(deployer), serving).status())


def _recorded(record: DeploymentRecord) -> DeploymentRecord:
    import mlflow

    recorded(record)
    mlflow.log_dict(record.model_dump(), "deployment/record.json")
    mlflow.set_tags({"deployment.action": record.action, "deployment.target": record.target,
                     "deployment.version": record.version or "none", "deployment.previous": record.previous or "none"})
    if record.seconds:
        mlflow.log_metric(f"{record.action}_seconds", record.seconds)
    return record
