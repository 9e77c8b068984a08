"""Register versions and decide stages: ZenML Model Control Plane and the MLflow registry, in step.

A version that passes the gate becomes `staging` (MLflow alias `challenger`); it becomes
`production` (alias `champion`) only when it beats the current production version on the primary
metric, or when there is none. Every decision carries its reason.
"""

from __future__ import annotations

from typing import Optional

from rcatune.artifacts import GateDecision

STAGE_ALIASES = {"staging": "challenger", "production": "champion"}


def decide_stage(decision: GateDecision, production_value: Optional[float]) -> tuple[Optional[str], str]:
    """Which stage this version earns, and why."""
    value, metric = decision.primary_value, decision.primary_metric
    if not decision.passed:
        return None, "gate failed: " + "; ".join(check.text() for check in decision.failed)
    if production_value is None:
        return "production", f"gate passed and there is no production version yet ({metric} {value:.3f})"
    if value is not None and value > production_value:
        return "production", f"{metric} {value:.3f} beats production's {production_value:.3f}"
    return "staging", f"gate passed; {metric} {value:.3f} does not beat production's {production_value:.3f}"


def register_mlflow_version(name: str, run_id: str, artifact_path: str, stage: Optional[str],
                            tags: dict[str, str]) -> str:
    """A registered-model version for the run's logged model folder, with the stage's alias."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(name, description="rcatune root-cause models")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    version = client.create_model_version(name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id,
                                          tags=tags)
    if stage is not None:
        client.set_registered_model_alias(name, STAGE_ALIASES[stage], version.version)
        if stage == "production":
            client.set_registered_model_alias(name, STAGE_ALIASES["staging"], version.version)
    return str(version.version)
