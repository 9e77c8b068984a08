"""`ab_test.*`: an A/B test between two registered versions served side by side (`deployment.action=ab_start`
... `ab_stop`): who is assigned where, what decides, and where outcomes are stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from rcatune.config._require import require


@dataclass
class ABTestConfig:
    name: Optional[str] = None  # the experiment's id (default: <registry name>-v<control>-vs-v<treatment>)
    control: str = "production"  # a version number or a stage
    treatment: Optional[str] = None  # a version number or a stage (staging)
    treatment_share: float = 0.5  # the share of units on treatment once any ramp is done
    ramp: List[List[float]] = field(default_factory=list)  # [[seconds after start, share], ...], ascending
    salt: Optional[str] = None  # default: the experiment's name (a new salt re-draws every unit)
    unit_fields: List[str] = field(default_factory=lambda: ["session.id", "metadata.incident_id",
                                                           "metadata.session_id", "user"])
    primary: str = "root_cause_correct"  # root_cause_correct | query_valid (higher is better)
    min_effect: float = 0.05  # the smallest gain of the primary metric worth detecting (absolute)
    alpha: float = 0.05
    power: float = 0.8
    sequential: bool = True  # peeking-safe (confidence sequence); false: fixed horizon at the planned units
    tuning_units: int = 1000  # where the confidence sequence is tightest
    max_units: int = 20_000  # the horizon: inconclusive by then keeps control
    latency_margin: float = 0.2  # guardrail: treatment's p95 latency may be at most 20% above control's
    error_rate_margin: float = 0.02  # guardrail: treatment's error rate at most 2 points above control's
    srm_threshold: float = 0.001
    store_url_env: str = "RCATUNE_AB_STORE_URL"  # a SQLAlchemy URL (PostgreSQL) from the environment; unset: SQLite

    def __post_init__(self) -> None:
        require(0.0 < self.treatment_share < 1.0, "ab_test.treatment_share", "must be within (0, 1)")
        require(self.primary in ("root_cause_correct", "query_valid"), "ab_test.primary",
                "root_cause_correct or query_valid")
        require(0 < self.alpha < 0.5, "ab_test.alpha", "must be within (0, 0.5)")
        require(0.5 <= self.power < 1, "ab_test.power", "must be within [0.5, 1)")
        require(self.min_effect > 0, "ab_test.min_effect", "must be positive")
        require(self.latency_margin >= 0 and self.error_rate_margin >= 0, "ab_test.latency_margin",
                "margins must be >= 0")
        steps = [tuple(s) for s in self.ramp]
        require(all(len(s) == 2 and 0 <= s[1] <= 1 for s in steps), "ab_test.ramp",
                "each step is [seconds after start, share in 0..1]")
        require([s[0] for s in steps] == sorted(s[0] for s in steps), "ab_test.ramp", "steps must be ascending")
