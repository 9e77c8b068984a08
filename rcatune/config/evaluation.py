"""`evaluation=`: what a candidate is scored on and the thresholds that gate what may ship."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rcatune.config._require import require


@dataclass
class EvaluationConfig:
    """Thresholds apply to the headline set: the phrasing-shift split when there is one, else the test split."""

    min_accuracy: float = 0.75
    max_perplexity: float = 10.0
    min_bleu: float = 0.3
    require_improvement: bool = True  # beat the base model on root-cause accuracy, paired, by min_improvement
    min_improvement: float = 0.0  # tuned - base accuracy the gate asks for ...
    alpha: float = 0.05  # ... with an exact McNemar p-value below this
    promotion_margin: float = 0.0  # 'beats production': the paired interval of the accuracy gain clears this
    confidence: float = 0.95  # paired bootstrap intervals
    bootstrap_resamples: int = 2000
    fault_catalog: Optional[str] = None  # YAML/JSON of your system's faults (None: the OpenTelemetry Demo's)
    max_new_tokens: int = 384
    max_examples: Optional[int] = None  # evaluate on the first N examples of each set (None: all)
    compare_with_base: bool = True
    # Fit a bag-of-words classifier on the training split and compare the tuned model with it, paired
    # (rcatune.evaluation.baseline): does the model learn more than which words occur?
    words_baseline: bool = True
    # Prompts generated together (left-padded, greedy). Above 1 it is faster (bench/NOTES.md: 2.4x the
    # tokens/s at 8 on a CPU), and latency_p50/p95 then measure a request's wait for its whole batch.
    batch_size: int = 1

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "evaluation.batch_size", f"must be at least 1, got {self.batch_size}")
        require(0.0 <= self.min_accuracy <= 1.0, "evaluation.min_accuracy", "must be within [0, 1]")
        require(self.max_perplexity > 0, "evaluation.max_perplexity", "must be positive")
        require(0.0 <= self.min_bleu <= 1.0, "evaluation.min_bleu", "must be within [0, 1]")
        require(self.max_new_tokens > 0, "evaluation.max_new_tokens", "must be positive")
        require(0.0 < self.alpha < 1.0, "evaluation.alpha", "must be within (0, 1)")
        require(0.5 <= self.confidence < 1.0, "evaluation.confidence", "must be within [0.5, 1)")
        require(self.bootstrap_resamples >= 100, "evaluation.bootstrap_resamples", "must be at least 100")


SCHEMAS = {"base": EvaluationConfig}
