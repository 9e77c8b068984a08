"""Typed configuration: schemas (ConfigStore) and the builder for `_target_` nodes."""

from __future__ import annotations

import importlib
from typing import Any

from rcatune.config.schema import DataConfig, RunConfig, register_configs


def locate(path: str) -> Any:
    """Import 'package.module.Name' and return Name."""
    module_name, _, attribute = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"_target_ {path!r} cannot be imported: {error}") from error


def to_spec(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON that names its exact class (ZenML would rebuild a base class)."""
    from omegaconf import OmegaConf

    kind = type(config)
    return {"_type_": f"{kind.__module__}.{kind.__qualname__}",
            "values": OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)}


def from_spec(spec: dict[str, Any]) -> Any:
    """The config dataclass a `to_spec` dict describes, validated again."""
    from omegaconf import OmegaConf

    kind = locate(spec["_type_"])
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(kind), spec["values"]))


def build(spec: dict[str, Any]) -> Any:
    """Call `spec["_target_"]` with the other keys as keyword arguments."""
    args = dict(spec)
    return locate(args.pop("_target_"))(**args)


__all__ = ["DataConfig", "RunConfig", "build", "from_spec", "to_spec", "locate", "register_configs"]
