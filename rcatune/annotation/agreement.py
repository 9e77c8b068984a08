"""Inter-annotator agreement from an export: percent agreement and Krippendorff's alpha.

A *unit* is one task's values for one question, one value per annotator who answered it.
Units with fewer than two values carry no information about agreement and are left out, as
Krippendorff prescribes. Alpha handles any number of annotators per unit and missing answers,
which is why it is used rather than Fleiss' kappa (that needs the same number of raters per task).

    alpha = 1 - D_o / D_e, from the coincidence matrix o_ck = sum_u sum_{i!=j} [v_ui=c][v_uj=k] / (m_u - 1)
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Hashable, Literal, Sequence

Level = Literal["nominal", "ordinal", "interval"]


def pairable(units: Sequence[Sequence[Hashable]]) -> list[list[Hashable]]:
    return [list(u) for u in units if len(u) >= 2]


def unit_agreement(values: Sequence[Hashable]) -> float:
    """Share of annotator pairs on one unit that gave the same value (1.0 for fewer than two values)."""
    pairs = list(combinations(values, 2))
    if not pairs:
        return 1.0
    return sum(a == b for a, b in pairs) / len(pairs)


def percent_agreement(units: Sequence[Sequence[Hashable]]) -> float | None:
    """Mean pairwise agreement over the units that two or more annotators answered."""
    usable = pairable(units)
    if not usable:
        return None
    return sum(unit_agreement(u) for u in usable) / len(usable)


def _coincidences(units: list[list[Hashable]]) -> dict[tuple[Hashable, Hashable], float]:
    matrix: dict[tuple[Hashable, Hashable], float] = Counter()
    for unit in units:
        weight = 1.0 / (len(unit) - 1)
        for i, a in enumerate(unit):
            for j, b in enumerate(unit):
                if i != j:
                    matrix[(a, b)] += weight
    return matrix


def _distance(level: Level, totals: dict[Hashable, float]):
    if level == "nominal":
        return lambda c, k: 0.0 if c == k else 1.0
    if level == "interval":
        return lambda c, k: float(c - k) ** 2
    order = sorted(totals)
    rank = {value: i for i, value in enumerate(order)}

    def ordinal(c, k):
        lo, hi = sorted((rank[c], rank[k]))
        between = sum(totals[order[g]] for g in range(lo, hi + 1))
        return (between - (totals[c] + totals[k]) / 2) ** 2

    return ordinal


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], level: Level = "nominal") -> float | None:
    """Krippendorff's alpha; None when fewer than two pairable values exist or all values are the same
    (expected disagreement 0: alpha is undefined, and reporting 1.0 would flatter the data)."""
    usable = pairable(units)
    matrix = _coincidences(usable)
    totals: dict[Hashable, float] = Counter()
    for (c, _k), count in matrix.items():
        totals[c] += count
    n = sum(totals.values())
    if n < 2 or len(totals) < 2:
        return None
    delta = _distance(level, totals)
    observed = sum(count * delta(c, k) for (c, k), count in matrix.items())
    expected = sum(totals[c] * totals[k] * delta(c, k) for c in totals for k in totals)
    return 1.0 - (n - 1) * observed / expected
