"""The ship gate: thresholds from config, recorded as a decision with reasons (never a crash)."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel

from rcatune.config.schema import EvaluationConfig
from rcatune.evaluation.evaluate import PRIMARY_METRIC


class GateDecision(BaseModel):
    passed: bool
    reasons: list[str]
    primary_metric: str
    primary_value: Optional[float]
    base_value: Optional[float]


def decide(tuned: dict[str, float], base: Optional[dict[str, float]], cfg: EvaluationConfig) -> GateDecision:
    """Apply every threshold; each failed check adds a reason."""
    checks = []
    accuracy = tuned.get(PRIMARY_METRIC)
    if accuracy is None:
        checks.append((False, f"no {PRIMARY_METRIC}: the test data has no scenario labels to score against"))
    else:
        checks.append((accuracy >= cfg.min_accuracy, f"{PRIMARY_METRIC} {accuracy:.3f} vs minimum {cfg.min_accuracy}"))
    checks.append((tuned["perplexity"] <= cfg.max_perplexity,
                   f"perplexity {tuned['perplexity']:.3f} vs maximum {cfg.max_perplexity}"))
    checks.append((tuned["bleu"] >= cfg.min_bleu, f"bleu {tuned['bleu']:.3f} vs minimum {cfg.min_bleu}"))
    base_value = base.get(PRIMARY_METRIC) if base else None
    if cfg.require_improvement:
        if base is None or base_value is None or accuracy is None:
            checks.append((False, "improvement over the base model could not be measured"))
        else:
            checks.append((accuracy > base_value, f"{PRIMARY_METRIC} {accuracy:.3f} vs base {base_value:.3f}"))
    reasons = [("ok: " if ok else "failed: ") + text for ok, text in checks]
    return GateDecision(passed=all(ok for ok, _ in checks), reasons=reasons, primary_metric=PRIMARY_METRIC,
                        primary_value=accuracy, base_value=base_value)
