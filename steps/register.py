"""Register the version in ZenML's Model Control Plane and MLflow's registry; promote by the rules."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.artifacts import Evaluation, GateDecision, Promotion, TrainedModel
from rcatune.config.evaluation import EvaluationConfig
from rcatune.errors import RcatuneError
from rcatune.evaluation.stats import compare
from rcatune.lineage import TrainingData
from rcatune.registry import decide_stage, production_version, register_mlflow_version, rescore
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits
from rcatune.tracking import redact


@step(experiment_tracker=True, enable_cache=False)
def register_model(dataset: TrainingDataset, splits: DatasetSplits, trained: TrainedModel, evaluation: Evaluation,
                   decision: GateDecision, evaluation_cfg: EvaluationConfig, system_prompt: str, max_length: int,
                   facts: dict[str, Any], runtime: Runtime) -> Annotated[
    Promotion, ArtifactConfig(name=constants.PROMOTION)
]:
    """Record metrics and lineage on the model version, register it in MLflow, re-score production on the
    same evaluation set, and set the stage with the reason."""
    import mlflow
    from zenml.enums import ModelStages

    version = get_step_context().model
    production = production_version(version.name) if decision.passed else None
    versus, production_value = None, None
    if production is not None:
        number, label = production
        try:
            scores = rescore(version.name, number, {"test": splits.test, "shift": splits.shift}, evaluation_cfg,
                             system_prompt, max_length, runtime)
            versus = compare("candidate", evaluation.tuned.answers, label, scores.answers, evaluation_cfg.confidence,
                             evaluation_cfg.bootstrap_resamples)
            production_value = scores.metrics.get(decision.primary_metric)
        except (RcatuneError, OSError) as error:  # its files are gone, or it cannot load here: say so, stage
            print(f"could not re-score {label}: {error}")
    stage, reason = decide_stage(decision, versus, evaluation_cfg.promotion_margin,
                                 production[1] if production else None)
    lineage = TrainingData.read(trained.model_dir)
    log_metadata(metadata={**evaluation.tuned.metrics, "evaluation_set": evaluation.headline.name,
                           "training": trained.metrics, "gate_passed": decision.passed,
                           "training_data": {"data_hash": lineage.data_hash, "examples": len(lineage.ids),
                                             "file": str(trained.model_dir) + "/rcatune_training_data.json"}
                           if lineage else {},
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
    if versus is not None:
        mlflow.log_dict(versus.model_dump(), "evaluation/versus_production.json")
    return Promotion(stage=stage, reason=reason, primary_metric=decision.primary_metric,
                     value=decision.primary_value, production_value=production_value,
                     production_version=production[1] if production else None, comparison=versus,
                     zenml_model=version.name, zenml_version=str(version.number), mlflow_model=version.name,
                     mlflow_version=mlflow_version)
