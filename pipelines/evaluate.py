"""`pipeline=evaluate`: load + validate any data, score a registered version or a folder, gate. Wiring only."""

from __future__ import annotations

from typing import Any, Optional

from zenml import pipeline

from rcatune import constants
from rcatune.config import RunConfig, Spec, to_spec
from rcatune.config.evaluation import EvaluationConfig
from rcatune.config.scrub import ScrubConfig
from rcatune.runner import Output, PipelineDefinition, RunContext, register
from rcatune.runtime import Runtime
from steps.data import load_data, summarise_dataset
from steps.evaluation import evaluate_candidate_model, gate_model
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def evaluate_pipeline(config: dict[str, Any], git: dict[str, Any], data: Spec, scrub: ScrubConfig, output_dir: str,
                      runtime: Runtime,
                      settings: Spec, model: Spec, evaluation: EvaluationConfig, model_registry_name: str,
                      system_prompt: str, max_length: int, shift_phrasing: Optional[str] = None) -> None:
    track_run_config(config, git)
    dataset, _report = load_data(data, scrub, output_dir, runtime)
    result, _markdown = evaluate_candidate_model(dataset, settings, model, evaluation, model_registry_name,
                                                 system_prompt, max_length, shift_phrasing, output_dir, runtime)
    gate_model(result)


def _inputs(cfg: RunConfig, context: RunContext) -> dict[str, Any]:
    return {"config": context.resolved, "git": context.git, "data": to_spec("data", cfg.data), "scrub": cfg.scrub,
            "output_dir": str(context.run_dir), "runtime": context.runtime,
            "settings": to_spec("pipeline", cfg.pipeline), "model": to_spec("model", cfg.model),
            "evaluation": cfg.evaluation, "model_registry_name": cfg.model_registry_name,
            "system_prompt": cfg.formats.system_prompt, "max_length": cfg.trainer.max_length,
            "shift_phrasing": cfg.data.split.shift_phrasing}


register(PipelineDefinition(
    name="evaluate", pipeline=evaluate_pipeline, inputs=_inputs,
    outputs=(Output("track_run_config", constants.RUN_TRACKING),
             Output("load_data", constants.VALIDATED_DATASET, summarise_dataset, load=False),
             Output("evaluate_candidate_model", constants.EVALUATION))))
