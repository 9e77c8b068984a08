"""`pipeline=evaluate`: load + validate any data, score a registered version or a folder, gate. Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from rcatune.config.schema import DataConfig, EvaluationConfig, FormatsConfig
from steps.data import load_data
from steps.evaluation import evaluate_candidate_model, gate_model
from steps.tracking import track_run_config


@pipeline(enable_cache=False)
def evaluate_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                      output_dir: str, pipeline_cfg: dict[str, Any], model: dict[str, Any],
                      evaluation: EvaluationConfig, model_registry_name: str, max_length: int,
                      progress: bool = True) -> None:
    track_run_config(config, git)
    dataset, _report = load_data(data.source_spec(), data.max_rejected_fraction, output_dir, progress)
    result, _markdown = evaluate_candidate_model(dataset, pipeline_cfg, model, evaluation, model_registry_name,
                                                 formats.system_prompt, max_length, output_dir, progress)
    gate_model(result)
