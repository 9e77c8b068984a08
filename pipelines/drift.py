"""`pipeline=drift`: load + validate new sessions, compare them with a version's training split, and with
`pipeline.push_for_review=true` (annotation=label_studio) push the drifted ones for review. Wiring only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from zenml import pipeline

from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.scrub import ScrubConfig
from rcatune.errors import ConfigError
from rcatune.runinfo import RunSummary
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from rcatune.runtime import Runtime
from steps.annotation import push_for_review
from steps.data import load_data, summarise_dataset
from steps.drift import check_drift
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def drift_pipeline(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig, output_dir: str,
                   runtime: Runtime, settings: Spec, model_registry_name: str, system_prompt: str,
                   annotation: Optional[Spec] = None) -> None:
    track_run_config(config, git)
    dataset, _report = load_data(data, scrub, output_dir, runtime)
    _drift, drifted = check_drift(dataset, settings, model_registry_name, output_dir, runtime, system_prompt)
    if annotation is not None:
        push_for_review(drifted, annotation, runtime)


def _check(cfg: RunConfig) -> None:
    push = cfg.pipeline.push_for_review
    if push and not cfg.annotation.enabled:
        raise ConfigError("pipeline.push_for_review=true pushes to Label Studio: add annotation=label_studio")
    if cfg.pipeline.retrain_with is not None:
        if not push:
            raise ConfigError("pipeline.retrain_with starts a job once the pushed sessions are reviewed: add "
                              "pipeline.push_for_review=true annotation=label_studio")
        from rcatune.annotation import retrain

        retrain.check(list(cfg.pipeline.retrain_with), Path(__file__).resolve().parents[1])


def _inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    push = cfg.pipeline.push_for_review
    return {"config": context.resolved, "git": context.git, "data": to_spec("data", cfg.data), "scrub": cfg.scrub,
            "output_dir": str(context.run_dir), "runtime": context.runtime,
            "settings": to_spec("pipeline", cfg.pipeline), "model_registry_name": cfg.model_registry_name,
            "system_prompt": cfg.formats.system_prompt,
            "annotation": to_spec("annotation", cfg.annotation) if push else None}


def _finish(cfg: RunConfig, context: RunContext, summary: RunSummary) -> None:
    """Past the threshold with pipeline.retrain_with: ask for the retraining job the review's sync will start."""
    drift = summary.decisions.get("drift", {})
    if cfg.pipeline.retrain_with is None or not drift.get("triggered"):
        return
    from rcatune.annotation import retrain
    from rcatune.drift import DriftReport

    report = (context.run_dir / constants.DRIFT_DIR / "drift.json").read_text(encoding="utf-8")
    ids = DriftReport.model_validate_json(report).drifted_ids()
    retrain.request(cfg.annotation.project, list(cfg.pipeline.retrain_with), ids, str(context.run_dir))
    summary.decisions["retrain"] = {"requested": len(ids), "project": cfg.annotation.project,
                                    "overrides": list(cfg.pipeline.retrain_with)}
    print(f"retraining asked for: once the {len(ids)} pushed sessions are reviewed, `python run.py "
          f"pipeline=annotation annotation.action=sync annotation.project='{cfg.annotation.project}'` starts "
          f"run.py data=annotated {' '.join(cfg.pipeline.retrain_with)}")


register(PipelineDefinition(
    name="drift", pipeline=drift_pipeline, inputs=_inputs, check=_check, finish=_finish,
    outputs=(Output("track_run_config", constants.RUN_TRACKING),
             Output("load_data", constants.VALIDATED_DATASET, summarise_dataset, load=False),
             Output("check_drift", constants.DRIFT_REPORT))))
