"""The ship gate: thresholds from config, recorded as a decision with one structured check each (never a crash)."""

from __future__ import annotations

from typing import Optional

from rcatune.artifacts import PRIMARY_METRIC, GateCheck, GateDecision
from rcatune.config.evaluation import EvaluationConfig


def _threshold(metrics: dict[str, float], metric: str, threshold: float, rule: str, note: str = "") -> GateCheck:
    value = metrics.get(metric)
    if value is None:
        return GateCheck(metric=metric, value=None, threshold=threshold, rule=rule, passed=False, note=note)
    passed = value >= threshold if rule == "at_least" else value <= threshold
    return GateCheck(metric=metric, value=value, threshold=threshold, rule=rule, passed=passed)


def decide(tuned: dict[str, float], base: Optional[dict[str, float]], cfg: EvaluationConfig) -> GateDecision:
    """Apply every threshold; each is a check with its metric, value, threshold and outcome."""
    checks = [
        _threshold(tuned, PRIMARY_METRIC, cfg.min_accuracy, "at_least",
                   note="the test data has no fault labels to score against"),
        _threshold(tuned, "perplexity", cfg.max_perplexity, "at_most"),
        _threshold(tuned, "bleu", cfg.min_bleu, "at_least"),
    ]
    accuracy = tuned.get(PRIMARY_METRIC)
    base_value = base.get(PRIMARY_METRIC) if base else None
    if cfg.require_improvement:
        measured = accuracy is not None and base_value is not None
        checks.append(GateCheck(metric=PRIMARY_METRIC, value=accuracy, threshold=base_value, rule="above",
                                against="base model", passed=measured and accuracy > base_value,
                                note="" if measured else "improvement over the base model could not be measured"))
    return GateDecision(passed=all(c.passed for c in checks), checks=checks, primary_metric=PRIMARY_METRIC,
                        primary_value=accuracy, base_value=base_value)
