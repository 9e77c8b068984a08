"""The A/B statistics, proven by seeded simulation: A/A false positives within alpha under 20 looks with the
confidence sequence (the naive repeated test exceeding it in the same run), measured power against the power
analysis, reference computations from scipy, and the sample-ratio alarm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rcatune.abtest.stats import (
    cs_radius,
    holm,
    mean_effect,
    median_effect,
    proportion_effect,
    sequential,
    sequential_units_per_arm,
    srm_check,
    units_per_arm,
)

ALPHA = 0.05
EXPERIMENTS = 2000


def _bound(rate: float, n: int = EXPERIMENTS) -> float:
    """The rate plus three binomial standard errors over `n` simulated experiments."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / n)


def _looks(p_control: float, p_treatment: float, per_look: int, looks: int, seed: int):
    """Cumulative successes and units per arm at each look: arrays of shape (experiments, looks)."""
    rng = np.random.default_rng(seed)
    control = rng.binomial(per_look, p_control, size=(EXPERIMENTS, looks)).cumsum(axis=1)
    treatment = rng.binomial(per_look, p_treatment, size=(EXPERIMENTS, looks)).cumsum(axis=1)
    units = per_look * np.arange(1, looks + 1)
    return control, treatment, units


def _rejections(control, treatment, units, sequential_test: bool) -> np.ndarray:
    """Per experiment: did any look reject 'no difference'?"""
    from scipy.stats import norm

    p_c, p_t = control / units, treatment / units
    diff = p_t - p_c
    se = np.sqrt(p_c * (1 - p_c) / units + p_t * (1 - p_t) / units)
    if sequential_test:
        radius = np.vectorize(lambda s, n: cs_radius(s, n, ALPHA))(se, 2 * units)
        reject = np.abs(diff) > radius
    else:  # the naive repeated test: a fixed-horizon z-test at every look
        pooled = (control + treatment) / (2 * units)
        z = np.abs(diff) / np.sqrt(pooled * (1 - pooled) * 2 / units)
        reject = z > norm.ppf(1 - ALPHA / 2)
    return reject.any(axis=1)


def test_a_a_false_positives_stay_within_alpha_under_twenty_looks_and_the_naive_test_exceeds_it():
    control, treatment, units = _looks(0.3, 0.3, per_look=50, looks=20, seed=7)
    sequential_rate = _rejections(control, treatment, units, sequential_test=True).mean()
    naive_rate = _rejections(control, treatment, units, sequential_test=False).mean()
    single_look = _rejections(control[:, -1:], treatment[:, -1:], units[-1:], sequential_test=False).mean()
    print(f"A/A over {EXPERIMENTS} experiments, 20 looks: confidence sequence {sequential_rate:.4f}, "
          f"naive repeated z-test {naive_rate:.4f}, one fixed-horizon look {single_look:.4f}; "
          f"bound {_bound(ALPHA):.4f}")
    assert sequential_rate <= _bound(ALPHA)
    assert naive_rate > _bound(ALPHA)  # what peeking does to the fixed-horizon test
    assert single_look <= _bound(ALPHA)  # one look at the planned end is fine


def test_measured_power_matches_the_power_analysis():
    from scipy.stats import norm

    p_c, effect, power = 0.30, 0.08, 0.8
    n = units_per_arm(p_c, effect, ALPHA, power)
    control, treatment, units = _looks(p_c, p_c + effect, per_look=n, looks=1, seed=11)
    fixed = _rejections(control, treatment, units, sequential_test=False).mean()
    n_seq = sequential_units_per_arm(p_c, effect, ALPHA, power)
    control, treatment, units = _looks(p_c, p_c + effect, per_look=n_seq, looks=1, seed=12)
    seq = _rejections(control, treatment, units, sequential_test=True).mean()
    print(f"power: fixed horizon {fixed:.3f} at {n} units per arm, confidence sequence {seq:.3f} at {n_seq} "
          f"(target {power})")
    band = 3 * math.sqrt(power * (1 - power) / EXPERIMENTS)
    assert abs(fixed - power) <= band and abs(seq - power) <= band
    assert n_seq > n  # always-valid costs units when read once, and pays when looked at often
    assert n == pytest.approx(2 * ((norm.ppf(0.975) + norm.ppf(0.8)) ** 2) * 0.25 / effect ** 2, rel=0.15)


def test_proportions_agree_with_scipy():
    from scipy.stats import chi2_contingency

    effect = proportion_effect("root_cause_correct", 130, 400, 162, 410)
    table = [[130, 270], [162, 248]]
    chi2, p, _, _ = chi2_contingency(table, correction=False)
    assert effect.p_value == pytest.approx(p, rel=1e-9)  # the pooled z-test is the 2x2 chi-square
    p_c, p_t = 130 / 400, 162 / 410
    se = math.sqrt(p_c * (1 - p_c) / 400 + p_t * (1 - p_t) / 410)
    assert (effect.low, effect.high) == pytest.approx((p_t - p_c - 1.959964 * se, p_t - p_c + 1.959964 * se))
    assert effect.difference == pytest.approx(p_t - p_c) and effect.significant == (effect.low > 0)


def test_means_agree_with_scipy_and_the_robust_alternative_resists_skew():
    from scipy.stats import t as student

    rng = np.random.default_rng(3)
    control, treatment = rng.normal(10, 2, 300), rng.normal(10.6, 3, 280)
    effect = mean_effect("human_prompts", control, treatment)
    v_c, v_t = control.var(ddof=1) / 300, treatment.var(ddof=1) / 280
    dof = (v_c + v_t) ** 2 / (v_c ** 2 / 299 + v_t ** 2 / 279)
    half = student.ppf(0.975, dof) * math.sqrt(v_c + v_t)
    diff = treatment.mean() - control.mean()
    assert (effect.low, effect.high) == pytest.approx((diff - half, diff + half))
    assert effect.p_value == pytest.approx(2 * student.sf(abs(diff) / math.sqrt(v_c + v_t), dof))

    latency_c = rng.lognormal(5.0, 0.4, 400)
    latency_t = np.concatenate([rng.lognormal(5.0, 0.4, 396), [1e6] * 4])  # four hung requests
    robust = median_effect("latency_ms", latency_c, latency_t)
    plain = mean_effect("latency_ms", latency_c, latency_t)
    assert robust.low < 0 < robust.high  # the typical request is not slower
    assert plain.difference > 5000  # the mean is carried by four outliers


def test_sample_ratio_mismatch_alarms_on_55_45_under_50_50_and_not_on_chance():
    alarm = srm_check({"control": 1100, "treatment": 900}, {"control": 0.5, "treatment": 0.5})
    assert alarm.alarm and alarm.p_value < 0.001 and "SAMPLE-RATIO MISMATCH" in alarm.line()
    fine = srm_check({"control": 1012, "treatment": 988}, {"control": 0.5, "treatment": 0.5})
    assert not fine.alarm
    rng = np.random.default_rng(5)
    false_alarms = np.mean([srm_check(dict(zip(("c", "t"), rng.multinomial(2000, [0.5, 0.5]), strict=True)),
                                      {"c": 1, "t": 1}).alarm for _ in range(EXPERIMENTS)])
    assert false_alarms <= _bound(0.001)


def test_holm_and_the_sequential_interval():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
    effect = proportion_effect("root_cause_correct", 300, 1000, 360, 1000)
    always = sequential(effect)
    assert always.low < effect.low and always.high > effect.high and always.p_value is None
    assert always.difference == effect.difference
    assert cs_radius(0.01, 10) > cs_radius(0.01 * math.sqrt(10 / 1000), 1000)  # narrows as units come in
