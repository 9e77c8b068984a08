"""`pipeline=`: which registered pipeline runs (see `rcatune.runner`), and the settings of those that have any."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from rcatune.config._require import require

STAGES = ("production", "staging", "latest", "archived")


@dataclass
class PipelineConfig:
    name: str = MISSING  # a pipeline registered by a module in pipelines/
    enable_cache: bool = False


@dataclass
class EvaluatePipelineConfig(PipelineConfig):
    """Score a candidate on every valid example of the data source, without training."""

    name: str = "evaluate"
    model_version: str = "production"  # a stage (production, staging, latest) or a version number
    model_dir: Optional[str] = None  # or a model folder (export/merged, training/model): wins when set
    allow_overlap: bool = False  # score data the candidate trained on anyway (refused otherwise)

    def __post_init__(self) -> None:
        require(self.model_version.isdigit() or self.model_version in STAGES, "pipeline.model_version",
                f"{self.model_version!r} is neither a version number nor one of {list(STAGES)}")
        if self.model_dir is not None:
            require((Path(self.model_dir) / "config.json").exists()
                    or (Path(self.model_dir) / "adapter_config.json").exists(),
                    "pipeline.model_dir", f"{self.model_dir!r} holds no model (no config.json)")


SCHEMAS = {"base": PipelineConfig, "evaluate": EvaluatePipelineConfig}
