"""Which arm a unit sees: a salted hash of the unit id gives each unit one arm for the life of the experiment
(the same incident, session or user never sees both), the split follows the ramp-up schedule, and the kill
switch sends everyone to control. Where the unit id comes from: a header, else the request's fields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

UNIT_HEADER = "x-rcatune-unit"
ARM_HEADER = "x-rcatune-arm"
REQUEST_ID_HEADER = "x-rcatune-request-id"
# where a unit id is looked for in a request body, in order: /v1/diagnose's session id, OpenAI's `user`,
# and `metadata.incident_id` / `metadata.session_id` (OpenAI's metadata field)
DEFAULT_UNIT_FIELDS = ("session.id", "metadata.incident_id", "metadata.session_id", "user")


@dataclass(frozen=True)
class Assignment:
    experiment: str
    salt: str
    treatment_share: float = 0.5  # the share of units on treatment once the ramp is done
    ramp: tuple[tuple[float, float], ...] = ()  # (seconds since start, share) steps, ascending; empty: no ramp
    started_at: float = 0.0
    killed: bool = False  # the kill switch: everyone on control (recorded with its reason elsewhere)
    unit_fields: tuple[str, ...] = field(default=DEFAULT_UNIT_FIELDS)

    def share(self, now: float) -> float:
        """The treatment share at `now`: without a ramp the target; with one, the share of the last step reached
        (none reached yet: 0), never above the target; 0 when the kill switch is on."""
        if self.killed:
            return 0.0
        share = 0.0 if self.ramp else self.treatment_share
        for after, step in self.ramp:
            if now - self.started_at >= after:
                share = step
        return min(share, self.treatment_share)

    def bucket(self, unit: str) -> float:
        """The unit's place in [0, 1): fixed for the experiment (salted), independent across experiments."""
        digest = hashlib.sha256(f"{self.salt}:{self.experiment}:{unit}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    def arm(self, unit: str, now: float) -> str:
        """control or treatment. A unit on treatment stays there as the ramp grows (its bucket is below the
        share); one on control moves only when the share passes its bucket."""
        return "treatment" if self.bucket(unit) < self.share(now) else "control"


def unit_of(headers: dict[str, str], body: Any, fields: Sequence[str] = DEFAULT_UNIT_FIELDS) -> Optional[str]:
    """The unit id of a request: the header, else the first of `fields` present in the JSON body."""
    given = headers.get(UNIT_HEADER)
    if given:
        return given.strip()[:256]
    for path in fields:
        value: Any = body
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip()[:256]
    return None
