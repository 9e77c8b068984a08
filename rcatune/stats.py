"""Paired comparisons of two models scored on the same examples: exact McNemar, paired bootstrap intervals.

Two models answering the same incidents are paired observations: the test that respects that is
McNemar's on the discordant pairs (one right, the other wrong), exact (binomial) because the counts
are small; continuous per-example scores get a paired bootstrap interval of the mean difference
(resampling incidents, both models together).
"""

from __future__ import annotations

import math
import random
from typing import Optional

from pydantic import BaseModel, Field


def mcnemar_exact(first: list[bool], second: list[bool]) -> tuple[int, int, float]:
    """(first right and second wrong, first wrong and second right, two-sided exact p-value)."""
    only_first = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    only_second = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    n = only_first + only_second
    if n == 0:
        return 0, 0, 1.0
    k = min(only_first, only_second)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return only_first, only_second, min(1.0, 2 * tail)


def paired_bootstrap(first: list[float], second: list[float], resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean of first - second, interval low, interval high), resampling pairs with replacement."""
    differences = [a - b for a, b in zip(first, second, strict=True)]
    if not differences:
        return float("nan"), float("nan"), float("nan")
    rng = random.Random(seed)
    n = len(differences)
    means = sorted(sum(differences[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1 - tail) * (resamples - 1)))]
    return sum(differences) / n, low, high


class MetricDifference(BaseModel):
    metric: str
    first: float
    second: float
    difference: float
    low: float
    high: float


class PairedComparison(BaseModel):
    """`first` vs `second` on the same `n` examples."""

    first: str
    second: str
    n: int
    confidence: float
    accuracy: Optional[MetricDifference] = None  # root-cause accuracy, over the labelled examples
    labelled: int = 0
    first_only_right: int = 0
    second_only_right: int = 0
    mcnemar_p: Optional[float] = None
    metrics: list[MetricDifference] = Field(default_factory=list)

    def line(self) -> str:
        if self.accuracy is None:
            return f"{self.first} vs {self.second}: no labelled examples to compare on"
        a = self.accuracy
        return (f"{self.first} vs {self.second} on {self.labelled} labelled incidents: accuracy {a.first:.3f} vs "
                f"{a.second:.3f}, difference {a.difference:+.3f} ({self.confidence:.0%} paired bootstrap "
                f"[{a.low:+.3f}, {a.high:+.3f}]), exact McNemar p = {self.mcnemar_p:.3g} "
                f"({self.first_only_right} vs {self.second_only_right} discordant)")


CONTINUOUS = ("rca_semantic", "root_cause_f1", "query_valid", "critical_path_f1", "remediation_f1", "rouge_l")


def compare(first_name: str, first_rows: list[dict], second_name: str, second_rows: list[dict],
            confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> PairedComparison:
    """Pair the per-example rows by example id (both scored on the same examples)."""
    second_by_id = {row["id"]: row for row in second_rows}
    pairs = [(row, second_by_id[row["id"]]) for row in first_rows if row["id"] in second_by_id]
    comparison = PairedComparison(first=first_name, second=second_name, n=len(pairs), confidence=confidence)
    labelled = [(a, b) for a, b in pairs if "rca_correct" in a and "rca_correct" in b]
    if labelled:
        right_first = [bool(a["rca_correct"]) for a, _ in labelled]
        right_second = [bool(b["rca_correct"]) for _, b in labelled]
        only_first, only_second, p = mcnemar_exact(right_first, right_second)
        difference, low, high = paired_bootstrap([float(x) for x in right_first], [float(x) for x in right_second],
                                                 resamples, confidence, seed)
        comparison.accuracy = MetricDifference(
            metric="rca_accuracy", first=sum(right_first) / len(labelled), second=sum(right_second) / len(labelled),
            difference=difference, low=low, high=high)
        comparison.labelled, comparison.mcnemar_p = len(labelled), p
        comparison.first_only_right, comparison.second_only_right = only_first, only_second
    for metric in CONTINUOUS:
        values = [(a[metric], b[metric]) for a, b in pairs if metric in a and metric in b]
        if values:
            first_values, second_values = [v[0] for v in values], [v[1] for v in values]
            difference, low, high = paired_bootstrap(first_values, second_values, resamples, confidence, seed)
            comparison.metrics.append(MetricDifference(
                metric=metric, first=sum(first_values) / len(values), second=sum(second_values) / len(values),
                difference=difference, low=low, high=high))
    return comparison
