"""Configs as stored data: a discriminated union keyed by the schema's option name, not a Python path.

ZenML rebuilds a step parameter typed with a base dataclass as that base class, losing a subclass's
fields; and a registered model version must still load after a class moves. So polymorphic configs
travel, and are recorded, as `Spec(group, kind, values)`: `kind` is the schema's name in its group
(`model: tiny`, `method: qlora`), and `load()` rebuilds and re-validates it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rcatune.errors import ConfigError


class Spec(BaseModel):
    group: str
    kind: str
    values: dict[str, Any]

    def load(self) -> Any:
        """The typed config this spec describes, validated again."""
        from omegaconf import OmegaConf

        from rcatune.config.store import GROUP_SCHEMAS

        schemas = GROUP_SCHEMAS.get(self.group, {})
        if self.kind not in schemas:
            raise ConfigError(f"a stored {self.group} config names the schema {self.kind!r}, which this version of "
                              f"rcatune does not know (known: {sorted(schemas)})")
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schemas[self.kind]), self.values))


def to_spec(group: str, config: Any) -> Spec:
    """A config dataclass of `group` as a `Spec`."""
    from omegaconf import OmegaConf

    from rcatune.config.store import GROUP_SCHEMAS

    kinds = [name for name, kind in GROUP_SCHEMAS[group].items() if kind is type(config)]
    if not kinds:
        raise ConfigError(f"{type(config).__name__} is not a registered {group} schema")
    return Spec(group=group, kind=kinds[0],
                values=OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True))


def load_spec(spec: Spec | dict[str, Any]) -> Any:
    """`Spec.load` for a spec that arrives as a plain dict (ZenML metadata, JSON files)."""
    return (spec if isinstance(spec, Spec) else Spec.model_validate(spec)).load()
