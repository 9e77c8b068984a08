"""An A/B test's analysis from its stored outcomes, and the decision it supports.

Units are what was randomised (an incident, a session, a user): every metric is first averaged per unit, so a
unit that asked ten times does not count ten times. The primary metric is read through the confidence sequence
by default (a look every hour does not inflate false positives); guardrails (p95 latency, error rate) must not
regress beyond their non-inferiority margins; a sample-ratio mismatch stops everything.

Decision: `deploy_treatment` (the primary improves and every guardrail is shown non-inferior),
`keep_control` (the primary is worse, a guardrail is breached, the split is broken, or the horizon passed
without an effect), else `continue`; `switch_off` says the treatment must get no more traffic now.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from rcatune.abtest.stats import (
    Effect,
    holm,
    mean_effect,
    proportion_effect,
    sequential,
    sequential_units_per_arm,
    srm_check,
    units_per_arm,
)

ARMS = ("control", "treatment")


@dataclass
class Guardrail:
    metric: str
    control: float
    treatment: float
    difference: float
    low: float
    high: float
    margin: float  # the most the treatment may be worse by (same unit as the difference)
    breached: bool  # shown worse than the margin
    non_inferior: bool  # shown no worse than the margin


@dataclass
class Analysis:
    experiment: str
    units: dict[str, int]
    requests: dict[str, int]
    with_feedback: dict[str, int]
    srm: dict
    primary: Optional[dict]
    effects: dict[str, dict]
    adjusted_p: dict[str, float]
    guardrails: list[dict]
    units_needed_per_arm: Optional[int]
    units_still_needed: Optional[int]
    decision: str
    switch_off: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_unit(rows: list[dict], value) -> dict[str, dict[str, float]]:
    """{arm: {unit: mean of `value(row)` over the unit's rows where it is not None}}."""
    sums: dict[str, dict[str, list[float]]] = {arm: defaultdict(list) for arm in ARMS}
    for row in rows:
        v = value(row)
        if v is not None and row["arm"] in sums:
            sums[row["arm"]][row["unit"]].append(float(v))
    return {arm: {u: sum(vs) / len(vs) for u, vs in units.items()} for arm, units in sums.items()}


def unit_effect(metric: str, rows: list[dict], value, alpha: float, binary: bool) -> Optional[Effect]:
    """Treatment minus control of a per-unit metric: a test of proportions when each unit gave one 0/1 value,
    else Welch on the unit means."""
    per = _per_unit(rows, value)
    control, treatment = list(per["control"].values()), list(per["treatment"].values())
    if len(control) < 2 or len(treatment) < 2:
        return None
    if binary and all(v in (0.0, 1.0) for v in control + treatment):
        return proportion_effect(metric, int(sum(control)), len(control), int(sum(treatment)), len(treatment), alpha)
    return mean_effect(metric, control, treatment, alpha)


def _p95(values: list[float]) -> float:
    import numpy as np

    return float(np.percentile(values, 95))


def latency_guardrail(rows: list[dict], margin: float, alpha: float, resamples: int = 1000) -> Optional[Guardrail]:
    """p95 latency, treatment minus control, with a percentile bootstrap interval; the margin is relative to
    control's p95."""
    import numpy as np
    from scipy.stats import bootstrap

    lat = {arm: [r["latency_ms"] for r in rows if r["arm"] == arm and r["latency_ms"] is not None] for arm in ARMS}
    if min(len(v) for v in lat.values()) < 20:
        return None
    c, t = np.asarray(lat["control"]), np.asarray(lat["treatment"])
    result = bootstrap((t, c), lambda x, y, axis=-1: np.percentile(x, 95, axis=axis) - np.percentile(y, 95, axis=axis),
                       confidence_level=1 - alpha, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(0), vectorized=True)
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    allowed = margin * _p95(lat["control"])
    return Guardrail("latency_p95_ms", _p95(lat["control"]), _p95(lat["treatment"]),
                     _p95(lat["treatment"]) - _p95(lat["control"]), low, high, allowed, low > allowed, high < allowed)


def error_guardrail(rows: list[dict], margin: float, alpha: float) -> Optional[Guardrail]:
    """The share of requests that failed (no answer, or 5xx), treatment minus control."""
    failed = {arm: [1 if (r["status"] is None or r["status"] >= 500) else 0 for r in rows if r["arm"] == arm]
              for arm in ARMS}
    if min(len(v) for v in failed.values()) < 2:
        return None
    effect = proportion_effect("error_rate", sum(failed["control"]), len(failed["control"]), sum(failed["treatment"]),
                               len(failed["treatment"]), alpha)
    return Guardrail("error_rate", effect.control, effect.treatment, effect.difference, effect.low, effect.high,
                     margin, effect.low > margin, effect.high < margin)


METRICS = {  # name: (value of a row, binary, higher is better)
    "root_cause_correct": (lambda r: r["root_cause_correct"], True),
    "query_valid": (lambda r: r["query_parses"], True),
    "human_prompts": (lambda r: r["human_prompts"], False),
    "time_to_identification": (lambda r: r["time_to_identification"], False),
}


def analyse(experiment: str, rows: list[dict], cfg, weights: Optional[dict[str, float]] = None) -> Analysis:
    """Everything a look at the experiment shows, and what to do now. `cfg`: an ABTestConfig."""
    weights = weights or {"control": 1 - cfg.treatment_share, "treatment": cfg.treatment_share}
    units = {arm: len({r["unit"] for r in rows if r["arm"] == arm}) for arm in ARMS}
    requests = {arm: sum(1 for r in rows if r["arm"] == arm) for arm in ARMS}
    with_feedback = {arm: sum(1 for r in rows if r["arm"] == arm and r["root_cause_correct"] is not None)
                     for arm in ARMS}
    srm = srm_check(units, weights, cfg.srm_threshold)
    effects: dict[str, Effect] = {}
    for name, (value, binary) in METRICS.items():
        effect = unit_effect(name, rows, value, cfg.alpha, binary)
        if effect is not None:
            effects[name] = effect
    fixed = effects.get(cfg.primary)
    primary = sequential(fixed, cfg.alpha, cfg.tuning_units) if fixed and cfg.sequential else fixed
    guardrails = [g for g in (latency_guardrail(rows, cfg.latency_margin, cfg.alpha),
                              error_guardrail(rows, cfg.error_rate_margin, cfg.alpha)) if g is not None]
    needed = still = None
    if fixed is not None and 0 < fixed.control < 1:
        plan = sequential_units_per_arm if cfg.sequential else units_per_arm
        needed = plan(fixed.control, cfg.min_effect, cfg.alpha, cfg.power)
        still = max(0, needed - min(fixed.n_control, fixed.n_treatment))
    decision, switch_off, reasons = decide(cfg, srm, primary, guardrails, units, still)
    return Analysis(experiment, units, requests, with_feedback, asdict(srm) | {"line": srm.line()},
                    primary.as_dict() if primary else None, {k: e.as_dict() for k, e in effects.items()},
                    holm({k: e.p_value for k, e in effects.items() if e.p_value is not None}),
                    [asdict(g) for g in guardrails], needed, still, decision, switch_off, reasons)


def decide(cfg, srm, primary: Optional[Effect], guardrails: list[Guardrail], units: dict[str, int],
           still_needed: Optional[int]) -> tuple[str, bool, list[str]]:
    """(decision, switch the treatment off now, reasons with their numbers)."""
    if srm.alarm:
        return "keep_control", True, [srm.line() + ": the assignment is broken, so no effect can be trusted"]
    breached = [g for g in guardrails if g.breached]
    if breached:
        return "keep_control", True, [f"guardrail {g.metric} breached: treatment {g.treatment:.4g} vs control "
                                      f"{g.control:.4g}, difference interval [{g.low:.4g}, {g.high:.4g}] lies above "
                                      f"the margin {g.margin:.4g}" for g in breached]
    if primary is None:
        return "continue", False, [f"not enough units with feedback on {cfg.primary} yet"]
    shown = (f"{primary.metric} treatment {primary.treatment:.3f} vs control {primary.control:.3f}, difference "
             f"{primary.difference:+.3f}, {'always-valid ' if primary.p_value is None else ''}interval "
             f"[{primary.low:+.3f}, {primary.high:+.3f}] on {primary.n_control}+{primary.n_treatment} units")
    if primary.high < 0:
        return "keep_control", True, [f"treatment is worse: {shown}"]
    total = units["control"] + units["treatment"]
    if not cfg.sequential and still_needed:
        return "continue", False, [f"fixed horizon: {still_needed} more units per arm before the one look ({shown})"]
    if primary.low > 0:
        pending = [g.metric for g in guardrails if not g.non_inferior]
        if len(guardrails) < 2 or pending:
            return "continue", False, [f"treatment is better ({shown}) but guardrails not yet shown non-inferior: "
                                       f"{', '.join(pending) or 'not enough requests'}"]
        return "deploy_treatment", False, [f"treatment is better: {shown}; guardrails non-inferior: " + "; ".join(
            f"{g.metric} difference [{g.low:.4g}, {g.high:.4g}] below margin {g.margin:.4g}" for g in guardrails)]
    if total >= cfg.max_units:
        return "keep_control", False, [f"no effect by the horizon of {cfg.max_units} units: {shown}"]
    more = f"; about {still_needed} more units per arm for a {cfg.min_effect:g} effect" if still_needed else ""
    return "continue", False, [f"inconclusive: {shown}{more}"]
