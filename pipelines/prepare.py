"""`pipeline=prepare`: load -> validate -> [review sync] -> split -> format. Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from rcatune.config.schema import DataConfig, FormatsConfig
from steps.annotation import sync_reviews
from steps.data import export_data, load_data, split_data
from steps.tracking import track_run_config


def prepare_data(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                 output_dir: str, progress: bool, annotation: dict[str, Any] | None = None, read_source: bool = True):
    """The data steps every pipeline starts with; returns the (reviewed) dataset and its splits.

    With `annotation` (a review config spec), expert reviews are merged in before the split; into what
    the pushes sent unless `read_source` (annotation.merge_into=source, or wait=true, which pushes first).
    """
    track_run_config(config, git)
    dataset = None
    if read_source:
        dataset, _report = load_data(data.source_spec(), data.max_rejected_fraction, output_dir, progress)
    if annotation is not None:
        dataset, _review = sync_reviews(dataset, annotation, output_dir, progress)
    splits = split_data(dataset, data.split)
    export_data(splits, formats, output_dir)
    return dataset, splits


@pipeline(enable_cache=False)
def prepare_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                     output_dir: str, progress: bool = True, annotation: dict[str, Any] | None = None,
                     read_source: bool = True) -> None:
    prepare_data(config, git, data, formats, output_dir, progress, annotation, read_source)
