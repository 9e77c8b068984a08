"""The drift step: new sessions against the training split of a registered version (or a model folder's run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Tuple

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import Spec
from rcatune.drift import DriftReport, compare, model_confidence, reference_profile, write_report
from rcatune.errors import ConfigError
from rcatune.inference import load_folder
from rcatune.models import holds_model
from rcatune.registry.versions import registry_folder
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset


@step(experiment_tracker=True, enable_cache=False)
def check_drift(dataset: TrainingDataset, pipeline: Spec, model_registry_name: str, output_dir: str,
                runtime: Runtime, system_prompt: str) -> Tuple[
    Annotated[DriftReport, ArtifactConfig(name=constants.DRIFT_REPORT)],
    Annotated[TrainingDataset, ArtifactConfig(name=constants.DRIFTED_SESSIONS)],
]:
    """Score the drift of every valid session, write the report, and hand on the drifted sessions (all of them
    when the score passes the threshold; none otherwise)."""
    import mlflow

    settings = pipeline.load()
    folder, label = (settings.model_dir, f"model {settings.model_dir}") if settings.model_dir \
        else registry_folder(model_registry_name, settings.model_version)
    loaded = confidence = None
    if settings.model_signal:
        if not holds_model(folder):
            raise ConfigError(f"{folder} holds no model to ask for its confidence: point at a trained model, or set "
                              "pipeline.model_signal=false to compare the sessions alone")
        loaded = load_folder(folder, runtime)
        system_prompt = loaded.system_prompt or system_prompt
    profile, split = reference_profile(folder, loaded, system_prompt)
    if loaded is not None:
        confidence = model_confidence(loaded, dataset.examples, system_prompt)
        loaded.release()
    report = compare(profile, dataset.examples, settings.threshold, settings.outlier_quantile, confidence)
    paths = write_report(report, profile, Path(output_dir) / constants.DRIFT_DIR)
    for line in report.lines():
        print(line)
    print(f"against {label}'s training split ({split}); report: {paths['drift.md']}")
    mlflow.log_metrics({"drift_score": report.score, "drift_centroid_shift": report.centroid_shift,
                        **{f"drift_share_{k}": v for k, v in report.shares.items()},
                        **({"drift_confidence_median": report.confidence_median} if confidence is not None else {})})
    for path in paths.values():
        mlflow.log_artifact(path, artifact_path=constants.DRIFT_DIR)
    drifted = set(report.drifted_ids()) if report.triggered else set()
    log_metadata(metadata={"score": report.score, "triggered": report.triggered, "reference": label,
                           "drifted": len(drifted)}, infer_artifact=True, artifact_name=constants.DRIFT_REPORT)
    return report, TrainingDataset(examples=[e for e in dataset.examples if e.id in drifted],
                                   metadata={**dataset.metadata, "drifted_from": label})
