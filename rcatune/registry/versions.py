"""Find registered versions (ZenML's Model Control Plane is where versions and stages live)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rcatune.errors import ConfigError


@dataclass(frozen=True)
class VersionRef:
    """A registered version, found by stage or number: where its trained model and its export are."""

    model: str
    number: str
    stage: Optional[str]
    model_dir: str  # the trained model (adapter or full weights)
    export_dir: Optional[str]  # the serving bundle's folder to serve (merged weights, or the adapter), if exported
    served_name: str = ""
    gate_passed: Optional[bool] = None  # None: not recorded (registered before the gate was kept)
    gate_failed: tuple[str, ...] = ()  # the checks it failed, as text
    merged_dir: Optional[str] = None  # its export's merged weights (adapter folded in), if exported

    @property
    def label(self) -> str:
        return f"{self.model} v{self.number} ({self.stage or 'no stage'})"


def find_version(model_name: str, version: str) -> VersionRef:
    """The version `version` (a number, or a stage: production, staging, latest) of `model_name`."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    from rcatune import constants
    from rcatune.artifacts import GateCheck

    key: Any = int(version) if str(version).isdigit() else ModelStages(version)
    try:
        found = Client().get_model_version(model_name, key)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"model version {version!r} of {model_name!r} does not exist ({error}). List versions "
                          f"with: python -m rcatune.registry list --model {model_name}") from None
    trained = found.get_artifact(constants.TRAINED_MODEL)
    if trained is None:
        raise ConfigError(f"{model_name} v{found.number} was not registered by a rcatune fine_tuning run that "
                          "recorded its model; point at its folder instead")
    export = found.get_artifact(constants.EXPORT)
    export_dir = merged_dir = None
    if export is not None:
        bundle = export.load()
        export_dir, merged_dir = bundle.adapter or bundle.merged, bundle.merged
    stage = found.stage.value if hasattr(found.stage, "value") else found.stage
    meta = found.run_metadata or {}
    failed = tuple(GateCheck.model_validate(c).text() for c in meta.get("gate_checks") or []
                   if not c.get("passed", True))
    return VersionRef(model_name, str(found.number), stage, trained.load().model_dir, export_dir,
                      f"{model_name}-v{found.number}", meta.get("gate_passed"), failed, merged_dir)


def production_version(model_name: str) -> Optional[tuple[str, str]]:
    """(number, label) of the model's production version in ZenML, or None."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        current = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None
    return str(current.number), f"production v{current.number}"


STAGES = ("production", "staging", "archived", "none")


@dataclass(frozen=True)
class VersionInfo:
    """A registered version as a list shows it: what it scored, where it stands, where it came from."""

    model: str
    number: str
    stage: Optional[str]
    aliases: tuple[str, ...]  # MLflow aliases of its twin (champion, challenger)
    metrics: dict[str, float]
    data_hash: str
    commit: str
    run: Optional[str]  # the ZenML pipeline run that produced it
    mlflow_version: Optional[str]
    gate_passed: Optional[bool]
    registration: Optional[str]  # started | complete | interrupted
    base_model: Optional[str]
    method: Optional[str]
    created: str
    stage_history: tuple[dict, ...] = ()  # promotions and demotions made by hand: {stage, reason, by, at}

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def list_versions(model_name: str) -> list[VersionInfo]:
    """Every version of `model_name`, oldest first, with its metrics, stage, aliases and lineage."""
    from zenml.client import Client

    from rcatune.registry.twins import mlflow_twins

    try:
        versions = list(Client().list_model_versions(model=model_name, size=1000, hydrate=True))
    except KeyError:
        return []
    twins, aliases = mlflow_twins(model_name), _aliases(model_name)
    return sorted((_info(model_name, v, twins, aliases) for v in versions), key=lambda info: int(info.number))


def describe_version(model_name: str, version: str) -> VersionInfo:
    """One version (a number or a stage) in full."""
    from zenml.client import Client

    from rcatune.registry.twins import mlflow_twins

    return _info(model_name, _get(Client(), model_name, version), mlflow_twins(model_name), _aliases(model_name))


def _get(client, model_name: str, version: str):
    from zenml.enums import ModelStages

    try:
        key: Any = int(version) if str(version).isdigit() else ModelStages(version)
        return client.get_model_version(model_name, key)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"model version {version!r} of {model_name!r} does not exist ({error}); list them with "
                          f"'python -m rcatune.registry list --model {model_name}'") from None


def _aliases(model_name: str) -> dict[str, str]:
    """MLflow's aliases of the registered model: {alias: MLflow version}."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return {alias: str(v) for alias, v in (MlflowClient().get_registered_model(model_name).aliases or {}).items()}
    except MlflowException:
        return {}


