"""The typed artifacts the pipelines pass between steps and record: one module, one place to look.

Each knows what of itself goes into `run_summary.json` (`summarise`), so the runner collects a
pipeline's outputs without knowing which pipeline produced them.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field

from rcatune.config import Spec
from rcatune.runinfo import RunSummary

PRIMARY_METRIC = "rca_accuracy"


class TrainedModel(BaseModel):
    """What a training run produced and how it went."""

    base_model: str  # the folder or hub id it started from
    model_spec: Spec  # the base model's config, to load it again
    method: str
    backend: str
    output_dir: str
    model_dir: str  # the adapter (LoRA/QLoRA) or full weights, with the tokenizer and signature
    is_adapter: bool
    metrics: dict[str, float]
    history: list[dict[str, float]] = Field(default_factory=list)
    resumed_from: Optional[str] = None

    def summarise(self, summary: RunSummary) -> None:
        summary.metrics.update({k: self.metrics[k] for k in ("train_loss", "eval_loss", "train_seconds",
                                                              "train_tokens_per_second", "peak_memory_mb")
                                if k in self.metrics})
        summary.artifacts["model"] = self.model_dir
        if self.resumed_from:
            summary.decisions["resumed_from"] = self.resumed_from


class ModelScores(BaseModel):
    """Aggregate metrics of one model on an evaluation set, and its answers."""

    name: str
    metrics: dict[str, float]
    answers: list[dict[str, Any]] = Field(default_factory=list)


class GateCheck(BaseModel):
    """One threshold: `value` against `threshold` (`at_least` or `at_most`); `value` None when unmeasured."""

    metric: str
    value: Optional[float]
    threshold: Optional[float]
    rule: str  # at_least | at_most | above (strictly, e.g. the base model's value)
    passed: bool
    against: str = "threshold"  # what the threshold is: a configured threshold, or 'base model'
    note: str = ""

    def text(self) -> str:
        if self.value is None:
            return f"{self.metric}: not measured ({self.note})" if self.note else f"{self.metric}: not measured"
        words = {"at_least": "minimum", "at_most": "maximum", "above": "must beat"}[self.rule]
        shown = f"{self.threshold:.3f}" if self.threshold is not None else "n/a"
        return f"{self.metric} {self.value:.3f} vs {words} {shown}" + (
            f" ({self.against})" if self.against != "threshold" else "")


class GateDecision(BaseModel):
    passed: bool
    checks: list[GateCheck]
    primary_metric: str
    primary_value: Optional[float]
    base_value: Optional[float]

    @property
    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def lines(self) -> list[str]:
        return [("ok: " if c.passed else "failed: ") + c.text() for c in self.checks]


class Evaluation(BaseModel):
    tuned: ModelScores
    base: Optional[ModelScores]
    decision: GateDecision
    report_path: str
    candidate: str = "tuned"

    def summarise(self, summary: RunSummary) -> None:
        summary.evaluation = {"tuned": self.tuned.metrics, "base": self.base.metrics if self.base else None}
        summary.artifacts["evaluation_report"] = self.report_path
        summary.decisions["gate"] = "passed" if self.decision.passed else "failed"
        summary.decisions["gate_checks"] = [c.model_dump() for c in self.decision.checks]
        value = self.decision.primary_value
        if value is not None:
            summary.primary_metric = {"name": self.decision.primary_metric, "value": value}


class Promotion(BaseModel):
    stage: Optional[str]  # None: registered, not promoted
    reason: str
    primary_metric: str
    value: Optional[float]
    production_value: Optional[float]
    zenml_model: Optional[str] = None
    zenml_version: Optional[str] = None
    mlflow_model: Optional[str] = None
    mlflow_version: Optional[str] = None

    def summarise(self, summary: RunSummary) -> None:
        summary.decisions["stage"] = self.stage or "none"
        summary.decisions["stage_reason"] = self.reason
        summary.decisions["zenml_model_version"] = f"{self.zenml_model} v{self.zenml_version}"
        summary.decisions["mlflow_model_version"] = f"{self.mlflow_model} v{self.mlflow_version}"


class ExportBundle(BaseModel):
    """The serving bundle: adapter, merged weights, tokenizer, signature, model card, optional quantised copy."""

    root: str
    merged: str
    adapter: Optional[str]
    quantised: Optional[str]
    merged_bytes: int
    quantised_bytes: Optional[int]
    size_reduction: Optional[float]  # 1 - quantised / merged
    smoke: dict[str, Any] = Field(default_factory=dict)  # one diagnosis through the inference layer

    def summarise(self, summary: RunSummary) -> None:
        summary.artifacts["export"] = self.root
        summary.artifacts["export_merged"] = self.merged
        if self.smoke:
            summary.decisions["export_smoke_test"] = "passed" if self.smoke.get("passed") else "failed"
