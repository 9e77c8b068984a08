"""The registry as a library: versions, their stages and MLflow twins, promotion, and the check that repairs
what a killed run left half done. Steps, deployers and the command line only call it."""

from __future__ import annotations

from rcatune.registry.promotion import decide_stage, register_version, rescore, versus_production
from rcatune.registry.twins import STAGE_ALIASES, Check, mlflow_twins, reconcile, sync_aliases
from rcatune.registry.versions import VersionRef, find_version, production_version

__all__ = ["STAGE_ALIASES", "Check", "VersionRef", "decide_stage", "find_version", "mlflow_twins",
           "production_version", "reconcile", "register_version", "rescore", "sync_aliases", "versus_production"]
