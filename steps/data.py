"""Data steps: load + validate, split, export formats. Each wraps one rcatune function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Tuple

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import Spec
from rcatune.config.data import SplitConfig
from rcatune.config.root import FormatsConfig
from rcatune.config.scrub import ScrubConfig
from rcatune.formats import FormatBundle, export_formats
from rcatune.runinfo import RunSummary
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits, SplitSpec, split_examples
from rcatune.validation import ValidationReport, load_source


@step(experiment_tracker=True)
def load_data(data: Spec, scrub: ScrubConfig, output_dir: str, runtime: Runtime) -> Tuple[
    Annotated[TrainingDataset, ArtifactConfig(name=constants.VALIDATED_DATASET)],
    Annotated[ValidationReport, ArtifactConfig(name=constants.VALIDATION_REPORT)],
]:
    """Read the configured source; accept or quarantine every record; scrub the accepted ones."""
    import mlflow

    dataset, report = load_source(data.load(), Path(output_dir), runtime.progress, scrub)
    counts = {"read": report.read, "accepted": report.accepted, "rejected": report.rejected}
    mlflow.log_metrics({f"data_{k}": v for k, v in counts.items()})
    mlflow.log_metrics({f"data_rejected_{k}": v for k, v in report.by_reason.items()})
    mlflow.set_tag("data_hash", dataset.metadata["data_hash"])
    mlflow.set_tag("scrub", "on" if report.scrub.enabled else "OFF (scrub=none)")
    mlflow.log_metrics({"scrub_replaced": report.scrub.replaced,
                        **{f"scrub_{kind.lower()}": n for kind, n in report.scrub.by_type.items()}})
    mlflow.log_artifact(str(Path(output_dir) / constants.VALIDATION_REPORT_FILE), artifact_path="data")
    if report.quarantine_path:
        mlflow.log_artifact(report.quarantine_path, artifact_path="data")
    log_metadata(metadata={**counts, "by_reason": report.by_reason, "data_hash": dataset.metadata["data_hash"],
                           "source": dataset.metadata["source"], "scrub": report.scrub.model_dump()},
                 artifact_name=constants.VALIDATED_DATASET, infer_artifact=True)
    return dataset, report


@step
def split_data(dataset: TrainingDataset, split: SplitConfig) -> Annotated[
    DatasetSplits, ArtifactConfig(name=constants.DATASET_SPLITS)
]:
    """Train/val/test by incident group, stratified by scenario."""
    splits = split_examples(dataset.examples, SplitSpec(split.fractions, split.seed, split.min_examples,
                                                        split.shift_phrasing))
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


def summarise_dataset(artifact_version, summary: RunSummary) -> None:
    """A dataset artifact's version and content hash (the last dataset a pipeline produced is the one it used)."""
    summary.artifacts[artifact_version.name] = f"{artifact_version.name} v{artifact_version.version}"
    summary.data_hash = artifact_version.run_metadata.get("data_hash", summary.data_hash)


def summarise_formats(bundle: FormatBundle, summary: RunSummary) -> None:
    summary.counts["splits"] = bundle.counts
    summary.artifacts.update({f"format_{k}": v for k, v in bundle.paths.items()})
