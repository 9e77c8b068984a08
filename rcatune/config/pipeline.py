"""`pipeline=`: which registered pipeline runs (see `rcatune.runner`), and the settings of those that have any."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

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


@dataclass
class DriftPipelineConfig(PipelineConfig):
    """Compare new sessions with what a registered version (or a model folder's run) trained on."""

    name: str = "drift"
    model_version: str = "production"  # a stage or a version number: the reference is its training split
    model_dir: Optional[str] = None  # or a trained model folder (RUN_DIR/training/model): its run's training split
    threshold: float = 0.2  # the share of drifted sessions past which the report says DRIFT
    outlier_quantile: str = "p99"  # farther from the training centroid than this share of training sessions
    model_signal: bool = True  # the model's confidence in its root cause as a signal too (loads the model once)
    push_for_review: bool = False  # with annotation=label_studio: push the drifted sessions for review when past it
    # ... and once they are reviewed, the sync starts `run.py data=annotated data.version=N <these>` as a job
    # (e.g. "pipeline.retrain_with=['objective=dpo','objective.start_from=production']"); None: no retraining
    retrain_with: Optional[List[str]] = None

    def __post_init__(self) -> None:
        require(self.model_version.isdigit() or self.model_version in STAGES, "pipeline.model_version",
                f"{self.model_version!r} is neither a version number nor one of {list(STAGES)}")
        require(0 <= self.threshold < 1, "pipeline.threshold", "must be a share in [0, 1)")
        require(self.outlier_quantile in ("p50", "p90", "p95", "p99", "max"), "pipeline.outlier_quantile",
                "must be one of p50, p90, p95, p99, max")


SCHEMAS = {"base": PipelineConfig, "evaluate": EvaluatePipelineConfig, "drift": DriftPipelineConfig}
