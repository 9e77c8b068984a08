"""`pipeline=fine_tuning` (the default): prepare (with review sync when annotation=label_studio), train,
evaluate base vs tuned, gate, register, export. Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from pipelines.prepare import prepare_data
from rcatune.config.schema import DataConfig, EvaluationConfig, ExportConfig, FormatsConfig, TrainerConfig
from steps.evaluation import evaluate_model, gate_model
from steps.export import export_trained
from steps.register import register_model
from steps.training import train_model


@pipeline(enable_cache=False)
def fine_tuning_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                         output_dir: str, model: dict[str, Any], method: dict[str, Any], trainer: TrainerConfig,
                         evaluation: EvaluationConfig, export: ExportConfig, facts: dict[str, Any],
                         progress: bool = True, annotation: dict[str, Any] | None = None,
                         read_source: bool = True) -> None:
    dataset, splits = prepare_data(config, git, data, formats, output_dir, progress, annotation, read_source)
    trained = train_model(splits, model, method, trainer, formats.system_prompt, output_dir, progress)
    result, _report = evaluate_model(splits, trained, model, evaluation, formats.system_prompt, trainer.max_length,
                                     output_dir, progress)
    decision = gate_model(result)
    promotion = register_model(dataset, trained, result, decision, model, {**facts, "config": config})
    export_trained(trained, result, promotion, model, export, facts, output_dir)
