"""The registry as a library: list versions with their metrics, stages, aliases and lineage; get one; promote or
demote with a reason; register a run's version and decide its stage; the check that repairs what a killed run
left half done. Steps, deployers, the control API and the command line only call it.

    python -m rcatune.registry list|show|promote|demote|check ...
"""

from __future__ import annotations

from rcatune.registry.promotion import decide_stage, register_version, rescore, versus_production
from rcatune.registry.twins import STAGE_ALIASES, Check, mlflow_twins, reconcile, sync_aliases
from rcatune.registry.versions import (
                                       STAGES,
                                       VersionInfo,
                                       VersionRef,
                                       describe_version,
                                       find_version,
                                       list_versions,
                                       load_version,
                                       production_version,
                                       registry_folder,
                                       set_stage,
)

__all__ = ["STAGES", "STAGE_ALIASES", "Check", "VersionInfo", "VersionRef", "decide_stage", "describe_version",
           "find_version", "list_versions", "load_version", "mlflow_twins", "production_version", "reconcile",
           "register_version", "registry_folder", "rescore", "set_stage", "sync_aliases", "versus_production"]
