"""Load any base model and tokenizer the way a user points at them: hub id, local folder, or `tiny`."""

from __future__ import annotations

import os
from typing import Any

from rcatune.config.schema import Dtype, LoraMethodConfig, ModelConfig, QloraMethodConfig, Quantisation, TinyModelConfig
from rcatune.errors import ConfigError
from rcatune.models.templates import TEMPLATES
from rcatune.state import state_dir


def resolve_model_path(model: ModelConfig) -> str:
    """A folder or hub id for `from_pretrained`; the tiny model is built (once) under the state folder."""
    if isinstance(model, TinyModelConfig):
        from rcatune.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model(model, state_dir() / "models"))
    return model.name_or_path


def _not_loadable(model: ModelConfig, error: Exception) -> ConfigError:
    return ConfigError(
        f"model {model.name_or_path!r} cannot be loaded: {type(error).__name__}: {str(error).splitlines()[0][:300]}. "
        "Without access to the Hugging Face Hub, download it elsewhere (huggingface-cli download "
        f"{model.name_or_path}) and point at the folder: model.name_or_path=/path/to/checkout. Gated models need "
        "the HF_TOKEN environment variable (never put tokens in configs)."
    )


def load_tokenizer(model: ModelConfig, path: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=model.revision,
                                                  trust_remote_code=model.trust_remote_code,
                                                  token=os.environ.get("HF_TOKEN"))
    except (OSError, ValueError) as error:
        raise _not_loadable(model, error) from None
    if model.chat_template != "tokenizer":
        tokenizer.chat_template = TEMPLATES[model.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(dtype: Dtype, on_gpu: bool):
    import torch

    if not on_gpu and dtype is not Dtype.float32:
        return torch.float32  # bf16/fp16 training on CPU is slow and lossy: compute in fp32 there
    return {Dtype.float32: torch.float32, Dtype.bfloat16: torch.bfloat16, Dtype.float16: torch.float16}[dtype]


def quantisation_config(method: Any, on_gpu: bool):
    """bitsandbytes settings for QLoRA; None for other methods."""
    if not isinstance(method, QloraMethodConfig):
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if method.quantisation is Quantisation.int8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=method.quantisation.value, bnb_4bit_use_double_quant=method.double_quant,
        bnb_4bit_compute_dtype=torch.bfloat16 if on_gpu else torch.float32,
    )


def check_quantisable(model: ModelConfig, method: Any) -> None:
    """bitsandbytes on CPU needs layer widths that are multiples of 32 (seen with 0.50.2)."""
    if isinstance(method, QloraMethodConfig) and isinstance(model, TinyModelConfig):
        for name in ("hidden_size", "intermediate_size"):
            if getattr(model, name) % 32:
                raise ConfigError(f"method=qlora: model.{name}={getattr(model, name)} is not a multiple of 32, "
                                  "which bitsandbytes needs to quantise a layer; pick a width that is, or method=lora")


def load_model(model: ModelConfig, method: Any, path: str, on_gpu: bool):
    from transformers import AutoModelForCausalLM

    check_quantisable(model, method)
    kwargs = {"dtype": torch_dtype(model.dtype, on_gpu), "revision": model.revision,
              "trust_remote_code": model.trust_remote_code, "token": os.environ.get("HF_TOKEN")}
    quantisation = quantisation_config(method, on_gpu)
    if quantisation is not None:
        kwargs["quantization_config"] = quantisation
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise _not_loadable(model, error) from None


def lora_targets(model: ModelConfig, method: LoraMethodConfig) -> list[str]:
    return list(method.target_modules or model.lora_target_modules)


def existing_module_names(torch_model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in torch_model.named_modules() if name}


__all__ = ["check_quantisable", "existing_module_names", "load_model", "load_tokenizer", "lora_targets",
           "quantisation_config", "resolve_model_path", "torch_dtype"]
