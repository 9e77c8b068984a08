"""Deployment steps: each calls `rcatune.deploy`, which records every change whoever deploys."""

from typing import Annotated, Optional

from zenml import step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import Spec, load_spec
from rcatune.config.serving import ServingConfig
from rcatune.deploy import DeploymentRecord, DeploymentStatus, Release, act, release, status

Record = Annotated[DeploymentRecord, ArtifactConfig(name=constants.DEPLOYMENT)]


@step(enable_cache=False)
def resolve_release(registry_name: str, version: str, force: bool = False, reason: Optional[str] = None) -> Annotated[
        Release, ArtifactConfig(name=constants.RELEASE)]:
    """The registered version to deploy and the export it serves (refused when it failed its gate, unless forced)."""
    return release(registry_name, version, force, reason)


@step(enable_cache=False, experiment_tracker=True)
def deploy_release(release: Release, deployer: Spec, serving: ServingConfig) -> Record:
    """Start the release beside what serves, smoke-test it, switch traffic; record it."""
    return act("deploy", load_spec(deployer), serving, release)


@step(enable_cache=False, experiment_tracker=True)
def change_deployment(action: str, deployer: Spec, serving: ServingConfig) -> Record:
    """Roll back to the previous version, or stop serving; record it."""
    return act(action, load_spec(deployer), serving)


@step(enable_cache=False)
def deployment_status(deployer: Spec, serving: ServingConfig) -> Annotated[
        DeploymentStatus, ArtifactConfig(name=constants.DEPLOYMENT_STATUS)]:
    """What serves, where, and whether it answers."""
    return status(load_spec(deployer), serving)
