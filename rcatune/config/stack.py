"""`stack=`: the ZenML stack a run executes on, from a definition in `stacks/`."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class StackConfig:
    name: str = MISSING
    definition: str = MISSING  # a YAML file in stacks/
    remote: bool = False


SCHEMAS = {"base": StackConfig}
