"""Validate raw records into `TrainingExample`s: every record is accepted or quarantined, never lost.

The quarantine is JSONL, one rejection per line: source, location (line/row), field path, reason
category, reason text and the raw input. read = accepted + rejected, always.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from pydantic import BaseModel, Field, ValidationError

from rcatune import atomic
from rcatune.errors import DataError
from rcatune.progress import bar
from rcatune.schema import TrainingExample
from rcatune.scrub import ScrubReport
from rcatune.sources.base import RawRecord, Source

log = logging.getLogger(__name__)

_CATEGORY_BY_ERROR = {
    "missing": "missing_field",
    "string_too_short": "blank_field",
    "too_short": "empty_list",
    "extra_forbidden": "unknown_field",
    "less_than_equal": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "greater_than": "out_of_range",
}


class ValidationReport(BaseModel):
    """Counts of one load: what was read, kept and quarantined, by reason."""

    source: str
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    quarantine_path: str | None = None
    scrub: Optional[ScrubReport] = None  # what scrubbing replaced in the accepted records

    @property
    def rejected_fraction(self) -> float:
        return self.rejected / self.read if self.read else 0.0

    def lines(self) -> list[str]:
        out = [f"{self.source}: read {self.read}, accepted {self.accepted}, rejected {self.rejected}"]
        out += [f"  rejected ({reason}): {count}" for reason, count in sorted(self.by_reason.items())]
        if self.rejected:
            out.append(f"  quarantine: {self.quarantine_path}")
        return out


def _category(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind in _CATEGORY_BY_ERROR:
        return _CATEGORY_BY_ERROR[kind]
    if kind.endswith("_type") or kind in {"model_type", "dict_type", "list_type", "tuple_type"}:
        return "wrong_type"
    message, loc = error.get("msg", ""), error["loc"]
    if "ISO-8601 timestamp" in message:
        return "invalid_timestamp"
    if (loc and loc[0] == "time_range") or "time_range" in message:
        return "invalid_time_range"
    return "invalid_value"


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems(error: ValidationError) -> list[tuple[str, str, str]]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        reason = item["msg"].removeprefix("Value error, ")
        category = _category(item)
        field = _field_path(item["loc"]) or ("time_range" if category == "invalid_time_range" else "")
        problems.append((field, category, reason))
    return problems


class Quarantine:
    """Append-only JSONL file of rejected records, opened on the first rejection. It is written under a
    temporary name and renamed into place when validation ends (a killed run leaves no partial quarantine, and
    a rerun without rejections no stale one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.staged = path.with_name(path.name + atomic.PARTIAL)
        self._handle = None
        path.unlink(missing_ok=True)

    def add(self, record: RawRecord, problems: list[tuple[str, str, str]]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.staged.open("w", encoding="utf-8")
        field, category, reason = problems[0]
        entry = {
            "source": record.source,
            "location": record.location,
            "field": field,
            "category": category,
            "reason": "; ".join(f"{f or '<record>'}: {r}" for f, _, r in problems),
            "errors": [{"field": f, "category": c, "reason": r} for f, c, r in problems],
            "raw": record.raw if record.raw is not None else json.dumps(record.data, default=str),
        }
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self.staged.replace(self.path)


def validate_records(records: Iterable[RawRecord], source: str, quarantine_path: Path, progress: bool = True,
                     transform: Optional[Callable[[TrainingExample], TrainingExample]] = None,
                     ) -> tuple[list[TrainingExample], ValidationReport]:
    """Validate every record; rejected ones go to the quarantine file with where and why. `transform` (the
    scrubber) is applied to each accepted example as it is accepted."""
    report = ValidationReport(source=source, quarantine_path=str(quarantine_path))
    reasons: Counter[str] = Counter()
    accepted: list[TrainingExample] = []
    first_seen: dict[str, str] = {}
    quarantine = Quarantine(quarantine_path)
    shown = bar(None, "validate", "records", progress)
    try:
        for record in records:
            report.read += 1
            shown.update()
            example, problems = _check(record, first_seen)
            if problems:
                reasons[problems[0][1]] += 1
                quarantine.add(record, problems)
                continue
            first_seen[example.id] = record.location
            accepted.append(transform(example) if transform is not None else example)
    finally:
        quarantine.close()
        shown.close()
    report.accepted = len(accepted)
    report.rejected = report.read - report.accepted
    report.by_reason = dict(reasons)
    if not report.rejected:
        report.quarantine_path = None
    assert report.read == report.accepted + report.rejected
    return accepted, report


def _check(record: RawRecord, first_seen: dict[str, str]) -> tuple[TrainingExample | None, list[tuple[str, str, str]]]:
    """The validated example, or the problems that reject the record."""
    if record.problem is not None:
        return None, [record.problem]
    if not isinstance(record.data, dict):
        kind = type(record.data).__name__ if record.data is not None else "null"
        return None, [("", "not_an_object", f"expected a JSON object, got {kind}")]
    try:
        example = TrainingExample.model_validate(record.data)
    except ValidationError as error:
        return None, _problems(error)
    if example.id in first_seen:
        return None, [("id", "duplicate_id", f"duplicate id {example.id!r} (first seen at {first_seen[example.id]})")]
    return example, []


def check_report(report: ValidationReport, max_rejected_fraction: float) -> None:
    """Fail clearly when the source was empty or too much of it was bad."""
    if report.read == 0:
        raise DataError(f"{report.source} holds no records. Point data.path at a file with sessions "
                        "(docs/data.md describes the format).")
    if report.rejected_fraction > max_rejected_fraction:
        raise DataError(
            f"{report.rejected} of {report.read} records ({report.rejected_fraction:.0%}) were rejected, over "
            f"data.max_rejected_fraction={max_rejected_fraction}. Reasons: {report.by_reason}. "
            f"Each rejection's location and reason is in {report.quarantine_path}; fix the data or raise the limit."
        )


def load_examples(source: Source, quarantine_path: Path, max_rejected_fraction: float, progress: bool = True,
                  limit: Optional[int] = None, report_path: Optional[Path] = None,
                  transform: Optional[Callable[[TrainingExample], TrainingExample]] = None,
                  ) -> tuple[list[TrainingExample], ValidationReport]:
    """Read (the first `limit` records of) a source, validate them, print the counts, write the report
    (before refusing, so a failed run still has it), and apply `check_report`."""
    records = source.records() if limit is None else islice(source.records(), limit)
    described = source.describe() + (f", first {limit}" if limit is not None else "")
    examples, report = validate_records(records, described, quarantine_path, progress, transform)
    if report_path is not None:
        atomic.write_text(report_path, report.model_dump_json(indent=2))
    for line in report.lines():
        print(line)
    check_report(report, max_rejected_fraction)
    return examples, report


def load_source(data, out_dir: Path, progress: bool = True, scrub=None):
    """Read the configured source (a `rcatune.config.data.DataConfig`) into a dataset, quarantine and
    report under `out_dir`, scrubbed with `scrub` (a `rcatune.config.scrub.ScrubConfig`; None: not at
    all). The raw records stay in the source and the quarantine. (dataset, report)."""
    from rcatune.config import build
    from rcatune.constants import QUARANTINE_FILE, VALIDATION_REPORT_FILE
    from rcatune.schema import TrainingDataset
    from rcatune.scrub import scrub_stream

    report_path = out_dir / VALIDATION_REPORT_FILE
    # scrubbed as each record is accepted: the unscrubbed sessions are never held together
    with scrub_stream(scrub) if scrub is not None else nullcontext() as scrubbing:
        examples, report = load_examples(build(data.source_spec()), out_dir / QUARANTINE_FILE,
                                         data.max_rejected_fraction, progress, data.limit, report_path, scrubbing)
    if scrubbing is not None:
        scrubbed = scrubbing.report()
        report.scrub = scrubbed
        atomic.write_text(report_path, report.model_dump_json(indent=2))
        for line in scrubbed.lines():
            (log.warning if not scrubbed.enabled else print)(line)
    dataset = TrainingDataset(examples=examples, metadata={"source": report.source})
    dataset.metadata["data_hash"] = dataset.content_hash()
    return dataset, report
