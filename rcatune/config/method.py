"""`method=`: how the base model is fine-tuned. `_target_` is the class that applies it to a loaded model."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import List, Optional

from omegaconf import MISSING

from rcatune.config._require import require


class Quantisation(str, enum.Enum):
    none = "none"
    nf4 = "nf4"
    fp4 = "fp4"
    int8 = "int8"


@dataclass
class MethodConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class LoraMethodConfig(MethodConfig):
    _target_: str = "rcatune.training.methods.Lora"
    name: str = "lora"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Optional[List[str]] = None  # None: the model family's lora_target_modules

    def __post_init__(self) -> None:
        require(self.rank > 0, "method.rank", f"must be positive, got {self.rank}")
        require(self.alpha > 0, "method.alpha", f"must be positive, got {self.alpha}")
        require(0.0 <= self.dropout < 1.0, "method.dropout", f"must be within [0, 1), got {self.dropout}")


@dataclass
class QloraMethodConfig(LoraMethodConfig):
    _target_: str = "rcatune.training.methods.Qlora"
    name: str = "qlora"
    quantisation: Quantisation = Quantisation.nf4
    double_quant: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.quantisation is not Quantisation.none, "method.quantisation",
                "qlora needs one of nf4, fp4, int8 (use method=lora for no quantisation)")


@dataclass
class FullMethodConfig(MethodConfig):
    _target_: str = "rcatune.training.methods.Full"
    name: str = "full"


@dataclass
class FreezeMethodConfig(MethodConfig):
    _target_: str = "rcatune.training.methods.Freeze"
    name: str = "freeze"
    trainable_layers: int = 2  # the last N decoder layers
    trainable_modules: Optional[List[str]] = None  # or name modules explicitly

    def __post_init__(self) -> None:
        require(self.trainable_layers > 0 or bool(self.trainable_modules), "method.trainable_layers",
                "train at least one layer, or name method.trainable_modules")


SCHEMAS = {"lora": LoraMethodConfig, "qlora": QloraMethodConfig, "full": FullMethodConfig,
           "freeze": FreezeMethodConfig}
