"""`pipeline=annotation`: push | status | sync (annotation.action) against the review server. Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.annotation import AnnotationAction
from rcatune.config.scrub import ScrubConfig
from rcatune.errors import ConfigError
from rcatune.runinfo import RunSummary
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from rcatune.runtime import Runtime
from steps.annotation import push_for_review, review_status, summarise_push, summarise_review, sync_reviews
from steps.data import load_data, summarise_dataset
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def annotation_pipeline(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig, annotation: Spec,
                        action: str,
                        output_dir: str, runtime: Runtime, read_source: bool = True) -> None:
    track_run_config(config, git)
    dataset = None
    if read_source:  # push, or sync into the configured data (annotation.merge_into=source)
        dataset, _report = load_data(data, scrub, output_dir, runtime)
    if action == "push":
        push_for_review(dataset, annotation, runtime)
    elif action == "status":
        review_status(annotation)
    else:
        sync_reviews(dataset, annotation, scrub, output_dir, runtime)


def _inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    return {"config": context.resolved, "git": context.git, "data": to_spec("data", cfg.data), "scrub": cfg.scrub,
            "annotation": to_spec("annotation", cfg.annotation), "action": cfg.annotation.action.value,
            "output_dir": str(context.run_dir), "runtime": context.runtime,
            "read_source": cfg.annotation.reads_source and cfg.annotation.action is not AnnotationAction.status}


def _check(cfg: RunConfig) -> None:
    if not cfg.annotation.enabled:
        raise ConfigError("annotation: pipeline=annotation needs a review tool: add annotation=label_studio")


def _finish(cfg: RunConfig, context: RunContext, summary: RunSummary) -> None:
    """After a sync: start the retraining a drift run asked for, once its sessions are reviewed. Routed here from
    a training pipeline: say how to continue once the experts are done."""
    if cfg.pipeline.name == "annotation":
        if cfg.annotation.action is AnnotationAction.sync:
            _retrain(cfg, context, summary)
        return
    kept = [o for o in context.overrides if not o.startswith(("annotation.action=", "hydra."))]
    summary.decisions["next"] = (
        "Training waits for the experts' reviews. When they are done (or to use what is there), run:\n"
        f"  python run.py {' '.join(kept)} annotation.action=sync\n"
        "which merges the reviews and trains on the result in one run; or wait in one run next time with "
        "annotation.wait=true.")
    print(summary.decisions["next"])


def _retrain(cfg: RunConfig, context: RunContext, summary: RunSummary) -> None:
    from rcatune.annotation import retrain

    saved = summary.artifacts.get(constants.ANNOTATED_DATASET)  # "<name> v<N>": what this sync saved
    if saved is None:
        return
    outcome = retrain.after_sync(cfg.annotation.project, context.run_dir, saved.rsplit(" v", 1)[1],
                                 context.project_root)
    if outcome is None:
        return
    summary.decisions["retrain"] = outcome
    if "started" in outcome:
        print(f"retraining asked for by the drift run {outcome['requested_by']}: every drifted session is reviewed, "
              f"job started on {constants.ANNOTATED_DATASET} v{outcome['dataset_version']} (pid {outcome['pid']}), "
              f"writing to {outcome['started']} (its log: job.log there)")
    else:
        print(f"retraining asked for by the drift run {outcome['requested_by']} waits for {outcome['waiting_for']} "
              f"of {outcome['of']} drifted sessions still to review; the sync after their review starts it")


register(PipelineDefinition(
    name="annotation", pipeline=annotation_pipeline, inputs=_inputs, check=_check, finish=_finish,
    outputs=(Output("track_run_config", constants.RUN_TRACKING),
             Output("load_data", constants.VALIDATED_DATASET, summarise_dataset, load=False),
             Output("push_for_review", constants.PUSH_REPORT, summarise_push),
             Output("review_status", constants.PUSH_REPORT, summarise_push),
             Output("sync_reviews", constants.REVIEW_REPORT, summarise_review),
             Output("sync_reviews", constants.ANNOTATED_DATASET, summarise_dataset, load=False))))
