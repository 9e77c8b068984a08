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
                          "with: make zenml-models") from None
    trained = found.get_artifact(constants.TRAINED_MODEL)
    if trained is None:
        raise ConfigError(f"{model_name} v{found.number} was not registered by a rcatune fine_tuning run that "
                          "recorded its model; point at its folder instead")
    export = found.get_artifact(constants.EXPORT)
    export_dir = None
    if export is not None:
        bundle = export.load()
        export_dir = bundle.adapter or bundle.merged
    stage = found.stage.value if hasattr(found.stage, "value") else found.stage
    meta = found.run_metadata or {}
    failed = tuple(GateCheck.model_validate(c).text() for c in meta.get("gate_checks") or []
                   if not c.get("passed", True))
    return VersionRef(model_name, str(found.number), stage, trained.load().model_dir, export_dir,
                      f"{model_name}-v{found.number}", meta.get("gate_passed"), failed)


def production_version(model_name: str) -> Optional[tuple[str, str]]:
    """(number, label) of the model's production version in ZenML, or None."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        current = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None
    return str(current.number), f"production v{current.number}"
