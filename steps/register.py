"""Register the version in ZenML's Model Control Plane and MLflow's registry; promote by the rules."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.artifacts import Evaluation, GateDecision, Promotion, TrainedModel
from rcatune.config.evaluation import EvaluationConfig
from rcatune.registry import register_version
from rcatune.registry.metadata import version_metadata
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits


@step(experiment_tracker=True, enable_cache=False)
def register_model(dataset: TrainingDataset, splits: DatasetSplits, trained: TrainedModel, evaluation: Evaluation,
                   decision: GateDecision, evaluation_cfg: EvaluationConfig, system_prompt: str, max_length: int,
                   facts: dict[str, Any], runtime: Runtime) -> Annotated[
    Promotion, ArtifactConfig(name=constants.PROMOTION)
]:
    """Record metrics and lineage on the model version, register it in MLflow, re-score production on the
    same evaluation set, and set the stage with the reason."""
    import mlflow

    mlflow.log_artifacts(trained.model_dir, artifact_path=constants.MLFLOW_MODEL_PATH)
    promotion = register_version(get_step_context().model, trained, evaluation, decision,
                                 {"test": splits.test, "shift": splits.shift}, evaluation_cfg, system_prompt,
                                 max_length, version_metadata(dataset, trained, evaluation, decision, facts),
                                 mlflow.active_run().info.run_id, constants.MLFLOW_MODEL_PATH, runtime)
    mlflow.set_tags({"stage": promotion.stage or "none", "stage_reason": promotion.reason[:500]})
    if promotion.comparison is not None:
        mlflow.log_dict(promotion.comparison.model_dump(), "evaluation/versus_production.json")
    return promotion
