"""`pipeline=prepare`: load -> validate -> [review sync] -> split -> format. Wiring only."""

from __future__ import annotations

from typing import Any, Optional

from zenml import pipeline

from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.data import SplitConfig
from rcatune.config.root import FormatsConfig
from rcatune.config.scrub import ScrubConfig
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from rcatune.runtime import Runtime
from steps.annotation import summarise_review, sync_reviews
from steps.data import export_data, load_data, split_data, summarise_dataset, summarise_formats
from steps.tracking import track_run_config


def prepare_data(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig, split: SplitConfig,
                 formats: FormatsConfig, output_dir: str, runtime: Runtime, annotation: Optional[Spec] = None,
                 read_source: bool = True):
    """The data steps every training pipeline starts with; returns the (reviewed) dataset and its splits.

    With `annotation`, expert reviews are merged in before the split: into what the pushes sent, unless
    `read_source` (annotation.merge_into=source, or wait=true, which pushes the source first)."""
    track_run_config(config, git)
    dataset = None
    if read_source:
        dataset, _report = load_data(data, scrub, output_dir, runtime)
    if annotation is not None:
        dataset, _review = sync_reviews(dataset, annotation, scrub, output_dir, runtime)
    splits = split_data(dataset, split)
    export_data(splits, formats, output_dir)
    return dataset, splits


@pipeline(enable_cache=False)
def prepare_pipeline(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig, split: SplitConfig,
                     formats: FormatsConfig, output_dir: str, runtime: Runtime, annotation: Optional[Spec] = None,
                     read_source: bool = True) -> None:
    prepare_data(config, git, data, scrub, split, formats, output_dir, runtime, annotation, read_source)


def data_inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    """The inputs of `prepare_data`, shared by every pipeline built on it."""
    review = cfg.annotation.enabled
    return {"config": context.resolved, "git": context.git, "data": to_spec("data", cfg.data),
            "scrub": cfg.scrub, "split": cfg.data.split, "formats": cfg.formats, "output_dir": str(context.run_dir),
            "runtime": context.runtime, "annotation": to_spec("annotation", cfg.annotation) if review else None,
            "read_source": not review or cfg.annotation.reads_source}


def review_first(cfg: RunConfig) -> Optional[str]:
    """With review that waits for experts (push or status), the annotation pipeline runs and training
    comes later (annotation.action=sync continues); with sync or wait=true, reviews merge in here."""
    return "annotation" if cfg.annotation.enabled and cfg.annotation.waits_for_experts else None


DATA_OUTPUTS = (
    Output("track_run_config", constants.RUN_TRACKING),
    Output("load_data", constants.VALIDATED_DATASET, summarise_dataset, load=False),
    Output("sync_reviews", constants.REVIEW_REPORT, summarise_review),
    Output("sync_reviews", constants.ANNOTATED_DATASET, summarise_dataset, load=False),
    Output("export_data", constants.TRAINING_FORMATS, summarise_formats),
)

register(PipelineDefinition(name="prepare", pipeline=prepare_pipeline, inputs=data_inputs, outputs=DATA_OUTPUTS,
                            route=review_first))
