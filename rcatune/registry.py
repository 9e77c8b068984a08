"""Register versions and decide stages: ZenML Model Control Plane and the MLflow registry, in step.

A version that passes the gate becomes `staging` (MLflow alias `challenger`); it becomes
`production` (alias `champion`) only when there is none, or when it beats the current production
version on the same evaluation set: production is re-scored on the candidate's headline set, and the
paired bootstrap interval of the accuracy gain must clear `evaluation.promotion_margin` (the exact
McNemar p-value and the sample size are recorded beside it). Every decision carries its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rcatune.artifacts import GateDecision, ModelScores
from rcatune.errors import ConfigError
from rcatune.evaluation.stats import PairedComparison

STAGE_ALIASES = {"staging": "challenger", "production": "champion"}


@dataclass(frozen=True)
class VersionRef:
    """A registered version, found by stage or number: where its trained model and its export are."""

    model: str
    number: str
    stage: Optional[str]
    model_dir: str  # the trained model (adapter or full weights)
    export_dir: Optional[str]  # the serving bundle's folder to serve (merged weights, or the adapter), if exported
    served_name: str = ""

    @property
    def label(self) -> str:
        return f"{self.model} v{self.number} ({self.stage or 'no stage'})"


def find_version(model_name: str, version: str) -> VersionRef:
    """The version `version` (a number, or a stage: production, staging, latest) of `model_name`."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    from rcatune import constants

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
    return VersionRef(model_name, str(found.number), stage, trained.load().model_dir, export_dir,
                      f"{model_name}-v{found.number}")


def decide_stage(decision: GateDecision, versus: Optional[PairedComparison], margin: float = 0.0,
                 production: Optional[str] = None) -> tuple[Optional[str], str]:
    """Which stage this version earns, and why. `versus`: the candidate against production, paired on the
    same examples (None: there is no production version)."""
    value, metric = decision.primary_value, decision.primary_metric
    if not decision.passed:
        return None, "gate failed: " + "; ".join(check.text() for check in decision.failed)
    if production is None:
        return "production", f"gate passed and there is no production version yet ({metric} {value:.3f})"
    if versus is None or versus.accuracy is None:
        return "staging", f"gate passed; {production} could not be compared on the same examples"
    gain = versus.accuracy
    evidence = (f"on the same {versus.labelled} incidents {metric} {gain.first:.3f} vs {production}'s "
                f"{gain.second:.3f}, gain {gain.difference:+.3f} with {versus.confidence:.0%} paired bootstrap "
                f"interval [{gain.low:+.3f}, {gain.high:+.3f}], exact McNemar p = {versus.mcnemar_p:.3g}")
    if gain.low > margin:
        return "production", f"beats {production}: {evidence}; the interval clears the margin {margin:g}"
    return "staging", (f"gate passed but does not beat {production}: {evidence}; the interval does not clear "
                       f"the margin {margin:g}")


def production_version(model_name: str) -> Optional[tuple[str, str]]:
    """(number, label) of the model's production version in ZenML, or None."""
    from zenml.client import Client
    from zenml.enums import ModelStages

    try:
        current = Client().get_model_version(model_name, ModelStages.PRODUCTION)
    except KeyError:
        return None
    return str(current.number), f"production v{current.number}"


def rescore(model_name: str, version: str, sets: dict, cfg, system_prompt: str, max_length: int,
            runtime) -> ModelScores:
    """A registered version scored on the candidate's headline set (same examples, same settings)."""
    from rcatune.evaluation.catalog import FaultCatalog
    from rcatune.evaluation.run import evaluation_sets, score_sets
    from rcatune.inference import load_version

    headline = dict(list(evaluation_sets(sets, cfg).items())[:1])
    scores = score_sets("production", lambda: load_version(model_name, version, runtime), headline, cfg,
                        system_prompt, max_length, FaultCatalog.load(cfg.fault_catalog), runtime.progress)
    return next(iter(scores.values()))


def register_mlflow_version(name: str, run_id: str, artifact_path: str, stage: Optional[str],
                            tags: dict[str, str]) -> str:
    """A registered-model version for the run's logged model folder, with the stage's alias."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.create_registered_model(name, description="rcatune root-cause models")
    except MlflowException as error:
        if "already exists" not in str(error).lower() and "RESOURCE_ALREADY_EXISTS" not in str(error):
            raise
    version = client.create_model_version(name, source=f"runs:/{run_id}/{artifact_path}", run_id=run_id,
                                          tags=tags)
    if stage is not None:
        client.set_registered_model_alias(name, STAGE_ALIASES[stage], version.version)
        if stage == "production":
            client.set_registered_model_alias(name, STAGE_ALIASES["staging"], version.version)
    return str(version.version)
