"""Apply a fine-tuning method to a loaded model: which weights train, and how."""

from __future__ import annotations

from typing import Any

from rcatune.config.schema import (
    FreezeMethodConfig,
    FullMethodConfig,
    LoraMethodConfig,
    ModelConfig,
    QloraMethodConfig,
)
from rcatune.errors import ConfigError
from rcatune.models.loading import existing_module_names, lora_targets


def apply_method(model, model_cfg: ModelConfig, method: Any, gradient_checkpointing: bool = False):
    """Return the model ready to train under `method` (a peft model for LoRA/QLoRA)."""
    if isinstance(method, LoraMethodConfig):  # QLoRA is a LoRA subclass
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        targets = lora_targets(model_cfg, method)
        missing = sorted(set(targets) - existing_module_names(model))
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                             if type(m).__name__.startswith("Linear")} - {"lm_head"})
            raise ConfigError(f"LoRA target modules {missing} do not exist in {model_cfg.name_or_path}; "
                              f"its linear modules are {linear} (set model.lora_target_modules or "
                              "method.target_modules)")
        if isinstance(method, QloraMethodConfig):
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        config = LoraConfig(r=method.rank, lora_alpha=method.alpha, lora_dropout=method.dropout,
                            target_modules=targets, task_type="CAUSAL_LM")
        return get_peft_model(model, config)
    if isinstance(method, FullMethodConfig):
        for parameter in model.parameters():
            parameter.requires_grad = True
        return model
    if isinstance(method, FreezeMethodConfig):
        return _freeze(model, method)
    raise ConfigError(f"method {getattr(method, 'name', method)!r} is not supported by this trainer")


def _freeze(model, method: FreezeMethodConfig):
    for parameter in model.parameters():
        parameter.requires_grad = False
    if method.trainable_modules:
        names = [n for n, _ in model.named_parameters() if any(f".{m}." in f".{n}" for m in method.trainable_modules)]
        if not names:
            raise ConfigError(f"method.trainable_modules {method.trainable_modules} match no parameter")
    else:
        layers = model.config.num_hidden_layers
        if method.trainable_layers > layers:
            raise ConfigError(f"method.trainable_layers={method.trainable_layers} but the model has {layers} layers")
        keep = {f"layers.{i}." for i in range(layers - method.trainable_layers, layers)}
        names = [n for n, _ in model.named_parameters() if any(k in n for k in keep)]
    wanted = set(names)
    for name, parameter in model.named_parameters():
        if name in wanted:
            parameter.requires_grad = True
    return model


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
