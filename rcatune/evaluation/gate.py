"""The ship gate: thresholds from config on the headline set, one structured check each (never a crash)."""

from __future__ import annotations

from typing import Optional

from rcatune.artifacts import PRIMARY_METRIC, GateCheck, GateDecision, SetScores
from rcatune.config.evaluation import EvaluationConfig


def _threshold(metrics: dict[str, float], metric: str, threshold: float, rule: str, note: str = "") -> GateCheck:
    value = metrics.get(metric)
    if value is None:
        return GateCheck(metric=metric, value=None, threshold=threshold, rule=rule, passed=False, note=note)
    passed = value >= threshold if rule == "at_least" else value <= threshold
    return GateCheck(metric=metric, value=value, threshold=threshold, rule=rule, passed=passed)


def _improvement(result: SetScores, cfg: EvaluationConfig) -> list[GateCheck]:
    """Beat the base model on root-cause accuracy: by `min_improvement`, with McNemar p below `alpha`."""
    comparison = result.comparison
    accuracy = comparison.accuracy if comparison else None
    if accuracy is None:
        note = "no base model to compare with" if comparison is None else "no labelled examples to compare on"
        return [GateCheck(metric="rca_accuracy_gain", value=None, threshold=cfg.min_improvement, rule="at_least",
                          against="base model", passed=False, note=note)]
    gain = accuracy.difference
    return [GateCheck(metric="rca_accuracy_gain", value=gain, threshold=cfg.min_improvement, rule="at_least",
                      against="base model", passed=gain >= cfg.min_improvement and gain > 0,
                      note=f"paired bootstrap [{accuracy.low:+.3f}, {accuracy.high:+.3f}]"),
            GateCheck(metric="mcnemar_p", value=comparison.mcnemar_p, threshold=cfg.alpha, rule="below",
                      against="base model", passed=comparison.mcnemar_p < cfg.alpha,
                      note=f"{comparison.first_only_right} vs {comparison.second_only_right} discordant of "
                           f"{comparison.labelled}")]


def decide(result: SetScores, cfg: EvaluationConfig) -> GateDecision:
    """Apply every threshold to `result` (the headline set); each is a check with its metric, value,
    threshold and outcome."""
    tuned = result.tuned.metrics
    checks = [
        _threshold(tuned, PRIMARY_METRIC, cfg.min_accuracy, "at_least",
                   note="no example could be labelled with a fault (see label_coverage)"),
        _threshold(tuned, "perplexity", cfg.max_perplexity, "at_most"),
        _threshold(tuned, "bleu", cfg.min_bleu, "at_least"),
    ]
    if cfg.require_improvement:
        checks += _improvement(result, cfg)
    base_value: Optional[float] = result.base.metrics.get(PRIMARY_METRIC) if result.base else None
    return GateDecision(passed=all(c.passed for c in checks), checks=checks, primary_metric=PRIMARY_METRIC,
                        primary_value=tuned.get(PRIMARY_METRIC), base_value=base_value)
