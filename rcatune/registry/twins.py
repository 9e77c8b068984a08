"""Every ZenML model version has an MLflow twin (a registered-model version tagged `zenml_version`), and MLflow's
aliases follow ZenML's stages (`champion` = production, `challenger` = staging, else production). ZenML's stage
is the commit point of a promotion: a process killed anywhere in between leaves something `reconcile` finds on
the next run, repairs where the truth is known (aliases from stages) and reports in one line where it is not (a
registration that never finished, a twin whose ZenML version is gone).

    python -m rcatune.registry check [--model rcatune-rca]     # report and repair; exit 1 when something is off
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any, Optional

STAGE_ALIASES = {"staging": "challenger", "production": "champion"}
REGISTRATION = "registration"  # ZenML version metadata: started | complete | interrupted


def mlflow_twins(model_name: str) -> dict[str, Any]:
    """MLflow versions of `model_name` by the ZenML version number they are tagged with."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient().search_model_versions(f"name='{model_name}'")
    except MlflowException:
        return {}
    return {v.tags["zenml_version"]: v for v in found if "zenml_version" in v.tags}


def register_twin(name: str, run_id: str, artifact_path: str, tags: dict[str, str]) -> str:
    """The MLflow version for the run's logged model folder (no alias yet: `sync_aliases` follows the stage)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(name, description="rcatune root-cause models")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    return str(client.create_model_version(name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id,
                                           tags=tags).version)


def zenml_stages(model_name: str) -> dict[str, str]:
    """{stage: ZenML version number} for production and staging."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    stages = {}
    for stage in (ModelStages.PRODUCTION, ModelStages.STAGING):
        try:
            stages[stage.value] = str(Client().get_model_version(model_name, stage).number)
        except KeyError:
            pass
    return stages


def sync_aliases(model_name: str) -> list[str]:
    """Point MLflow's aliases at the twins of ZenML's production and staging versions; what was moved."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    stages, twins = zenml_stages(model_name), mlflow_twins(model_name)
    wanted = {alias: stages.get(stage) for stage, alias in STAGE_ALIASES.items()}
    wanted["challenger"] = wanted["challenger"] or wanted["champion"]
    client, moved = MlflowClient(), []
    for alias, number in wanted.items():
        twin = twins.get(number) if number else None
        try:
            current = str(client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException:
            current = None
        if twin is None:  # no ZenML version holds the stage (or it has no twin): the alias must not stay behind
            if current is not None and number is None:
                client.delete_registered_model_alias(model_name, alias)
                moved.append(f"MLflow {alias} removed from v{current} (no ZenML version holds its stage)")
            continue
        if current != str(twin.version):
            client.set_registered_model_alias(model_name, alias, twin.version)
            moved.append(f"MLflow {alias} now v{twin.version} (ZenML v{number}, {_stage_of(stages, number)})")
    return moved


def _stage_of(stages: dict[str, str], number: str) -> str:
    return next(stage for stage, n in stages.items() if n == number)


def claim() -> dict[str, Any]:
    """Who registers: a registration in progress is not taken for an interrupted one while its process lives."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class Check:
    """What `reconcile` found: repairs made and differences it can only report."""

    repaired: list[str] = field(default_factory=list)
    reported: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.repaired and not self.reported

    def line(self, model_name: str) -> str:
        if self.clean:
            return f"registry check: {model_name}: ZenML and MLflow agree"
        parts = [f"repaired {'; '.join(self.repaired)}" if self.repaired else "",
                 f"found {'; '.join(self.reported)}" if self.reported else ""]
        return f"registry check: {model_name}: " + " | ".join(p for p in parts if p)


def reconcile(model_name: str, skip: Optional[str] = None) -> Check:
    """Compare ZenML's versions with their MLflow twins; repair aliases, mark interrupted registrations.
    `skip`: the version this process is registering now."""
    from zenml.client import Client

    from rcatune.processes import alive

    check = Check()
    try:
        versions = list(Client().list_model_versions(model=model_name, size=1000, hydrate=True))
    except KeyError:
        return check
    twins = mlflow_twins(model_name)
    numbers = {str(v.number) for v in versions}
    for version in versions:
        number = str(version.number)
        meta = version.run_metadata or {}
        state = meta.get(REGISTRATION)
        if number == skip or state != "started":
            continue
        who = meta.get("registered_by") or {}
        if who.get("host") == socket.gethostname() and alive(who.get("pid")):
            continue  # another run is registering it right now
        twin = twins.get(number)
        decided = meta.get("stage_decision", "none")
        if twin is not None and _stage(version) == decided:  # killed after its commit point: only the end is missing
            _mark(model_name, number, "complete", mlflow_version=str(twin.version))
            check.repaired.append(f"v{number}: registered and staged ({decided}) but not marked complete: marked")
            continue
        _mark(model_name, number, "interrupted")
        if twin is not None:
            from mlflow.tracking import MlflowClient

            MlflowClient().set_model_version_tag(model_name, twin.version, REGISTRATION, "interrupted")
        check.reported.append(f"v{number}: its registration was interrupted ("
                              + (f"MLflow v{twin.version} exists" if twin else "no MLflow twin")
                              + f", stage {_stage(version)}, earned {decided}); marked interrupted and left "
                              "unpromoted: rerun its training to register it")
    for number, twin in twins.items():
        if number not in numbers:
            check.reported.append(f"MLflow v{twin.version} names ZenML v{number}, which does not exist")
    check.repaired += sync_aliases(model_name)
    return check


def _stage(version) -> str:
    stage = version.stage.value if hasattr(version.stage, "value") else version.stage
    return stage or "none"


def _mark(model_name: str, number: str, state: str, **extra: Any) -> None:
    from zenml import log_metadata

    log_metadata(metadata={REGISTRATION: state, **extra}, model_name=model_name, model_version=number)
