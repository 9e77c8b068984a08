"""Typed configuration, one module per group (mirroring `conf/`), and how configs are built and stored.

Options build their objects through `_target_` (`build`, `instantiate`); polymorphic configs travel
and are recorded as `Spec`s keyed by option name (`specs`).
"""

from __future__ import annotations

import importlib
from typing import Any

from rcatune.config.root import RunConfig
from rcatune.config.specs import Spec, load_spec, to_spec
from rcatune.config.store import GROUP_SCHEMAS, register_configs


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


def instantiate(config: Any) -> Any:
    """The object a config option stands for: its `_target_` class, given the config itself."""
    return locate(config._target_)(config)


__all__ = ["GROUP_SCHEMAS", "RunConfig", "Spec", "build", "instantiate", "load_spec", "locate", "register_configs",
           "to_spec"]
