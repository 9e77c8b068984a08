"""What every source yields: raw records with where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Protocol

RAW_TEXT_LIMIT = 65_536  # characters of raw input kept in a quarantine entry


@dataclass
class RawRecord:
    """One record as read, before validation.

    `data` is the parsed object when reading succeeded; otherwise `problem` says why it did not
    (`field`, `category`, `reason`). `location` is 'line 12' / 'row 4' / 'record 7'.
    """

    source: str
    location: str
    data: Any = None
    raw: str | None = None
    problem: tuple[str, str, str] | None = None


class Source(Protocol):
    """A place diagnostic sessions come from."""

    def describe(self) -> str:
        """A one-line description for logs and summaries."""

    def records(self) -> Iterator[RawRecord]:
        """Yield every record, good or bad, in order."""


def clip(text: str) -> str:
    if len(text) <= RAW_TEXT_LIMIT:
        return text
    return text[:RAW_TEXT_LIMIT] + f"... [{len(text) - RAW_TEXT_LIMIT} more characters not kept]"
