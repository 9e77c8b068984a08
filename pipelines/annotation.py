"""`pipeline=annotation`: load -> validate -> push | status | sync (annotation.action). Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from rcatune.config.schema import DataConfig
from steps.annotation import push_for_review, review_status, sync_reviews
from steps.data import load_data
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def annotation_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, annotation: dict[str, Any],
                        action: str, output_dir: str, progress: bool = True, read_source: bool = True) -> None:
    track_run_config(config, git)
    dataset = None
    if read_source:  # push, or sync into the configured data (annotation.merge_into=source)
        dataset, _report = load_data(data.source_spec(), data.max_rejected_fraction, output_dir, progress)
    if action == "push":
        push_for_review(dataset, annotation, progress)
    elif action == "status":
        review_status(annotation)
    else:
        sync_reviews(dataset, annotation, output_dir, progress)
