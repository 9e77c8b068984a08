"""`pipeline=fine_tuning` (the default): the prepare steps, then train. Wiring only."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from pipelines.prepare import prepare_data
from rcatune.config.schema import DataConfig, FormatsConfig, TrainerConfig
from steps.training import train_model


@pipeline(enable_cache=False)
def fine_tuning_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                         output_dir: str, model: dict[str, Any], method: dict[str, Any], trainer: TrainerConfig,
                         progress: bool = True) -> None:
    splits = prepare_data(config, git, data, formats, output_dir, progress)
    train_model(splits, model, method, trainer, formats.system_prompt, output_dir, progress)
