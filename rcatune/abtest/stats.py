"""The statistics of an A/B test, over scipy (no maintained sequential-testing package resolves with the pinned
set: ../docs/abtest.md says which were tried). What is written here is checked against scipy's own tests and
against seeded simulations (tests/test_abtest_stats.py).

- Fixed-horizon effects: a difference of proportions (Wald interval, pooled z-test, as statsmodels'
  `proportions_ztest` does) and of means (Welch), with a skew-robust alternative for means (difference of
  medians: bootstrap interval, Mann-Whitney p-value).
- Peeking-safe by default: the asymptotic confidence sequence of Waudby-Smith et al. (2023, arXiv 2103.06476,
  the one GrowthBook uses): an interval valid at every look at once, so a team may look every hour without
  inflating false positives. Its width is tuned to be tightest near `tuning_units`.
- Sample-ratio mismatch: chi-square against the configured split, alarm at p < 0.001 (Eppo, GrowthBook).
- Power: the units per arm a fixed-horizon test needs for a minimum effect, and what the sequential test needs.
- Holm's correction across the metrics looked at.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

SRM_ALARM_P = 0.001


@dataclass(frozen=True)
class Effect:
    """Treatment minus control for one metric, with its interval and p-value."""

    metric: str
    kind: str  # proportion | mean | median
    control: float
    treatment: float
    difference: float
    low: float
    high: float
    p_value: Optional[float]  # None for a confidence sequence (it is read by whether 0 is inside)
    n_control: int
    n_treatment: int
    method: str
    se: float = float("nan")

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant}


def _z(alpha: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def proportion_effect(metric: str, successes_c: int, n_c: int, successes_t: int, n_t: int,
                      alpha: float = 0.05) -> Effect:
    """Difference of two proportions: the unpooled Wald interval and the pooled two-sided z-test."""
    from scipy.stats import norm

    _require_units(n_c, n_t)
    p_c, p_t = successes_c / n_c, successes_t / n_t
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    pooled = (successes_c + successes_t) / (n_c + n_t)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    diff = p_t - p_c
    p_value = 1.0 if se_pooled == 0 else float(2 * norm.sf(abs(diff) / se_pooled))
    half = _z(alpha) * se
    return Effect(metric, "proportion", p_c, p_t, diff, diff - half, diff + half, p_value, n_c, n_t,
                  "Wald interval, pooled z-test", se)


def mean_effect(metric: str, control: Sequence[float], treatment: Sequence[float], alpha: float = 0.05) -> Effect:
    """Difference of means: Welch's t-test and its interval (unequal variances)."""
    import numpy as np
    from scipy.stats import ttest_ind

    a, b = np.asarray(control, float), np.asarray(treatment, float)
    _require_units(len(a), len(b), 2)
    test = ttest_ind(b, a, equal_var=False)
    interval = test.confidence_interval(1 - alpha)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return Effect(metric, "mean", float(a.mean()), float(b.mean()), float(b.mean() - a.mean()),
                  float(interval.low), float(interval.high), float(test.pvalue), len(a), len(b), "Welch t-test", se)


def median_effect(metric: str, control: Sequence[float], treatment: Sequence[float], alpha: float = 0.05,
                  resamples: int = 2000, seed: int = 0) -> Effect:
    """Skew-robust: the difference of medians with a percentile bootstrap interval; Mann-Whitney's p-value."""
    import numpy as np
    from scipy.stats import bootstrap, mannwhitneyu

    a, b = np.asarray(control, float), np.asarray(treatment, float)
    _require_units(len(a), len(b), 2)
    result = bootstrap((b, a), lambda x, y, axis=-1: np.median(x, axis=axis) - np.median(y, axis=axis),
                       confidence_level=1 - alpha, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(seed), vectorized=True)
    p_value = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return Effect(metric, "median", float(np.median(a)), float(np.median(b)), float(np.median(b) - np.median(a)),
                  float(result.confidence_interval.low), float(result.confidence_interval.high), p_value, len(a),
                  len(b), "difference of medians, percentile bootstrap; Mann-Whitney U", float(result.standard_error))


