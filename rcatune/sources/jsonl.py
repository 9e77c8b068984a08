"""`data=jsonl`: one session per line, as JSON objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO, Iterator

from rcatune.errors import DataError
from rcatune.sources.base import RawRecord, clip

CHUNK = 1 << 20


def _read_line(handle: BinaryIO, limit: int) -> tuple[bytes | None, int]:
    """Read one line holding at most `limit` bytes of it in memory.

    Returns (line, length); line is None when the line (without its newline) is longer than `limit`,
    in which case the rest of it has been skipped.
    """
    line = handle.readline(limit + 2)
    body = len(line.rstrip(b"\r\n"))
    if body <= limit:
        return line, body
    total = body
    while not line.endswith(b"\n"):
        line = handle.readline(CHUNK)
        if not line:
            break
        total += len(line.rstrip(b"\r\n"))
    return None, total


class JsonlSource:
    """Read a JSON Lines export; blank lines are skipped, every other line is a record."""

    def __init__(self, path: str, max_record_bytes: int = 1_000_000) -> None:
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes

    def describe(self) -> str:
        return f"JSONL file {self.path}"

    def records(self) -> Iterator[RawRecord]:
        if not self.path.is_file():
            raise DataError(f"data.path: no such file: {self.path}. Pass an existing JSONL file.")
        with self.path.open("rb") as handle:
            number = 0
            while True:
                kept, length = _read_line(handle, self.max_record_bytes)
                if kept == b"":
                    return
                number += 1
                record = RawRecord(source=str(self.path), location=f"line {number}")
                if kept is None:
                    record.problem = ("", "record_too_large",
                                      f"line is {length} bytes, over data.max_record_bytes={self.max_record_bytes}")
                    record.raw = f"[{length} bytes not kept]"
                    yield record
                    continue
                try:
                    text = kept.decode("utf-8")
                except UnicodeDecodeError as error:
                    record.raw = clip(kept.decode("utf-8", errors="backslashreplace"))
                    record.problem = ("", "invalid_utf8", f"not valid UTF-8 at byte {error.start}")
                    yield record
                    continue
                if not text.strip():
                    continue
                record.raw = clip(text.rstrip("\r\n"))
                try:
                    record.data = json.loads(text.rstrip("\r\n"))  # an error at its end is on this line
                except json.JSONDecodeError as error:
                    record.problem = ("", "malformed_json", f"malformed JSON: {error.msg} at column {error.colno}")
                yield record
