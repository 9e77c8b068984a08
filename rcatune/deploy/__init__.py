"""Deployers: one interface (`Deployer`: deploy, rollback, status, stop), one record format
(`DeploymentRecord`), three targets: local processes (blue/green behind a router), a container (Docker API),
Kubernetes (official client). `pipeline=deployment` drives them; `release` finds what to deploy."""

from __future__ import annotations

from pathlib import Path

from rcatune.config import locate
from rcatune.config.serving import ServingConfig
from rcatune.deploy.base import Deployer, DeploymentError
from rcatune.deploy.records import DeploymentRecord, Release, update_registry


def deployer_for(config, serving: ServingConfig) -> Deployer:
    """The deployer a `deployer=` option names."""
    return locate(config._target_)(config, serving)


def release(registry_name: str, version: str) -> Release:
    """The registered version to deploy, with the export it serves; a clear error when it has none."""
    from rcatune.registry import find_version

    found = find_version(registry_name, version)
    if found.export_dir is None:
        raise DeploymentError(f"{found.label} has no export to deploy (its run stopped before the export step); "
                              "train it again, or deploy another version (deployment.version=N)")
    if not Path(found.export_dir).exists():
        raise DeploymentError(f"{found.label}: its export {found.export_dir} is missing (its run folder was "
                              "deleted?); train it again, or deploy another version (deployment.version=N)")
    return Release(registry_name=registry_name, version=found.number, served_name=found.served_name,
                   folder=found.export_dir, stage=found.stage)


__all__ = ["Deployer", "DeploymentError", "DeploymentRecord", "Release", "deployer_for", "release",
           "update_registry"]
