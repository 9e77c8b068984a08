"""The one record every source is validated into: `TrainingExample`.

JSON form: the field names below; datetimes as ISO-8601 strings (a naive time is
read as UTC); `time_range` a two-element array; `critical_paths` a list of lists
of service names; `corrections` an object of strings or null. Validation is
strict (no silent "5" -> 5 coercion) so a wrong type is reported, not guessed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import datetime, timezone
from typing import Annotated, Any, Iterable, Optional

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)


def _parse_timestamp(value: Any) -> Any:
    """ISO-8601 text -> aware datetime; other types pass through to fail strictly."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
        value = parsed
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
ServiceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


# one set of field names per combination seen (TrainingExample._time_range_ordered)
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
# Sessions of one system repeat the same topologies and critical paths (18 distinct path lists and 5,000
# topologies in 30,000 generated sessions): examples with equal ones share one object, as they share their field
# names. A frozen example's containers are read-only (change one with `model_copy(update=...)`). At most
# SHARED_LIMIT values are remembered, so data where each is new costs a few MB at most.
_SHARED_VALUES: dict[tuple, Any] = {}
SHARED_LIMIT = 4096


def _shared(key: tuple, value: Any) -> Any:
    """The object already kept for `key`, else `value` (kept while there is room)."""
    kept = _SHARED_VALUES.get(key)
    if kept is not None:
        return kept
    if len(_SHARED_VALUES) < SHARED_LIMIT:
        _SHARED_VALUES[key] = value
    return value

# left out of the JSON when unset
OPTIONAL_LABELS = ("scenario", "incident_id", "phrasing", "quality_ratings", "query_issues")


class TrainingExample(BaseModel):
    """One diagnostic session: the context a model sees and the answer it should give."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: Text
    timestamp: Timestamp

    # Input context
    telemetry_context: dict[str, Any]
    service_topology: dict[ServiceName, list[ServiceName]]
    time_range: tuple[Timestamp, Timestamp]

    # Problem description
    symptoms: list[Text] = Field(min_length=1)
    affected_services: list[ServiceName] = Field(min_length=1)
    error_signatures: list[Text] = Field(default_factory=list)

    # Expected outputs
    root_cause: Text
    diagnostic_query: Text
    critical_paths: list[list[ServiceName]] = Field(default_factory=list)
    remediation_steps: list[Text] = Field(default_factory=list)

    # Validation data
    human_validated: bool = False
    confidence_score: float = Field(ge=0.0, le=1.0)
    corrections: Optional[dict[str, str]] = None
    expert_notes: Optional[str] = None

    # Performance metrics
    time_to_identification: float = Field(ge=0.0)
    human_prompts_required: int = Field(ge=0)
    false_hypotheses: list[Text] = Field(default_factory=list)

    # Labels beyond the original design: optional, never shown to the model. `scenario`: the fault (a
    # catalog id, or "none" for an incident outside the catalog); `phrasing`: the generator's phrasing
    # bank (the phrasing-shift split holds one bank out of training).
    scenario: Optional[Text] = None
    incident_id: Optional[Text] = None
    phrasing: Optional[Text] = None
    # Expert review (annotation sync): mean ratings (1-5) per question, and query issues flagged by
    # at least half of the reviewers.
    quality_ratings: Optional[dict[Text, float]] = None
    query_issues: list[Text] = Field(default_factory=list)

    @field_validator("time_range", mode="before")
    @classmethod
    def _time_range_is_pair(cls, value: Any) -> Any:
        # JSON arrays arrive as lists; strict tuples would reject them.
        if isinstance(value, list):
            if len(value) != 2:
                raise ValueError(f"must hold exactly 2 timestamps [start, end], got {len(value)}")
            return tuple(value)
        return value

    @field_validator("telemetry_context", "corrections")
    @classmethod
    def _shared_keys(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        # the same few keys in every session ("summary", "logs", ...): one string each, not one per session
        # (pydantic already shares the service names; 20 MB at 100k sessions)
        return {sys.intern(key): item for key, item in value.items()} if value else value

    @field_validator("critical_paths")
    @classmethod
    def _paths_not_empty(cls, value: list[list[str]]) -> list[list[str]]:
        for index, path in enumerate(value):
            if not path:
                raise ValueError(f"path {index} is empty")
        return _shared(("paths", tuple(map(tuple, value))), value)

    @field_validator("service_topology")
    @classmethod
    def _shared_topology(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return _shared(("topology", tuple((name, tuple(calls)) for name, calls in value.items())), value)

    @model_validator(mode="after")
    def _time_range_ordered(self) -> "TrainingExample":
        start, end = self.time_range
        if end <= start:
            raise ValueError(f"time_range end ({end.isoformat()}) is not after its start ({start.isoformat()})")
        # Every example of a source sets the same fields, and pydantic gives each instance a set of their names
        # (2.2 kB, more than a quarter of an example's memory). The model is frozen, so nothing adds to that set
        # in place (a `model_copy(update=...)` updates its own copy): examples with the same fields share one.
        fields_set = self.__pydantic_fields_set__
        object.__setattr__(self, "__pydantic_fields_set__", _FIELDS_SETS.setdefault(frozenset(fields_set), fields_set))
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form (ISO timestamps, lists), omitting unset optional labels."""
        data = self.model_dump(mode="json")
        for key in OPTIONAL_LABELS:
            if not data[key]:
                del data[key]
        return data


class TrainingDataset(BaseModel):
    """A versioned collection of examples with the metadata that produced it."""

    model_config = ConfigDict(strict=True, extra="forbid")

    examples: list[TrainingExample]
    metadata: dict[str, Any] = Field(default_factory=dict)
    version: str = "1"
    created_at: Timestamp = Field(default_factory=lambda: datetime.now(timezone.utc))

    def __len__(self) -> int:
        return len(self.examples)

    def content_hash(self) -> str:
        """SHA-256 over the canonical JSON of the examples, in order."""
        return hash_examples(self.examples)

    def to_jsonl(self) -> str:
        """One example per line, in the JSON form the loaders read back."""
        return "".join(json.dumps(e.to_json_dict(), ensure_ascii=False) + "\n" for e in self.examples)


def hash_examples(examples: Iterable[TrainingExample]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example.to_json_dict(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of one record (docs/training_example.schema.json)."""
    return TrainingExample.model_json_schema(mode="validation")


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
