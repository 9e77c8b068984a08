"""`data=csv`: one session per row; nested fields as JSON text in their columns (docs/data.md)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Iterator

from rcatune.errors import DataError
from rcatune.sources.base import RawRecord, clip
from rcatune.sources.flat import CellError, check_columns, decode_flat


def _has_bad_bytes(text: str) -> int:
    """Index of the first undecodable byte (kept as a surrogate), or -1."""
    for index, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return index
    return -1


class CsvSource:
    """Read a CSV export with a header row naming `TrainingExample` fields."""

    def __init__(self, path: str, max_record_bytes: int = 1_000_000) -> None:
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes

    def describe(self) -> str:
        return f"CSV file {self.path}"

    def records(self) -> Iterator[RawRecord]:
        if not self.path.is_file():
            raise DataError(f"data.path: no such file: {self.path}. Pass an existing CSV file.")
        csv.field_size_limit(min(self.max_record_bytes, sys.maxsize))
        with self.path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                return
            header = [h.strip().lstrip("\ufeff") for h in header]
            check_columns(header, f"CSV file {self.path}")
            row_number = 0
            while True:
                line = reader.line_num + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    row_number += 1
                    category = "record_too_large" if "field larger" in str(error) else "malformed_csv"
                    reason = f"CSV error: {error} (data.max_record_bytes={self.max_record_bytes})"
                    yield RawRecord(str(self.path), f"row {row_number} (line {line})", raw="[not kept]",
                                    problem=("", category, reason))
                    continue
                if not any(cell.strip() for cell in row):
                    continue
                row_number += 1
                yield self._record(header, row, f"row {row_number} (line {line})")

    def _record(self, header: list[str], row: list[str], location: str) -> RawRecord:
        raw = clip(",".join(row).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace"))
        record = RawRecord(str(self.path), location, raw=raw)
        if len(row) != len(header):
            record.problem = ("", "malformed_csv", f"row has {len(row)} cells, header has {len(header)}")
            return record
        for column, cell in zip(header, row, strict=True):
            bad = _has_bad_bytes(cell)
            if bad >= 0:
                record.problem = (column, "invalid_utf8", f"column {column!r} is not valid UTF-8 at character {bad}")
                return record
        try:
            record.data = decode_flat(dict(zip(header, row, strict=True)))
        except CellError as error:
            record.problem = (error.field, "bad_cell", str(error))
        return record
