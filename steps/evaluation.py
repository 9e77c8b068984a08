"""Evaluation and gate steps."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig
from zenml.types import MarkdownString

from rcatune import constants
from rcatune.config import from_spec
from rcatune.config.schema import EvaluationConfig
from rcatune.evaluation.gate import GateDecision
from rcatune.evaluation.run import Evaluation, evaluate_candidate
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits
from rcatune.training.hf import TrainResult


def _track(result: Evaluation, **metadata: Any) -> MarkdownString:
    """Metrics and the report folder to MLflow, metrics to the artifact; the report for ZenML's dashboard."""
    import mlflow

    mlflow.log_metrics({f"tuned_{k}": v for k, v in result.tuned.metrics.items()})
    if result.base is not None:
        mlflow.log_metrics({f"base_{k}": v for k, v in result.base.metrics.items()})
    mlflow.log_artifacts(str(Path(result.report_path).parent), artifact_path=constants.EVALUATION_DIR)
    log_metadata(metadata={**metadata, "tuned": result.tuned.metrics,
                           "base": result.base.metrics if result.base else {}},
                 artifact_name=constants.EVALUATION, infer_artifact=True)
    return MarkdownString(Path(result.report_path).read_text(encoding="utf-8"))


@step(experiment_tracker=True, enable_cache=False)
def evaluate_model(splits: DatasetSplits, trained: TrainResult, model: dict[str, Any], evaluation: EvaluationConfig,
                   system_prompt: str, max_length: int, output_dir: str, progress: bool = True) -> tuple[
    Annotated[Evaluation, ArtifactConfig(name=constants.EVALUATION)],
    Annotated[MarkdownString, ArtifactConfig(name=constants.EVALUATION_REPORT)],
]:
    """Base vs tuned on the test split: metrics, plots and a markdown report."""
    result = evaluate_candidate(splits.test, from_spec(model), trained.model_dir, trained.is_adapter, evaluation,
                                system_prompt, max_length, Path(output_dir) / constants.EVALUATION_DIR,
                                trained.history, progress)
    return result, _track(result)


@step(experiment_tracker=True, enable_cache=False)
def gate_model(evaluation: Evaluation) -> Annotated[GateDecision, ArtifactConfig(name=constants.GATE_DECISION)]:
    """Record the ship decision and its reasons (a failed gate is a decision, not a crash)."""
    import mlflow

    decision = evaluation.decision
    mlflow.set_tags({"gate": "passed" if decision.passed else "failed"})
    mlflow.log_dict(decision.model_dump(), "evaluation/gate_decision.json")
    log_metadata(metadata={"passed": decision.passed, "reasons": decision.reasons}, infer_artifact=True)
    return decision


@step(experiment_tracker=True, enable_cache=False)
def evaluate_candidate_model(dataset: TrainingDataset, pipeline_cfg: dict[str, Any], model: dict[str, Any],
                             evaluation: EvaluationConfig, model_registry_name: str, system_prompt: str,
                             max_length: int, output_dir: str, progress: bool = True) -> tuple[
    Annotated[Evaluation, ArtifactConfig(name=constants.EVALUATION)],
    Annotated[MarkdownString, ArtifactConfig(name=constants.EVALUATION_REPORT)],
]:
    """Score a registered version or a model folder on every example of the data source."""
    import mlflow

    from rcatune.candidates import from_folder, from_registry

    settings = from_spec(pipeline_cfg)
    candidate = (from_folder(settings.model_dir, from_spec(model)) if settings.model_dir
                 else from_registry(model_registry_name, settings.model_version, constants.TRAINED_MODEL))
    if evaluation.compare_with_base and not candidate.has_base:
        evaluation = dataclasses.replace(evaluation, compare_with_base=False)  # no known base to compare
    result = evaluate_candidate(dataset.examples, from_spec(candidate.model_spec), candidate.model_dir,
                                candidate.is_adapter, evaluation, system_prompt, max_length,
                                Path(output_dir) / constants.EVALUATION_DIR, progress=progress,
                                title=f"rcatune evaluation of {candidate.label}")
    mlflow.set_tag("candidate", candidate.label)
    return result, _track(result, candidate=candidate.label)
