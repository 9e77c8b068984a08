"""`pipeline=fine_tuning` (the default): the prepare steps, then training (next: train, evaluate, register)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from pipelines.prepare import prepare_data
from rcatune.config.schema import DataConfig, FormatsConfig


@pipeline(enable_cache=False)
def fine_tuning_pipeline(config: dict[str, Any], git: dict[str, Any], data: DataConfig, formats: FormatsConfig,
                         output_dir: str, progress: bool = True) -> None:
    prepare_data(config, git, data, formats, output_dir, progress)
