"""Data steps: load + validate, split, export formats. Each wraps one rcatune function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Tuple

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import build
from rcatune.config.schema import FormatsConfig, SplitConfig
from rcatune.formats import FormatBundle, export_formats
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits, SplitSpec, split_examples
from rcatune.validation import ValidationReport, check_report, validate_records


@step(experiment_tracker=True)
def load_data(source: dict[str, Any], max_rejected_fraction: float, output_dir: str, progress: bool = True) -> Tuple[
    Annotated[TrainingDataset, ArtifactConfig(name=constants.VALIDATED_DATASET)],
    Annotated[ValidationReport, ArtifactConfig(name=constants.VALIDATION_REPORT)],
]:
    """Read the configured source; accept or quarantine every record."""
    import mlflow

    source = build(source)
    out = Path(output_dir)
    report_file = out / constants.VALIDATION_REPORT_FILE
    examples, report = validate_records(source.records(), source.describe(), out / constants.QUARANTINE_FILE,
                                        progress)
    report_file.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    for line in report.lines():
        print(line)
    check_report(report, max_rejected_fraction)
    dataset = TrainingDataset(examples=examples, metadata={"source": source.describe()})
    data_hash = dataset.content_hash()
    dataset.metadata["data_hash"] = data_hash
    counts = {"read": report.read, "accepted": report.accepted, "rejected": report.rejected}
    mlflow.log_metrics({f"data_{k}": v for k, v in counts.items()})
    mlflow.log_metrics({f"data_rejected_{k}": v for k, v in report.by_reason.items()})
    mlflow.set_tag("data_hash", data_hash)
    mlflow.log_artifact(str(report_file), artifact_path="data")
    if report.quarantine_path:
        mlflow.log_artifact(report.quarantine_path, artifact_path="data")
    log_metadata(metadata={**counts, "by_reason": report.by_reason, "data_hash": data_hash,
                           "source": source.describe()}, artifact_name=constants.VALIDATED_DATASET, infer_artifact=True)
    return dataset, report


@step
def split_data(dataset: TrainingDataset, split: SplitConfig) -> Annotated[
    DatasetSplits, ArtifactConfig(name=constants.DATASET_SPLITS)
]:
    """Train/val/test by incident group, stratified by scenario."""
    splits = split_examples(dataset.examples, SplitSpec(split.fractions, split.seed, split.min_examples))
    log_metadata(metadata={"counts": splits.counts(), "incident_groups": splits.groups,
                           "data_hash": dataset.metadata.get("data_hash")}, infer_artifact=True)
    return splits


@step(experiment_tracker=True)
def export_data(splits: DatasetSplits, formats: FormatsConfig, output_dir: str) -> Annotated[
    FormatBundle, ArtifactConfig(name=constants.TRAINING_FORMATS)
]:
    """Write every requested training format under the run folder."""
    import mlflow

    bundle = export_formats(splits, Path(output_dir) / constants.FORMATS_DIR, list(formats.formats),
                            formats.system_prompt, formats.openai_max_tokens)
    mlflow.log_metrics({f"split_{k}": v for k, v in bundle.counts.items()})
    mlflow.log_artifacts(bundle.root, artifact_path=constants.FORMATS_DIR)
    log_metadata(metadata={"paths": bundle.paths, "counts": bundle.counts}, infer_artifact=True)
    return bundle
