"""Deployers: one interface (`Deployer`: deploy, rollback, status, stop), one record format
(`DeploymentRecord`), three targets: local processes (blue/green behind a router), a container (Docker API),
Kubernetes (official client). `pipeline=deployment` drives them; `release` finds what to deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rcatune.config import locate
from rcatune.config.serving import ServingConfig
from rcatune.deploy.base import Deployer, DeploymentError
from rcatune.deploy.records import DeploymentRecord, DeploymentStatus, Release, recorded, update_registry


def deployer_for(config, serving: ServingConfig) -> Deployer:
    """The deployer a `deployer=` option names."""
    return locate(config._target_)(config, serving)


def act(action: str, config, serving: ServingConfig, to_deploy: Optional[Release] = None) -> DeploymentRecord:
    """Deploy `to_deploy`, roll back or stop on the deployer `config` names, and keep the record (history, registry,
    the caller's MLflow run): the same whoever acts, the pipeline's step, the control API or a script."""
    deployer = deployer_for(config, serving)
    if action == "deploy":
        if to_deploy is None:
            raise DeploymentError("deploy: which release? (rcatune.deploy.release(model, version))")
        return recorded(deployer.deploy(to_deploy))
    if action not in ("rollback", "stop"):
        raise DeploymentError(f"deployment action {action!r}: use deploy, rollback, stop or status")
    return recorded(getattr(deployer, action)())


def status(config, serving: ServingConfig) -> DeploymentStatus:
    """What serves on the deployer `config` names, and whether it answers."""
    return DeploymentStatus(status=deployer_for(config, serving).status())


def release(registry_name: str, version: str, force: bool = False, reason: Optional[str] = None) -> Release:
    """The registered version to deploy, with the export it serves; a clear error when it has none, or when it
    failed its gate or holds neither staging nor production (unless `force`, which the release records)."""
    from rcatune.deploy.records import who
    from rcatune.registry import find_version

    found = find_version(registry_name, version)
    refused = _why_not(found)
    if refused and not force:
        raise DeploymentError(f"{found.label} is refused: {refused}; deploy a version that passed, or force it with "
                              "deployment.force=true deployment.reason='...' (who and why are recorded)")
    if found.export_dir is None:
        raise DeploymentError(f"{found.label} has no export to deploy (its run stopped before the export step); "
                              "train it again, or deploy another version (deployment.version=N)")
    if not Path(found.export_dir).exists():
        raise DeploymentError(f"{found.label}: its export {found.export_dir} is missing (its run folder was "
                              "deleted?); train it again, or deploy another version (deployment.version=N)")
    forced = {"by": who(), "reason": reason, "refused_because": refused} if refused else None
    return Release(registry_name=registry_name, version=found.number, served_name=found.served_name,
                   folder=found.export_dir, stage=found.stage, forced=forced)


def _why_not(found) -> Optional[str]:
    """Why a version should not ship, or None. A version that passed its gate may ship from staging, production,
    or archived (a former one that another took the stage from: rolling forward again after a rollback)."""
    if found.gate_passed is False:
        return "it failed its gate (" + "; ".join(found.gate_failed or ("see its metadata",)) + ")"
    shippable = ("staging", "production", "archived") if found.gate_passed else ("staging", "production")
    if found.stage not in shippable:
        return f"it has no stage a version that passed its gate would have (stage: {found.stage or 'none'})"
    return None


__all__ = ["Deployer", "DeploymentError", "DeploymentRecord", "DeploymentStatus", "Release", "act", "deployer_for",
           "recorded", "release", "status", "update_registry"]
