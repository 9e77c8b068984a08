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


def build(spec: dict[str, Any]) -> Any:
    """Call `spec["_target_"]` with the other keys as keyword arguments."""
    args = dict(spec)
    return locate(args.pop("_target_"))(**args)


__all__ = ["DataConfig", "RunConfig", "build", "locate", "register_configs"]
