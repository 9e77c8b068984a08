"""Flat (one column per field) records -> the JSON form: the mapping CSV and ClickHouse share.

Nested fields are JSON text in their column; `human_validated` is true/false (or 1/0); numbers are
plain numbers; an empty cell in an optional column means null / default. See docs/data.md.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rcatune.schema import TrainingExample

JSON_FIELDS = frozenset({
    "telemetry_context", "service_topology", "time_range", "symptoms", "affected_services",
    "error_signatures", "critical_paths", "remediation_steps", "corrections", "false_hypotheses",
    "quality_ratings", "query_issues",
})
FLOAT_FIELDS = frozenset({"confidence_score", "time_to_identification"})
INT_FIELDS = frozenset({"human_prompts_required"})
BOOL_FIELDS = frozenset({"human_validated"})
ALL_FIELDS = tuple(TrainingExample.model_fields)
REQUIRED_FIELDS = tuple(name for name, info in TrainingExample.model_fields.items() if info.is_required())
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class CellError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def _decode_text(name: str, text: str) -> Any:
    if name in JSON_FIELDS:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise CellError(name, f"column holds malformed JSON: {error.msg} at column {error.colno}") from None
    if name in FLOAT_FIELDS or name in INT_FIELDS:
        try:
            number = float(text)
        except ValueError:
            raise CellError(name, f"not a number: {text!r}") from None
        if name in INT_FIELDS:
            if not number.is_integer():
                raise CellError(name, f"not a whole number: {text!r}")
            return int(number)
        return number
    if name in BOOL_FIELDS:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise CellError(name, f"not a boolean (true/false): {text!r}")
    return text


def decode_flat(values: dict[str, Any]) -> dict[str, Any]:
    """Decode one flat record; raise `CellError` naming the column that cannot be read."""
    record: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, str) and value == "" and name not in REQUIRED_FIELDS:
            continue  # empty optional cell: default / null
        if isinstance(value, str):
            value = _decode_text(name, value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        record[name] = value
    return record


def check_columns(columns: list[str], where: str) -> None:
    """Raise a clear error when a header lacks required columns or has unknown ones."""
    from rcatune.errors import DataError

    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    unknown = [c for c in columns if c not in ALL_FIELDS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append(f"missing required columns {missing}")
        if unknown:
            parts.append(f"unknown columns {unknown}")
        if duplicated:
            parts.append(f"duplicated columns {duplicated}")
        raise DataError(
            f"{where}: wrong header: {'; '.join(parts)}. Expected columns: {', '.join(ALL_FIELDS)} "
            "(required: " + ", ".join(REQUIRED_FIELDS) + "). See docs/data.md for the column mapping."
        )


def encode_flat(record: dict[str, Any]) -> dict[str, str]:
    """The JSON form -> one text cell per field (the CSV mapping); inverse of `decode_flat`."""
    cells: dict[str, str] = {}
    for name in ALL_FIELDS:
        value = record.get(name)
        if value is None:
            cells[name] = ""
        elif name in JSON_FIELDS:
            cells[name] = json.dumps(value, ensure_ascii=False)
        elif name in BOOL_FIELDS:
            cells[name] = "true" if value else "false"
        else:
            cells[name] = str(value)
    return cells
