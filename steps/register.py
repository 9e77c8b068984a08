"""Register the version in ZenML's Model Control Plane and MLflow's registry; promote by the rules."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.artifacts import Evaluation, GateDecision, Promotion, TrainedModel
from rcatune.registry import decide_stage, register_mlflow_version
from rcatune.schema import TrainingDataset
from rcatune.tracking import redact


def _production_value(model_name: str, metric: str) -> float | None:
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        current = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None
    value = current.run_metadata.get(metric)
    return float(value) if value is not None else None


@step(experiment_tracker=True, enable_cache=False)
def register_model(dataset: TrainingDataset, trained: TrainedModel, evaluation: Evaluation, decision: GateDecision,
                   facts: dict[str, Any]) -> Annotated[Promotion, ArtifactConfig(name=constants.PROMOTION)]:
    """Record metrics on the model version, register it in MLflow, and set its stage with the reason."""
    import mlflow
    from zenml.enums import ModelStages

    version = get_step_context().model
    production_value = _production_value(version.name, decision.primary_metric)
    stage, reason = decide_stage(decision, production_value)
    log_metadata(metadata={**evaluation.tuned.metrics, "training": trained.metrics, "gate_passed": decision.passed,
                           "gate_checks": [c.model_dump(exclude_none=True) for c in decision.checks],
                           "stage_decision": stage or "none", "stage_reason": reason,
                           "base_model": trained.base_model, "method": trained.method, "backend": trained.backend,
                           "model_spec": trained.model_spec.model_dump(),
                           "data_hash": dataset.metadata.get("data_hash", "unknown"),
                           "git_commit": facts.get("git_commit") or "unknown", "config": redact(facts["config"])},
                 infer_model=True)
    run = mlflow.active_run()
    mlflow.log_artifacts(trained.model_dir, artifact_path=constants.MLFLOW_MODEL_PATH)
    mlflow_version = register_mlflow_version(
        version.name, run.info.run_id, constants.MLFLOW_MODEL_PATH, stage,
        tags={"zenml_version": str(version.number), "gate": "passed" if decision.passed else "failed",
              "stage_reason": reason[:500]})
    if stage is not None:
        version.set_stage(ModelStages(stage), force=True)
    mlflow.set_tags({"stage": stage or "none", "stage_reason": reason[:500]})
    return Promotion(stage=stage, reason=reason, primary_metric=decision.primary_metric,
                     value=decision.primary_value, production_value=production_value, zenml_model=version.name,
                     zenml_version=str(version.number), mlflow_model=version.name, mlflow_version=mlflow_version)