def _runs(version) -> list[str]:
    """The pipeline runs linked to a version (ZenML's own property for it warns that it is deprecated)."""
    from zenml.client import Client
    from zenml.utils import pagination_utils

    return [link.pipeline_run.name for link in pagination_utils.depaginate(
        Client().list_model_version_pipeline_run_links, model_version_id=version.id)]


def _info(model_name: str, version, twins: dict[str, Any], aliases: dict[str, str]) -> VersionInfo:
    meta = version.run_metadata or {}
    twin = twins.get(str(version.number))
    metrics = {k: float(v) for k, v in meta.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    runs = _runs(version)
    mine = sorted(a for a, v in aliases.items() if twin is not None and v == str(twin.version))
    return VersionInfo(model=model_name, number=str(version.number), stage=_stage_value(version),
                       aliases=tuple(mine),
                       metrics=metrics, data_hash=str(meta.get("data_hash", "unknown")),
                       commit=str(meta.get("git_commit", "unknown")), run=runs[0] if runs else None,
                       mlflow_version=str(twin.version) if twin is not None else None,
                       gate_passed=meta.get("gate_passed"), registration=meta.get("registration"),
                       base_model=meta.get("base_model"), method=meta.get("method"),
                       created=str(version.created), stage_history=tuple(meta.get("stage_history") or ()))


def _stage_value(version) -> Optional[str]:
    stage = version.stage.value if hasattr(version.stage, "value") else version.stage
    return stage or None


def set_stage(model_name: str, version: str, stage: str, reason: str, by: Optional[str] = None) -> VersionInfo:
    """Promote or demote a version by hand, with a reason: ZenML's stage (the commit point), then MLflow's aliases
    follow, and both registries record who did it and why (ZenML metadata `stage_history`, MLflow tags)."""
    import getpass
    from datetime import datetime, timezone

    from mlflow.tracking import MlflowClient
    from zenml import log_metadata
    from zenml.client import Client
    from zenml.enums import ModelStages

    from rcatune.registry.twins import mlflow_twins, sync_aliases
    from rcatune.state import state_lock

    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r}: use one of {', '.join(STAGES)}")
    if not reason or not reason.strip():
        raise ConfigError("a promotion or demotion needs a reason (--reason '...'): it is recorded in both registries")
    with state_lock(f"registry-{model_name}"):
        found = _get(Client(), model_name, version)
        number, before = str(found.number), _stage_value(found) or "none"
        change = {"stage": stage, "from": before, "reason": reason.strip(),
                  "by": by or getpass.getuser(), "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        history = list((found.run_metadata or {}).get("stage_history") or []) + [change]
        log_metadata(metadata={"stage_history": history}, model_name=model_name, model_version=number)
        found.set_stage(ModelStages(stage), force=True)
        sync_aliases(model_name)
        twin = mlflow_twins(model_name).get(number)
        if twin is not None:
            client = MlflowClient()
            client.set_model_version_tag(model_name, twin.version, "stage", stage)
            client.set_model_version_tag(model_name, twin.version, "stage_reason", change["reason"][:500])
            client.set_model_version_tag(model_name, twin.version, "stage_changed_by", change["by"])
    return describe_version(model_name, number)


def registry_folder(model_name: str, version: str) -> tuple[str, str]:
    """(trained model folder, label) of a version, by stage or number."""
    found = find_version(model_name, version)
    return found.model_dir, found.label


def load_version(model_name: str, version: str, runtime):
    """A registered version (a stage such as production, or a number), loaded for inference."""
    from rcatune.inference import load_folder

    folder, label = registry_folder(model_name, version)
    loaded = load_folder(folder, runtime)
    loaded.label = label
    return loaded


def preference_start(cfg) -> tuple[Any, Any]:
    """(model, objective) configs for a run: a preference objective starts from its registered SFT version's merged
    export, which becomes the run's base model (so the evaluation's base is the SFT version); others as given."""
    import dataclasses
    from pathlib import Path

    from rcatune.config.model import ModelConfig
    from rcatune.errors import ConfigError

    objective = cfg.objective
    if not hasattr(objective, "start_from"):
        return cfg.model, objective
    start = objective.start_dir
    if start is None:
        found = find_version(cfg.model_registry_name, objective.start_from)
        if not found.merged_dir or not (Path(found.merged_dir) / "config.json").exists():
            raise ConfigError(f"objective={objective.name} starts from {found.label}, which has no merged export "
                              f"({found.merged_dir}): start from a version a fine_tuning run registered and exported")
        start = found.merged_dir
    model = ModelConfig(name_or_path=str(start), family=cfg.model.family, context_length=cfg.model.context_length,
                        dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
    return model, dataclasses.replace(objective, start_dir=str(start))
