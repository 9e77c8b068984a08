"""The root config: one option of each group plus run-wide settings (`conf/config.yaml`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from rcatune.config._require import require
from rcatune.config.abtest import ABTestConfig
from rcatune.config.annotation import AnnotationConfig
from rcatune.config.data import DataConfig
from rcatune.config.deployer import DeployerConfig, DeploymentConfig
from rcatune.config.evaluation import EvaluationConfig
from rcatune.config.launcher import LauncherConfig
from rcatune.config.method import MethodConfig, Quantisation
from rcatune.config.model import ModelConfig
from rcatune.config.objective import ObjectiveConfig
from rcatune.config.pipeline import PipelineConfig
from rcatune.config.scrub import ScrubConfig
from rcatune.config.serving import ServingConfig
from rcatune.config.stack import StackConfig
from rcatune.config.sweep import SweepConfig
from rcatune.config.trainer import TrainerConfig
from rcatune.formats import Format
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT


class Device(str, enum.Enum):
    auto = "auto"  # a CUDA GPU when there is one, else the CPU
    cpu = "cpu"
    cuda = "cuda"


@dataclass
class FormatsConfig:
    formats: List[Format] = field(default_factory=lambda: list(Format))
    openai_max_tokens: int = 65_536
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        require(bool(self.formats), "formats.formats", f"name at least one of {[f.value for f in Format]}")
        require(bool(self.system_prompt.strip()), "formats.system_prompt", "must not be empty")


@dataclass
class ExportConfig:
    quantisation: Quantisation = Quantisation.none  # int8 | nf4 | fp4: also write a quantised copy
    onnx: bool = False  # also write an ONNX graph of the merged model (export/onnx), checked against PyTorch


@dataclass
class RunConfig:
    """The root: one option of each group plus run-wide settings."""

    pipeline: Any = MISSING
    data: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    trainer: Any = MISSING
    evaluation: Any = MISSING
    stack: Any = MISSING
    annotation: Any = MISSING
    scrub: Any = MISSING
    deployer: Any = MISSING
    objective: Any = MISSING
    launcher: Any = MISSING
    formats: FormatsConfig = field(default_factory=FormatsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    ab_test: ABTestConfig = field(default_factory=ABTestConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 42
    register: bool = True  # fine_tuning registers (ZenML Model + MLflow) and exports; a sweep's trials do not
    progress: bool = True
    device: Device = Device.auto
    experiment_name: Optional[str] = None  # MLflow experiment; default: the pipeline name
    model_registry_name: str = "rcatune-rca"  # ZenML Model and MLflow registered model

    def __post_init__(self) -> None:
        expected = {"pipeline": PipelineConfig, "data": DataConfig, "model": ModelConfig, "method": MethodConfig,
                    "trainer": TrainerConfig, "evaluation": EvaluationConfig, "stack": StackConfig,
                    "annotation": AnnotationConfig, "scrub": ScrubConfig, "deployer": DeployerConfig,
                    "objective": ObjectiveConfig, "launcher": LauncherConfig}
        for key, kind in expected.items():
            value = getattr(self, key)
            require(isinstance(value, kind), key, f"expected a {kind.__name__} option, got {type(value).__name__}")
        require(self.trainer.max_length <= self.model.context_length, "trainer.max_length",
                f"{self.trainer.max_length} is above the model's context length ({self.model.context_length}, "
                f"model.context_length of {self.model.name_or_path})")
