"""Evaluation and gate steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig
from zenml.types import MarkdownString

from rcatune import constants
from rcatune.artifacts import Evaluation, GateDecision, TrainedModel
from rcatune.config import Spec, load_spec
from rcatune.config.evaluation import EvaluationConfig
from rcatune.evaluation.baseline import WordsBaseline
from rcatune.evaluation.catalog import FaultCatalog
from rcatune.evaluation.run import evaluate_candidate
from rcatune.inference import load_base, load_folder
from rcatune.inference.loading import read_description
from rcatune.lineage import TrainingData, refuse_overlap
from rcatune.registry.versions import registry_folder
from rcatune.runtime import Runtime
from rcatune.schema import TrainingDataset
from rcatune.split import DatasetSplits


def _track(result: Evaluation, **metadata: Any) -> MarkdownString:
    """Metrics and the report folder to MLflow, metrics to the artifact; the report for ZenML's dashboard."""
    import mlflow

    mlflow.log_metrics({f"tuned_{k}": v for k, v in result.tuned.metrics.items()})
    if result.base is not None:
        mlflow.log_metrics({f"base_{k}": v for k, v in result.base.metrics.items()})
    baseline = result.headline.baseline
    if baseline is not None:
        mlflow.log_metrics({f"words_baseline_{k}": v for k, v in baseline.metrics.items()})
    mlflow.log_artifacts(str(Path(result.report_path).parent), artifact_path=constants.EVALUATION_DIR)
    log_metadata(metadata={**metadata, "tuned": result.tuned.metrics,
                           "base": result.base.metrics if result.base else {}},
                 artifact_name=constants.EVALUATION, infer_artifact=True)
    return MarkdownString(Path(result.report_path).read_text(encoding="utf-8"))


@step(experiment_tracker=True, enable_cache=False)
def evaluate_model(splits: DatasetSplits, trained: TrainedModel, evaluation: EvaluationConfig, system_prompt: str,
                   max_length: int, output_dir: str, runtime: Runtime) -> tuple[
    Annotated[Evaluation, ArtifactConfig(name=constants.EVALUATION)],
    Annotated[MarkdownString, ArtifactConfig(name=constants.EVALUATION_REPORT)],
]:
    """Base vs tuned on the test split: metrics, plots and a markdown report."""
    base_cfg = load_spec(trained.model_spec)
    words = None
    if evaluation.words_baseline:  # fitted on the same train split, kept beside the model for pipeline=evaluate
        words = WordsBaseline.fit(splits.train, FaultCatalog.load(evaluation.fault_catalog), system_prompt)
        if words is not None:
            words.save(trained.model_dir)
    result = evaluate_candidate(
        {"test": splits.test, "shift": splits.shift}, lambda: load_folder(trained.model_dir, runtime, base=base_cfg),
        (lambda: load_base(base_cfg, runtime)) if evaluation.compare_with_base else None, evaluation,
        system_prompt, max_length, Path(output_dir) / constants.EVALUATION_DIR, trained.history, runtime.progress,
        words=words)
    return result, _track(result)


@step(experiment_tracker=True, enable_cache=False)
def gate_model(evaluation: Evaluation) -> Annotated[GateDecision, ArtifactConfig(name=constants.GATE_DECISION)]:
    """Record the ship decision and its checks (a failed gate is a decision, not a crash)."""
    import mlflow

    decision = evaluation.decision
    mlflow.set_tags({"gate": "passed" if decision.passed else "failed"})
    mlflow.log_dict(decision.model_dump(), "evaluation/gate_decision.json")
    log_metadata(metadata={"passed": decision.passed, "checks": [c.model_dump(exclude_none=True)
                                                                 for c in decision.checks]}, infer_artifact=True)
    return decision


def _candidate(settings: Any, model: Spec, registry_name: str) -> tuple[str, str, Optional[Any]]:
    """(folder, label, base config or None) of what `pipeline=evaluate` scores."""
    folder, label = (settings.model_dir, f"model {settings.model_dir}") if settings.model_dir \
        else registry_folder(registry_name, settings.model_version)
    description = read_description(folder)
    if description:
        return folder, label, load_spec(description["base_model"])
    adapter = (Path(folder) / "adapter_config.json").exists()
    return folder, label, model.load() if adapter else None  # an adapter adapts the configured model


@step(experiment_tracker=True, enable_cache=False)
def evaluate_candidate_model(dataset: TrainingDataset, pipeline: Spec, model: Spec, evaluation: EvaluationConfig,
                             model_registry_name: str, system_prompt: str, max_length: int,
                             shift_phrasing: Optional[str], output_dir: str, runtime: Runtime) -> tuple[
    Annotated[Evaluation, ArtifactConfig(name=constants.EVALUATION)],
    Annotated[MarkdownString, ArtifactConfig(name=constants.EVALUATION_REPORT)],
]:
    """Score a registered version or a model folder on every example of the data source (those in the
    held-out phrasing apart, as the shift set); refuse data the candidate trained on."""
    import mlflow

    settings = pipeline.load()
    folder, label, base = _candidate(settings, model, model_registry_name)
    overlap = refuse_overlap(TrainingData.read(folder), dataset.examples, label, settings.allow_overlap)
    compare = evaluation.compare_with_base and base is not None  # no known base: nothing to compare with
    shifted = [e for e in dataset.examples if shift_phrasing and e.phrasing == shift_phrasing]
    held = {e.id for e in shifted}
    sets = {"shift": shifted, "data": [e for e in dataset.examples if e.id not in held]}
    result = evaluate_candidate(
        sets, lambda: load_folder(folder, runtime, base=base),
        (lambda: load_base(base, runtime)) if compare else None, evaluation, system_prompt, max_length,
        Path(output_dir) / constants.EVALUATION_DIR, progress=runtime.progress,
        title=f"rcatune evaluation of {label}",
        words=WordsBaseline.read(folder) if evaluation.words_baseline else None)
    result.candidate, result.overlap = label, overlap
    mlflow.set_tag("candidate", label)
    return result, _track(result, candidate=label)
