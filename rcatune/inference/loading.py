"""Load a model to generate with: the base, base + adapter, a merged or full folder, or a registry version.

Every trained model and export carries `rcatune_model.json` (its base model's config spec, whether it
is an adapter) and `rcatune_signature.json` (what training rendered), so a folder alone is enough to
load it and to check that it is prompted exactly as it was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rcatune.config import Spec, load_spec, to_spec
from rcatune.config.model import ModelConfig
from rcatune.errors import ConfigError
from rcatune.inference.signature import PromptSignature
from rcatune.models import model_path
from rcatune.runtime import Runtime

MODEL_FILE = "rcatune_model.json"


def describe_folder(folder: Path | str, model_cfg: ModelConfig, is_adapter: bool, method: str) -> Path:
    """Write `rcatune_model.json`: how to load this folder again."""
    path = Path(folder) / MODEL_FILE
    path.write_text(json.dumps({"base_model": to_spec("model", model_cfg).model_dump(), "is_adapter": is_adapter,
                                "method": method}, indent=1), encoding="utf-8")
    return path


def read_description(folder: Path | str) -> Optional[dict[str, Any]]:
    path = Path(folder) / MODEL_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dataclass
class LoadedModel:
    """A model ready to generate, with the tokenizer and signature it was trained with."""

    model: Any
    tokenizer: Any
    label: str
    signature: Optional[PromptSignature]
    runtime: Runtime
    is_adapter: bool = False
    # a faster forward of the same weights for plain greedy decoding: the ONNX graph (serving.engine=onnx)
    decoder: Any = None

    @property
    def system_prompt(self) -> Optional[str]:
        return self.signature.system_prompt if self.signature else None

    def check_signature(self, system_prompt: Optional[str] = None) -> None:
        """Refuse, naming what differs, when this model would not be prompted as it was trained."""
        if self.signature is not None:
            self.signature.check(self.tokenizer, system_prompt, where=self.label)

    def release(self) -> None:
        import gc

        self.model = self.decoder = None
        gc.collect()


def load_base(model_cfg: ModelConfig, runtime: Runtime) -> LoadedModel:
    """The base model, untrained, with its family's chat template."""
    from rcatune.models.loading import load_model, load_tokenizer

    path = model_path(model_cfg)
    return LoadedModel(load_model(model_cfg, None, path, runtime).eval(), load_tokenizer(model_cfg, path),
                       f"base {model_cfg.name_or_path}", None, runtime)


def load_folder(folder: Path | str, runtime: Runtime, base: Optional[ModelConfig] = None) -> LoadedModel:
    """A trained folder: an adapter over its base (from `rcatune_model.json`, or `base`), or full weights."""
    from rcatune.models.loading import load_model, load_tokenizer

    folder = Path(folder)
    description = read_description(folder)
    is_adapter = (folder / "adapter_config.json").exists()
    if description and base is None:
        base = load_spec(description["base_model"])
    if is_adapter:
        if base is None:
            raise ConfigError(f"{folder} is an adapter without {MODEL_FILE}: say which base it adapts (model=...)")
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(base, None, model_path(base), runtime), str(folder))
    else:
        standalone = base or ModelConfig(name_or_path=str(folder))
        model = load_model(standalone, None, str(folder), runtime)
    tokenizer = load_tokenizer(base, str(folder), keep_saved_template=True) if base else folder_tokenizer(folder)
    return LoadedModel(model.eval(), tokenizer, f"model {folder}", PromptSignature.read(folder), runtime, is_adapter)


def folder_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


__all__ = ["LoadedModel", "MODEL_FILE", "Spec", "describe_folder", "load_base", "load_folder", "read_description"]