def cs_radius(se: float, units: int, alpha: float = 0.05, tuning_units: int = 1000) -> float:
    """Half-width of the asymptotic confidence sequence (Waudby-Smith et al. 2023, Theorem 2.2) for an estimate
    with standard error `se` after `units` units: valid at every look at once. With sigma = se * sqrt(units)
    (the spread of one unit), radius = sigma * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha)),
    rho tuned so the width is smallest at t = tuning_units (their eq. for rho*)."""
    if units <= 0 or not math.isfinite(se):
        return math.inf
    t = float(units)
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_units
    sigma = se * math.sqrt(t)
    return sigma * math.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / alpha))


def sequential(effect: Effect, alpha: float = 0.05, tuning_units: int = 1000) -> Effect:
    """The same estimate with an always-valid interval instead of the fixed-horizon one (no p-value)."""
    units = effect.n_control + effect.n_treatment
    half = cs_radius(effect.se, units, alpha, tuning_units)
    return Effect(effect.metric, effect.kind, effect.control, effect.treatment, effect.difference,
                  effect.difference - half, effect.difference + half, None, effect.n_control, effect.n_treatment,
                  f"confidence sequence (Waudby-Smith et al. 2023, tuned at {tuning_units} units) on "
                  f"{effect.method.split(',')[0]}", effect.se)


@dataclass(frozen=True)
class SrmCheck:
    observed: dict
    expected_share: dict
    p_value: float
    alarm: bool

    def line(self) -> str:
        seen = ", ".join(f"{arm} {n}" for arm, n in self.observed.items())
        want = ", ".join(f"{arm} {share:.0%}" for arm, share in self.expected_share.items())
        verdict = "SAMPLE-RATIO MISMATCH" if self.alarm else "split as configured"
        return f"{verdict}: {seen} against {want}, chi-square p = {self.p_value:.3g}"


def srm_check(observed: dict[str, int], weights: dict[str, float], threshold: float = SRM_ALARM_P) -> SrmCheck:
    """Units per arm against the configured split: an alarm when chi-square's p is below `threshold`."""
    from scipy.stats import chisquare

    arms = list(weights)
    total_weight = sum(weights[a] for a in arms)
    counts = [observed.get(a, 0) for a in arms]
    total = sum(counts)
    share = {a: weights[a] / total_weight for a in arms}
    if total == 0:
        return SrmCheck(dict(zip(arms, counts, strict=True)), share, 1.0, False)
    p_value = float(chisquare(counts, [total * share[a] for a in arms]).pvalue)
    return SrmCheck(dict(zip(arms, counts, strict=True)), share, p_value, p_value < threshold)


def units_per_arm(p_control: float, min_effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm a fixed-horizon two-sided test of two proportions needs to detect `min_effect` (absolute)
    with `power` (normal approximation, unpooled variance under the alternative)."""
    from scipy.stats import norm

    p_t = min(max(p_control + min_effect, 1e-9), 1 - 1e-9)
    p_bar = (p_control + p_t) / 2
    z_a, z_b = _z(alpha), float(norm.ppf(power))
    n = (z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p_control * (1 - p_control) + p_t * (1 - p_t))) \
        ** 2 / min_effect ** 2
    return math.ceil(n)


def sequential_units_per_arm(p_control: float, min_effect: float, alpha: float = 0.05, power: float = 0.8,
                             tuning_units: int = 1000, limit: int = 10_000_000) -> int:
    """Units per arm at which the confidence sequence excludes 0 with `power` when the true effect is
    `min_effect` (normal approximation): the smallest n with radius(n) + z_power * se(n) <= min_effect."""
    from scipy.stats import norm

    p_t = p_control + min_effect
    z_b = float(norm.ppf(power))

    def enough(n: int) -> bool:
        se = math.sqrt((p_control * (1 - p_control) + p_t * (1 - p_t)) / n)
        return cs_radius(se, 2 * n, alpha, tuning_units) + z_b * se <= abs(min_effect)

    low, high = 1, 2
    while not enough(high):
        low, high = high, high * 2
        if high > limit:
            return limit
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if not enough(middle) else (low, middle)
    return low


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (controls the family-wise error across the metrics looked at)."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    m, running, adjusted = len(ordered), 0.0, {}
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[name] = running
    return adjusted


def _require_units(n_c: int, n_t: int, least: int = 1) -> None:
    from rcatune.errors import DataError

    if n_c < least or n_t < least:
        raise DataError(f"an effect needs at least {least} unit(s) in each arm (control {n_c}, treatment {n_t})")
