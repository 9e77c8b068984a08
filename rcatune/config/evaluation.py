"""`evaluation=`: what a candidate is scored on and the thresholds that gate what may ship."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rcatune.config._require import require


@dataclass
class EvaluationConfig:
    min_accuracy: float = 0.75
    max_perplexity: float = 10.0
    min_bleu: float = 0.3
    require_improvement: bool = True
    max_new_tokens: int = 384
    max_examples: Optional[int] = None  # evaluate on the first N test examples (None: all)
    compare_with_base: bool = True
    # Prompts generated together (left-padded, greedy). Above 1 it is faster (bench/NOTES.md: 2.4x the
    # tokens/s at 8 on a CPU), and latency_p50/p95 then measure a request's wait for its whole batch.
    batch_size: int = 1

    def __post_init__(self) -> None:
        require(self.batch_size >= 1, "evaluation.batch_size", f"must be at least 1, got {self.batch_size}")
        require(0.0 <= self.min_accuracy <= 1.0, "evaluation.min_accuracy", "must be within [0, 1]")
        require(self.max_perplexity > 0, "evaluation.max_perplexity", "must be positive")
        require(0.0 <= self.min_bleu <= 1.0, "evaluation.min_bleu", "must be within [0, 1]")
        require(self.max_new_tokens > 0, "evaluation.max_new_tokens", "must be positive")


SCHEMAS = {"base": EvaluationConfig}
