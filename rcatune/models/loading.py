"""Load any base model and tokenizer the way a user points at them: hub id, local folder, or `tiny`."""

from __future__ import annotations

import os
from typing import Any, Optional

from rcatune.config.model import ModelConfig
from rcatune.errors import ConfigError
from rcatune.models.templates import TEMPLATES
from rcatune.runtime import Runtime


def _not_loadable(model: ModelConfig, error: Exception) -> ConfigError:
    return ConfigError(
        f"model {model.name_or_path!r} cannot be loaded: {type(error).__name__}: {str(error).splitlines()[0][:300]}. "
        "Without access to the Hugging Face Hub, download it elsewhere (huggingface-cli download "
        f"{model.name_or_path}) and point at the folder: model.name_or_path=/path/to/checkout. Gated models need "
        "the HF_TOKEN environment variable (never put tokens in configs)."
    )


def load_tokenizer(model: ModelConfig, path: str, keep_saved_template: bool = False):
    """The tokenizer with the family's chat template (or, for a trained folder, the one saved with it)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, revision=model.revision,
                                                  trust_remote_code=model.trust_remote_code,
                                                  token=os.environ.get("HF_TOKEN"))
    except (OSError, ValueError) as error:
        raise _not_loadable(model, error) from None
    if model.chat_template != "tokenizer" and not (keep_saved_template and tokenizer.chat_template):
        tokenizer.chat_template = TEMPLATES[model.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model: ModelConfig, method: Optional[Any], path: str, runtime: Runtime):
    """`from_pretrained` in the runtime's precision; `method` (a `rcatune.training.methods` object) may
    ask for a quantised base."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": runtime.torch_dtype(model.dtype.value), "revision": model.revision,
                              "trust_remote_code": model.trust_remote_code, "token": os.environ.get("HF_TOKEN")}
    if method is not None:
        method.check(model)
        quantisation = method.quantisation_config(runtime)
        if quantisation is not None:
            kwargs["quantization_config"] = quantisation
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise _not_loadable(model, error) from None


def existing_module_names(torch_model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in torch_model.named_modules() if name}


__all__ = ["existing_module_names", "load_model", "load_tokenizer"]
