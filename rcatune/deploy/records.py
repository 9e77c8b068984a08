"""What a deployment is: a record of each deploy, rollback and stop, kept with the registry.

A record says which version now serves, where (target and endpoint), which one served before, when and
by whom. Records are appended to `<state>/deployments/records.jsonl` (the history a rollback reads), and
each deploy or rollback moves the registry with it: the serving version becomes `production` in ZenML's
Model Control Plane (the one it replaced is archived by ZenML) and MLflow's `champion`, with the record in
the version's metadata and tags.
"""

from __future__ import annotations

import getpass
import json
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field

from rcatune.state import state_dir

RECORDS_FILE = "records.jsonl"


def deployments_dir() -> Path:
    path = state_dir() / "deployments"
    path.mkdir(parents=True, exist_ok=True)
    return path


def who() -> str:
    """user@host of whoever ran the action."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Release(BaseModel):
    """A version to deploy: the folder to serve, under what name."""

    registry_name: str
    version: str  # the registry version number
    served_name: str  # the model id the endpoint lists (<registry>-v<N>)
    folder: str  # what is served: the export (merged weights, or the adapter)
    stage: Optional[str] = None
    forced: Optional[dict[str, Any]] = None  # {by, reason, refused_because}: deployed against the rules, on purpose


class DeploymentRecord(BaseModel):
    action: str  # deploy | rollback | stop
    target: str  # local | docker | kubernetes
    name: str  # the deployment's name
    endpoint: Optional[str]  # base URL; its /v1 is the OpenAI API
    version: Optional[str]  # the version now serving (None after stop)
    model: Optional[str] = None  # its served model id
    previous: Optional[str] = None  # the version that served before
    registry_name: str = "rcatune-rca"
    at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    by: str = Field(default_factory=who)
    seconds: float = 0.0  # how long the action took
    changed: bool = True  # False: nothing to do (already serving that version)
    detail: dict[str, Any] = Field(default_factory=dict)

    def summarise(self, summary) -> None:
        summary.deployment = self.model_dump()

    def line(self) -> str:
        if self.action == "stop":
            served = f"it served v{self.previous}" if self.previous else "nothing was serving"
            return f"{self.target} deployment {self.name!r} stopped ({served})"
        if not self.changed:
            return f"{self.target}: v{self.version} already serves at {self.endpoint}; nothing changed"
        before = f", replacing v{self.previous}" if self.previous else ""
        forced = self.detail.get("forced")
        note = f"; FORCED by {forced['by']}: {forced['reason']} ({forced['refused_because']})" if forced else ""
        return (f"{self.target}: v{self.version} ({self.model}) serves at {self.endpoint}/v1{before} "
                f"({self.action} took {self.seconds:.2f} s){note}")


def append(record: DeploymentRecord) -> None:
    with (deployments_dir() / RECORDS_FILE).open("a", encoding="utf-8") as handle:
        handle.write(record.model_dump_json() + "\n")


def recorded(record: DeploymentRecord) -> DeploymentRecord:
    """The record kept: appended to the history and, for a change, moving the registry with it; whoever acts
    (the pipeline's step, the control API, a recovery) goes through here."""
    append(record)
    update_registry(record)
    _track(record)
    print(record.line(), flush=True)
    return record


def _track(record: DeploymentRecord) -> None:
    """Into the MLflow run of whoever acts, when there is one (the pipeline's step has one)."""
    from rcatune.tracking import tracking_run

    if not tracking_run():
        return
    import mlflow

    mlflow.log_dict(record.model_dump(), "deployment/record.json")
    mlflow.set_tags({"deployment.action": record.action, "deployment.target": record.target,
                     "deployment.version": record.version or "none", "deployment.previous": record.previous or "none"})
    if record.seconds:
        mlflow.log_metric(f"{record.action}_seconds", record.seconds)


class DeploymentStatus(BaseModel):
    """What serves, where, and whether it answers (`deployment.action=status`)."""

    status: dict[str, Any]

    def summarise(self, summary) -> None:
        summary.deployment = self.status


def history(target: Optional[str] = None, name: Optional[str] = None) -> list[DeploymentRecord]:
    path = deployments_dir() / RECORDS_FILE
    if not path.exists():
        return []
    records = [DeploymentRecord.model_validate(json.loads(line)) for line in path.read_text().splitlines() if line]
    return [r for r in records if (target is None or r.target == target) and (name is None or r.name == name)]


def update_registry(record: DeploymentRecord) -> None:
    """The serving version becomes production (ZenML) and champion (MLflow), with the record attached."""
    if record.version is None or not record.changed:
        return
    from mlflow.tracking import MlflowClient
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import ModelStages

    from rcatune.registry import sync_aliases

    version = Client().get_model_version(record.registry_name, int(record.version))
    version.set_stage(ModelStages.PRODUCTION, force=True)
    log_metadata(metadata={"deployments": {f"{record.target}/{record.name}/{record.at}": record.model_dump(
        exclude_none=True, exclude={"detail"})}}, model_name=record.registry_name, model_version=str(version.number))
    client = MlflowClient()
    found = client.search_model_versions(f"name='{record.registry_name}' and tag.zenml_version='{record.version}'")
    if found:
        mlflow_version = found[0].version
        sync_aliases(record.registry_name)  # champion follows the new production
        client.set_registered_model_alias(record.registry_name, f"deployed-{record.target}", mlflow_version)
        for key, value in {"deployed.target": record.target, "deployed.endpoint": record.endpoint or "",
                           "deployed.at": record.at, "deployed.by": record.by,
                           "deployed.previous": record.previous or "", "deployed.action": record.action}.items():
            client.set_model_version_tag(record.registry_name, mlflow_version, key, value)
