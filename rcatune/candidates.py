"""Find the model a `pipeline=evaluate` run scores: a registered version, or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel

from rcatune.config.schema import ModelConfig
from rcatune.errors import ConfigError


class Candidate(BaseModel):
    """A model to evaluate: its base config (spec) and the trained folder."""

    label: str
    model_spec: dict[str, Any]
    model_dir: str
    is_adapter: bool
    has_base: bool  # whether the base model is known, for a base-vs-candidate comparison


def from_folder(folder: str, model_cfg: ModelConfig) -> Candidate:
    """A standalone folder: full weights (export/merged) or an adapter whose base is `model_cfg`."""
    from rcatune.config import to_spec

    path = Path(folder)
    is_adapter = (path / "adapter_config.json").exists()
    if is_adapter:
        return Candidate(label=f"adapter {folder}", model_spec=to_spec(model_cfg), model_dir=folder, is_adapter=True,
                         has_base=True)
    standalone = ModelConfig(name_or_path=folder, family=model_cfg.family, chat_template="tokenizer",
                             lora_target_modules=model_cfg.lora_target_modules,
                             context_length=model_cfg.context_length, dtype=model_cfg.dtype)
    return Candidate(label=f"model {folder}", model_spec=to_spec(standalone), model_dir=folder, is_adapter=False,
                     has_base=False)


def from_registry(model_name: str, version: str, trained_artifact: str) -> Candidate:
    """A ZenML model version by stage or number, with the model spec it recorded when registered."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    key: Any = int(version) if version.isdigit() else ModelStages(version)
    try:
        model_version = Client().get_model_version(model_name, key)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"pipeline.model_version={version}: no such version of model {model_name!r} ({error}). "
                          "List versions with: make zenml-models") from None
    spec: Optional[dict] = model_version.run_metadata.get("model_spec")
    artifact = model_version.get_artifact(trained_artifact)
    if spec is None or artifact is None:
        raise ConfigError(f"{model_name} v{model_version.number} was not registered by a rcatune fine_tuning run "
                          "that recorded its model; evaluate its folder with pipeline.model_dir=...")
    trained = artifact.load()
    return Candidate(label=f"{model_name} v{model_version.number} ({model_version.stage})", model_spec=spec,
                     model_dir=trained.model_dir, is_adapter=trained.is_adapter, has_base=True)
