"""Register and activate ZenML stacks from the YAML definitions in `stacks/`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from rcatune.errors import ConfigError
from rcatune.state import mlflow_tracking_uri

log = logging.getLogger(__name__)


def load_definition(path: Path, state: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"stack.definition: no stack definition at {path}")
    text = path.read_text(encoding="utf-8").replace("{state}", str(state)).replace(
        "{mlflow_uri}", mlflow_tracking_uri(state))
    return yaml.safe_load(text)


def ensure_zenml_repository(state: Path) -> None:
    """`zenml init` in the state folder, once."""
    if not (state / ".zen").exists():
        from zenml.client import Client

        Client.initialize(root=state)


def ensure_stack(definition: dict[str, Any]) -> str:
    """Create or update the stack's components, activate the stack; return its id."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    client = Client()
    component_ids = {}
    for kind, spec in definition["components"].items():
        component_type = StackComponentType(kind)
        existing = client.list_stack_components(name=spec["name"], type=component_type)
        configuration = spec.get("configuration") or {}
        if existing.items:
            component = existing.items[0]
            if component.configuration != {**component.configuration, **configuration}:
                component = client.update_stack_component(spec["name"], component_type, configuration=configuration)
        else:
            log.info("registering ZenML %s %s (%s)", kind, spec["name"], spec["flavor"])
            component = client.create_stack_component(spec["name"], spec["flavor"], component_type, configuration)
        component_ids[component_type] = component.id
    stacks = client.list_stacks(name=definition["name"])
    if stacks.items:
        stack = stacks.items[0]
        current = {t: [c.id for c in cs] for t, cs in stack.components.items()}
        if any(current.get(t) != [i] for t, i in component_ids.items()):
            updates = {t: [i] for t, i in component_ids.items()}
            stack = client.update_stack(definition["name"], component_updates=updates)
    else:
        log.info("registering ZenML stack %s", definition["name"])
        stack = client.create_stack(definition["name"], components={t: i for t, i in component_ids.items()})
    if client.active_stack_model.id != stack.id:
        client.activate_stack(stack.id)
    return str(stack.id)
