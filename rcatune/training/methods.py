"""Fine-tuning methods (`method=`): which weights train, and how. Each option's `_target_` is one of these
classes, built with its config; a backend asks it to prepare a loaded model."""

from __future__ import annotations

from typing import Any, Optional

from rcatune.config.method import (
    FreezeMethodConfig,
    FullMethodConfig,
    LoraMethodConfig,
    QloraMethodConfig,
    Quantisation,
)
from rcatune.config.model import ModelConfig, TinyModelConfig
from rcatune.errors import ConfigError
from rcatune.models.loading import existing_module_names
from rcatune.runtime import Runtime


class Method:
    """Full fine-tuning's behaviour is the default: every weight trains, no quantised base."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def check(self, model_cfg: ModelConfig) -> None:
        """Refuse settings that cannot work on this model, before anything loads."""

    def quantisation_config(self, runtime: Runtime):
        return None

    def apply(self, model, model_cfg: ModelConfig, gradient_checkpointing: bool = False):
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model


class Full(Method):
    config: FullMethodConfig


class Lora(Method):
    """Low-rank adapters on the family's target modules (or `method.target_modules`)."""

    config: LoraMethodConfig

    def targets(self, model_cfg: ModelConfig) -> list[str]:
        return list(self.config.target_modules or model_cfg.lora_target_modules)

    def apply(self, model, model_cfg: ModelConfig, gradient_checkpointing: bool = False):
        from peft import LoraConfig, get_peft_model

        targets = self.targets(model_cfg)
        missing = sorted(set(targets) - existing_module_names(model))
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if type(m).__name__.startswith("Linear")} - {"lm_head"})
            raise ConfigError(f"LoRA target modules {missing} do not exist in {model_cfg.name_or_path}; "
                              f"its linear modules are {linear} (set model.family.lora_target_modules or "
                              "method.target_modules)")
        model = self.prepare(model, gradient_checkpointing)
        config = LoraConfig(r=self.config.rank, lora_alpha=self.config.alpha, lora_dropout=self.config.dropout,
                            target_modules=targets, task_type="CAUSAL_LM")
        return get_peft_model(model, config)

    def prepare(self, model, gradient_checkpointing: bool):
        return model


class Qlora(Lora):
    """LoRA over a 4-bit (NF4/FP4) or 8-bit base quantised by bitsandbytes."""

    config: QloraMethodConfig

    def check(self, model_cfg: ModelConfig) -> None:
        if isinstance(model_cfg, TinyModelConfig):  # bitsandbytes on CPU needs widths in multiples of 32
            for name in ("hidden_size", "intermediate_size"):
                if getattr(model_cfg, name) % 32:
                    raise ConfigError(f"method=qlora: model.{name}={getattr(model_cfg, name)} is not a multiple "
                                      "of 32, which bitsandbytes needs to quantise a layer; pick a width that is, "
                                      "or method=lora")

    def quantisation_config(self, runtime: Runtime):
        import torch
        from transformers import BitsAndBytesConfig

        if self.config.quantisation is Quantisation.int8:
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=self.config.quantisation.value,
                                  bnb_4bit_use_double_quant=self.config.double_quant,
                                  bnb_4bit_compute_dtype=torch.bfloat16 if runtime.on_gpu else torch.float32)

    def prepare(self, model, gradient_checkpointing: bool):
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


class Freeze(Method):
    """Only the last `trainable_layers` decoder layers (or the named `trainable_modules`) train."""

    config: FreezeMethodConfig

    def apply(self, model, model_cfg: ModelConfig, gradient_checkpointing: bool = False):
        for parameter in model.parameters():
            parameter.requires_grad = False
        wanted = set(self._trainable(model))
        for name, parameter in model.named_parameters():
            if name in wanted:
                parameter.requires_grad = True
        return model

    def _trainable(self, model) -> list[str]:
        modules: Optional[list[str]] = self.config.trainable_modules
        if modules:
            names = [n for n, _ in model.named_parameters() if any(f".{m}." in f".{n}" for m in modules)]
            if not names:
                raise ConfigError(f"method.trainable_modules {modules} match no parameter")
            return names
        layers = model.config.num_hidden_layers
        if self.config.trainable_layers > layers:
            raise ConfigError(f"method.trainable_layers={self.config.trainable_layers} but the model has {layers} "
                              "layers")
        keep = {f"layers.{i}." for i in range(layers - self.config.trainable_layers, layers)}
        return [n for n, _ in model.named_parameters() if any(k in n for k in keep)]


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters."""
    def count(p) -> int:  # a weight ZeRO-3 partitioned as it loaded keeps its full size in ds_numel
        return int(getattr(p, "ds_numel", p.numel()))

    trainable = sum(count(p) for p in model.parameters() if p.requires_grad)
    total = sum(count(p) for p in model.parameters())
    return trainable, total
