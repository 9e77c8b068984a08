"""The typed artifacts the pipelines pass between steps and record: one module, one place to look.

Each knows what of itself goes into `run_summary.json` (`summarise`), so the runner collects a
pipeline's outputs without knowing which pipeline produced them.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, Field

from rcatune.config import Spec
from rcatune.runinfo import RunSummary
from rcatune.stats import PairedComparison

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


class SetScores(BaseModel):
    """Both models on one evaluation set (`test`: phrased like training; `shift`: a phrasing never trained
    on; `data`: a whole data source), and their paired comparison."""

    name: str
    tuned: ModelScores
    base: Optional[ModelScores] = None
    comparison: Optional[PairedComparison] = None  # tuned vs base, paired by example
    baseline: Optional[ModelScores] = None  # the bag-of-words baseline fitted on the training split
    versus_baseline: Optional[PairedComparison] = None  # tuned vs that baseline, paired by example


class GateCheck(BaseModel):
    """One threshold: `value` against `threshold` (`at_least` or `at_most`); `value` None when unmeasured."""

    metric: str
    value: Optional[float]
    threshold: Optional[float]
    rule: str  # at_least | at_most | below (strictly)
    passed: bool
    against: str = "threshold"  # what the threshold is: a configured threshold, or 'base model'
    note: str = ""

    def text(self) -> str:
        if self.value is None:
            return f"{self.metric}: not measured ({self.note})" if self.note else f"{self.metric}: not measured"
        words = {"at_least": "minimum", "at_most": "maximum", "below": "must be below"}[self.rule]
        shown = f"{self.threshold:.3g}" if self.threshold is not None else "n/a"
        value = f"{self.value:.3g}" if self.metric == "mcnemar_p" else f"{self.value:.3f}"
        text = f"{self.metric} {value} vs {words} {shown}"
        context = [c for c in (self.against if self.against != "threshold" else "", self.note) if c]
        return text + (f" ({'; '.join(context)})" if context else "")


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
    sets: list[SetScores]  # the headline set first
    decision: GateDecision
    report_path: str
    candidate: str = "tuned"
    overlap: list[str] = Field(default_factory=list)  # evaluation examples the candidate trained on (forced)

    @property
    def headline(self) -> SetScores:
        """The set the gate and promotion judge on: the phrasing-shift split when there is one."""
        return self.sets[0]

    @property
    def tuned(self) -> ModelScores:
        return self.headline.tuned

    @property
    def base(self) -> Optional[ModelScores]:
        return self.headline.base

    def summarise(self, summary: RunSummary) -> None:
        summary.evaluation = {
            "headline": self.headline.name, "tuned": self.tuned.metrics,
            "base": self.base.metrics if self.base else None,
            "sets": {s.name: {"tuned": s.tuned.metrics, "base": s.base.metrics if s.base else None,
                              "comparison": s.comparison.model_dump() if s.comparison else None,
                              "words_baseline": s.baseline.metrics if s.baseline else None,
                              "versus_baseline": s.versus_baseline.model_dump() if s.versus_baseline else None}
                     for s in self.sets}}
        summary.artifacts["evaluation_report"] = self.report_path
        summary.decisions["gate"] = "passed" if self.decision.passed else "failed"
        summary.decisions["gate_checks"] = [c.model_dump() for c in self.decision.checks]
        if self.overlap:
            summary.decisions["evaluation_overlap"] = (f"{len(self.overlap)} evaluation sessions were training data "
                                                       "(pipeline.allow_overlap=true)")
        value = self.decision.primary_value
        if value is not None:
            summary.primary_metric = {"name": self.decision.primary_metric, "set": self.headline.name,
                                      "value": value}


class Promotion(BaseModel):
    stage: Optional[str]  # None: registered, not promoted
    reason: str
    primary_metric: str
    value: Optional[float]
    production_value: Optional[float]  # production re-scored on the same evaluation set
    production_version: Optional[str] = None
    comparison: Optional[PairedComparison] = None  # candidate vs production, paired
    zenml_model: Optional[str] = None
    zenml_version: Optional[str] = None
    mlflow_model: Optional[str] = None
    mlflow_version: Optional[str] = None
    registry_check: Optional[str] = None  # what the check before registering found and repaired (one line)

    def summarise(self, summary: RunSummary) -> None:
        summary.decisions["stage"] = self.stage or "none"
        summary.decisions["stage_reason"] = self.reason
        summary.decisions["zenml_model_version"] = f"{self.zenml_model} v{self.zenml_version}"
        summary.decisions["mlflow_model_version"] = f"{self.mlflow_model} v{self.mlflow_version}"
        if self.comparison is not None:
            summary.decisions["versus_production"] = self.comparison.model_dump()
        if self.registry_check:
            summary.decisions["registry_check"] = self.registry_check


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
    onnx: Optional[str] = None  # the ONNX folder (export.onnx=true)
    onnx_report: dict[str, Any] = Field(default_factory=dict)  # rcatune_onnx.json: cache, size, parity

    def summarise(self, summary: RunSummary) -> None:
        summary.artifacts["export"] = self.root
        summary.artifacts["export_merged"] = self.merged
        if self.smoke:
            summary.decisions["export_smoke_test"] = "passed" if self.smoke.get("passed") else "failed"
        if self.onnx:
            summary.artifacts["export_onnx"] = self.onnx
            parity = self.onnx_report.get("parity", {})
            summary.decisions["onnx_parity"] = (
                f"logits within {parity.get('max_logit_difference', float('nan')):.1e}, the same "
                f"{parity.get('greedy_tokens')} greedy tokens; "
                + ("with its KV cache" if self.onnx_report.get("kv_cache") else "without a KV cache"))
