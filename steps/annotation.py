"""Review steps: push examples to Label Studio, report progress, sync reviews back into the data."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional, Tuple

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import atomic, constants
from rcatune.annotation import loop
from rcatune.annotation.merge import MergeReport
from rcatune.config import Spec
from rcatune.config.annotation import MergeInto
from rcatune.config.scrub import ScrubConfig
from rcatune.pause import pause_point
from rcatune.runinfo import RunSummary
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset
from rcatune.scrub import scrub_examples


@step
def push_for_review(dataset: TrainingDataset, annotation: Spec, runtime: Runtime) -> Annotated[
    loop.PushReport, ArtifactConfig(name=constants.PUSH_REPORT)
]:
    """Import every example not yet in the review projects (idempotent), with the AI's answer pre-filled."""
    config = annotation.load()
    client = loop.connect(config)
    report = loop.push(client, config, dataset.examples, runtime.progress,
                       source=dataset.metadata.get("source", "unknown"))
    for line in report.lines():
        print(line)
    log_metadata(metadata={"server": report.server, "retries": report.retries,
                           "projects": {p.template: p.model_dump() for p in report.projects}}, infer_artifact=True)
    return report


@step
def review_status(annotation: Spec, examples: int = 0) -> Annotated[
    loop.PushReport, ArtifactConfig(name=constants.PUSH_REPORT)
]:
    """How far the review has come, per project."""
    config = annotation.load()
    report = loop.status(loop.connect(config), config, examples)
    for line in report.lines():
        print(line)
    return report


def _query_checker(folder: str):
    from rcatune.evaluation.scoring import QueryChecker

    checker = QueryChecker(folder)

    def check(sql: str) -> str | None:
        if not checker.parses(sql):
            return "does not parse as a ClickHouse query"
        if not checker.runs(sql):
            return "does not run on the OpenTelemetry exporter tables"
        return None

    return checker, check


def _write_outputs(out: Path, dataset: TrainingDataset, report: MergeReport) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"merged": out / "merged.jsonl", "report": out / "review_report.json",
             "adjudication": out / "adjudication.csv"}
    atomic.write_text(paths["merged"], dataset.to_jsonl())
    atomic.write_text(paths["report"], report.model_dump_json(indent=2))
    with open(paths["adjudication"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["template", "task_id", "example_id", "reasons"])
        for flag in report.flagged:
            if flag.held:  # only what still needs a decision
                writer.writerow([flag.template, flag.task_id, flag.example_id, "; ".join(flag.reasons)])
    return {k: str(v) for k, v in paths.items()}


@step(experiment_tracker=True)
def sync_reviews(dataset: Optional[TrainingDataset], annotation: Spec, scrub: ScrubConfig, output_dir: str,
                 runtime: Runtime) -> Tuple[
    Annotated[TrainingDataset, ArtifactConfig(name=constants.ANNOTATED_DATASET)],
    Annotated[MergeReport, ArtifactConfig(name=constants.REVIEW_REPORT)],
]:
    """Export the reviews, check them against the labeling configs, merge corrections, report agreement.

    With annotation.wait=true, first push (idempotent) and wait until every task has its reviews.
    `dataset` is what to merge into with annotation.merge_into=source (None: what the pushes sent).
    What the experts wrote (corrections, notes) is scrubbed like the sessions were.
    """
    import mlflow

    config = annotation.load()
    client = loop.connect(config)
    if config.wait:
        for line in loop.push(client, config, dataset.examples, runtime.progress,
                              source=dataset.metadata.get("source", "unknown")).lines():
            print(line)
        loop.wait(client, config, runtime.progress)
    with tempfile.TemporaryDirectory() as folder:
        checker, check = _query_checker(folder)
        try:
            result = loop.sync(client, config, dataset.examples if dataset is not None else None, check)
        finally:
            checker.close()
    report = result.report
    for line in report.lines():
        print(line)
    into = dataset.metadata if dataset is not None and config.merge_into is MergeInto.source else {
        "source": f"examples pushed to review project {config.project!r}"}
    examples, scrubbed = scrub_examples(result.examples, scrub)
    if scrubbed.replaced:
        print(f"scrub: {scrubbed.replaced} values replaced in the experts' corrections and notes")
    merged = TrainingDataset(examples=examples, metadata={
        **into, "reviewed_from": into.get("data_hash"), "merged_into": config.merge_into.value,
        "review_server": client.url, "review_projects": [loop.title(config, t) for t in config.templates]})
    merged.metadata["data_hash"] = merged.content_hash()
    pause_point("annotation.merged")
    paths = _write_outputs(Path(output_dir) / constants.ANNOTATION_DIR, merged, report)
    counts = {k: getattr(report, k) for k in ("annotations_read", "annotations_merged_from", "annotations_rejected",
                                              "annotations_skipped", "reviewed", "validated", "human_validated_out",
                                              "root_causes_corrected", "labels_reinferred", "queries_improved",
                                              "unreviewed", "never_pushed", "examples_out")}
    counts.update(dropped=len(report.dropped), held=len(report.held), flagged=len(report.flagged))
    agreement = {f"{template}.{question}": {k: v for k, v in figures.items() if v is not None}
                 for template, questions in report.agreement.items() for question, figures in questions.items()}
    mlflow.log_metrics({f"review_{k}": v for k, v in counts.items()})
    for name, figures in agreement.items():
        for key in ("percent_agreement", "alpha"):
            if key in figures:
                mlflow.log_metric(f"agreement_{name}_{key}".replace(".", "_"), figures[key])
    for path in paths.values():
        mlflow.log_artifact(path, artifact_path=constants.ANNOTATION_DIR)
    log_metadata(metadata={**counts, "data_hash": merged.metadata["data_hash"], "agreement": agreement,
                           "files": paths}, artifact_name=constants.ANNOTATED_DATASET, infer_artifact=True)
    print(f"merged dataset: {paths['merged']} (ZenML artifact '{constants.ANNOTATED_DATASET}'; "
          "train on it with: python run.py data=annotated)")
    if report.held:
        print(f"tasks to adjudicate: {paths['adjudication']}")
    return merged, report


def summarise_push(report: loop.PushReport, summary: RunSummary) -> None:
    summary.review["projects"] = [p.model_dump() for p in report.projects]


def summarise_review(report: MergeReport, summary: RunSummary) -> None:
    """The review's figures, and where its files are."""
    summary.review.update(review_summary(report))
    review_dir = Path(summary.run_dir) / constants.ANNOTATION_DIR
    summary.artifacts["review_report"] = str(review_dir / "review_report.json")
    summary.artifacts["merged_dataset"] = str(review_dir / "merged.jsonl")


def review_summary(report: MergeReport) -> dict[str, Any]:
    """The figures a run summary keeps."""
    return json.loads(report.model_dump_json(include={"examples_in", "examples_out", "annotations_read",
                                                      "annotations_merged_from", "annotations_rejected",
                                                      "annotations_skipped", "validated", "human_validated_out",
                                                      "root_causes_corrected", "labels_reinferred", "queries_improved",
                                                      "unreviewed", "never_pushed", "decisions", "agreement"}))
