"""The export step: a serving bundle any transformers user can load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import from_spec
from rcatune.config.schema import ExportConfig
from rcatune.evaluation.run import Evaluation
from rcatune.export import ExportResult, export_model
from rcatune.registry import Promotion
from rcatune.training.hf import TrainResult


@step(experiment_tracker=True, enable_cache=False)
def export_trained(trained: TrainResult, evaluation: Evaluation, promotion: Promotion, model: dict[str, Any],
                   export: ExportConfig, facts: dict[str, Any], output_dir: str) -> Annotated[
    ExportResult, ArtifactConfig(name=constants.EXPORT)
]:
    """Adapter, merged weights, tokenizer, model card and the optional quantised copy."""
    import mlflow

    card_facts = {**facts, "name": promotion.zenml_model or "rcatune model", "base_model": trained.base_model,
                  "method": trained.method, "metrics": evaluation.tuned.metrics,
                  "gate": "passed" if evaluation.decision.passed else "failed", "stage": promotion.stage or "none"}
    result = export_model(from_spec(model), trained.model_dir, trained.is_adapter,
                          Path(output_dir) / constants.EXPORT_DIR, export.quantisation, card_facts)
    metrics = {"export_merged_mb": result.merged_bytes / 2**20}
    if result.quantised_bytes:
        metrics.update(export_quantised_mb=result.quantised_bytes / 2**20, export_size_reduction=result.size_reduction)
    mlflow.log_metrics(metrics)
    mlflow.log_artifact(str(Path(result.merged) / "README.md"), artifact_path=constants.EXPORT_DIR)
    log_metadata(metadata=result.model_dump(exclude_none=True), infer_artifact=True)  # ZenML metadata has no null
    return result
