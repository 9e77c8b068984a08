"""Every group's schemas, registered in Hydra's ConfigStore as `schema/<group>/<kind>`.

Option YAMLs start from one (`/schema/<group>/<kind>@_here_`), so an unknown key or a wrong type
fails at composition, and `__post_init__` (run when `run.py` converts the config with
`OmegaConf.to_object`) rejects values that cannot work, naming the key.
"""

from __future__ import annotations

from rcatune.config import (
    annotation,
    data,
    deployer,
    evaluation,
    launcher,
    method,
    model,
    objective,
    pipeline,
    scrub,
    stack,
    trainer,
)
from rcatune.config.root import RunConfig

GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "pipeline": pipeline.SCHEMAS,
    "data": data.SCHEMAS,
    "model": model.SCHEMAS,
    "model/family": model.FAMILY_SCHEMAS,
    "method": method.SCHEMAS,
    "trainer": trainer.SCHEMAS,
    "objective": objective.SCHEMAS,
    "launcher": launcher.SCHEMAS,
    "evaluation": evaluation.SCHEMAS,
    "stack": stack.SCHEMAS,
    "annotation": annotation.SCHEMAS,
    "scrub": scrub.SCHEMAS,
    "deployer": deployer.SCHEMAS,
}


def register_configs() -> None:
    """Store the root schema and one schema per group option (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="rcatune_schema", node=RunConfig)
    for group, options in GROUP_SCHEMAS.items():
        for name, node in options.items():
            store.store(group=f"schema/{group}", name=name, node=node, package=group.replace("/", "."))
