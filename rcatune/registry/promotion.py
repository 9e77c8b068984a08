"""Register a version and decide its stage: ZenML's Model Control Plane and the MLflow registry, in step.

A version that passes the gate becomes `staging` (MLflow alias `challenger`); it becomes
`production` (alias `champion`) only when there is none, or when it beats the current production
version on the same evaluation set: production is re-scored on the candidate's headline set, and the
paired bootstrap interval of the accuracy gain must clear `evaluation.promotion_margin` (the exact
McNemar p-value and the sample size are recorded beside it). Every decision carries its reason.

The order is what a crash can interrupt safely: the ZenML metadata says `registration: started`, the MLflow
twin is created, the ZenML stage is set (the commit point), MLflow's aliases follow it, and the metadata says
`complete`. `reconcile` (run first, every time) finds whatever a killed run left between two of these.
"""

from __future__ import annotations

from typing import Any, Optional

from rcatune.artifacts import Evaluation, GateDecision, ModelScores, Promotion, TrainedModel
from rcatune.errors import RcatuneError
from rcatune.pause import pause_point
from rcatune.registry.twins import REGISTRATION, claim, reconcile, register_twin, sync_aliases
from rcatune.registry.versions import production_version
from rcatune.stats import PairedComparison, compare


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


def rescore(model_name: str, version: str, sets: dict, cfg, system_prompt: str, max_length: int,
            runtime) -> ModelScores:
    """A registered version scored on the candidate's headline set (same examples, same settings)."""
    from rcatune.evaluation.catalog import FaultCatalog
    from rcatune.evaluation.run import evaluation_sets, score_sets
    from rcatune.registry.versions import load_version

    headline = dict(list(evaluation_sets(sets, cfg).items())[:1])
    scores = score_sets("production", lambda: load_version(model_name, version, runtime), headline, cfg,
                        system_prompt, max_length, FaultCatalog.load(cfg.fault_catalog), runtime.progress)
    return next(iter(scores.values()))


def versus_production(model_name: str, evaluation: Evaluation, decision: GateDecision, sets: dict, cfg,
                      system_prompt: str, max_length: int, runtime):
    """(production (number, label) or None, the paired comparison or None, production's value or None)."""
    production = production_version(model_name) if decision.passed else None
    if production is None:
        return None, None, None
    number, label = production
    try:
        scores = rescore(model_name, number, sets, cfg, system_prompt, max_length, runtime)
    except (RcatuneError, OSError) as error:  # its files are gone, or it cannot load here: say so, stage
        print(f"could not re-score {label}: {error}")
        return production, None, None
    versus = compare("candidate", evaluation.tuned.answers, label, scores.answers, cfg.confidence,
                     cfg.bootstrap_resamples)
    return production, versus, scores.metrics.get(decision.primary_metric)


def register_version(model, trained: TrainedModel, evaluation: Evaluation, decision: GateDecision, sets: dict,
                     cfg, system_prompt: str, max_length: int, metadata: dict[str, Any], run_id: str,
                     artifact_path: str, runtime) -> Promotion:
    """Register `model` (the run's ZenML model version) with its MLflow twin and earned stage. `metadata`: what
    the version records besides (metrics, lineage, config); the model folder is logged to MLflow run `run_id`
    under `artifact_path` before this is called."""
    from rcatune.state import state_lock

    with state_lock(f"registry-{model.name}"):  # runs sharing the state folder decide and commit in turn
        return _register(model, trained, evaluation, decision, sets, cfg, system_prompt, max_length, metadata, run_id,
                         artifact_path, runtime)


def _register(model, trained: TrainedModel, evaluation: Evaluation, decision: GateDecision, sets: dict, cfg,
              system_prompt: str, max_length: int, metadata: dict[str, Any], run_id: str, artifact_path: str,
              runtime) -> Promotion:
    from zenml import log_metadata
    from zenml.enums import ModelStages

    name, number = model.name, str(model.number)
    check = reconcile(name, skip=number)
    print(check.line(name), flush=True)
    production, versus, production_value = versus_production(name, evaluation, decision, sets, cfg, system_prompt,
                                                              max_length, runtime)
    stage, reason = decide_stage(decision, versus, cfg.promotion_margin, production[1] if production else None)
    log_metadata(metadata={**metadata, "stage_decision": stage or "none", "stage_reason": reason,
                           REGISTRATION: "started", "registered_by": claim()}, model_name=name, model_version=number)
    pause_point("register.zenml")
    mlflow_version = register_twin(name, run_id, artifact_path, tags={
        "zenml_version": number, "gate": "passed" if decision.passed else "failed", "stage_reason": reason[:500]})
    pause_point("register.mlflow")
    if stage is not None:
        model.set_stage(ModelStages(stage), force=True)
    pause_point("register.stage")
    sync_aliases(name)
    log_metadata(metadata={REGISTRATION: "complete", "mlflow_version": mlflow_version}, model_name=name,
                 model_version=number)
    return Promotion(stage=stage, reason=reason, primary_metric=decision.primary_metric,
                     value=decision.primary_value, production_value=production_value,
                     production_version=production[1] if production else None, comparison=versus,
                     zenml_model=name, zenml_version=number, mlflow_model=name, mlflow_version=mlflow_version,
                     registry_check=check.line(name))
