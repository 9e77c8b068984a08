"""The export step: a serving bundle any transformers user can load, smoke-tested through the inference layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.artifacts import Evaluation, ExportBundle, Promotion, TrainedModel
from rcatune.config.root import ExportConfig
from rcatune.export import export_model
from rcatune.runtime import Runtime


@step(experiment_tracker=True, enable_cache=False)
def export_trained(trained: TrainedModel, evaluation: Evaluation, promotion: Promotion, export: ExportConfig,
                   facts: dict[str, Any], smoke_tokens: int, output_dir: str, runtime: Runtime) -> Annotated[
    ExportBundle, ArtifactConfig(name=constants.EXPORT)
]:
    """Adapter, merged weights, tokenizer, signature, model card and the optional quantised copy."""
    import mlflow

    card_facts = {**facts, "name": promotion.zenml_model or "rcatune model", "base_model": trained.base_model,
                  "method": trained.method, "metrics": evaluation.tuned.metrics,
                  "gate": "passed" if evaluation.decision.passed else "failed", "stage": promotion.stage or "none"}
    result = export_model(trained, Path(output_dir) / constants.EXPORT_DIR, export.quantisation, card_facts,
                          runtime, smoke_tokens, onnx=export.onnx)
    metrics = {"export_merged_mb": result.merged_bytes / 2**20,
               "export_smoke_passed": float(bool(result.smoke.get("passed")))}
    if result.quantised_bytes:
        metrics.update(export_quantised_mb=result.quantised_bytes / 2**20, export_size_reduction=result.size_reduction)
    if result.onnx:
        metrics.update(export_onnx_mb=result.onnx_report["bytes"] / 2**20,
                       export_onnx_max_logit_difference=result.onnx_report["parity"]["max_logit_difference"])
    mlflow.log_metrics(metrics)
    for name in ("README.md", "rcatune_signature.json"):
        if (Path(result.merged) / name).exists():
            mlflow.log_artifact(str(Path(result.merged) / name), artifact_path=constants.EXPORT_DIR)
    log_metadata(metadata=result.model_dump(exclude_none=True), infer_artifact=True)  # ZenML metadata has no null
    return result
