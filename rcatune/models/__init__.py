"""Base models: the tiny built-in one, packaged ones (GGUF in a Python package), and any model through
`from_pretrained`."""

from __future__ import annotations

from rcatune.config.model import ModelConfig, PackagedModelConfig, TinyModelConfig


def holds_model(folder) -> bool:
    """Whether a folder holds a model to load: full weights (config.json) or an adapter (adapter_config.json)."""
    from pathlib import Path

    return any((Path(folder) / name).exists() for name in ("config.json", "adapter_config.json"))


def model_path(cfg: ModelConfig) -> str:
    """A folder or hub id for `from_pretrained`: the tiny model is built once under the state folder (then loaded
    like any checkout); any other is its `name_or_path`."""
    if isinstance(cfg, TinyModelConfig):
        from rcatune.models.tiny import ensure_tiny_model
        from rcatune.state import state_dir

        return str(ensure_tiny_model(cfg, state_dir() / "models"))
    if isinstance(cfg, PackagedModelConfig):
        from rcatune.models.packaged import ensure_packaged_model
        from rcatune.state import state_dir

        return str(ensure_packaged_model(cfg, state_dir() / "models"))
    return cfg.name_or_path


__all__ = ["model_path"]
