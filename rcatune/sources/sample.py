"""`data=sample`: generated OpenTelemetry Demo sessions."""

from __future__ import annotations

from typing import Iterator

from rcatune.demo.generator import generate_sessions
from rcatune.sources.base import RawRecord


class SampleSource:
    """`size` realistic sessions grounded in the OpenTelemetry Demo, deterministic by `seed`."""

    def __init__(self, size: int = 300, seed: int = 7) -> None:
        self.size = size
        self.seed = seed

    def describe(self) -> str:
        return f"sample generator (size={self.size}, seed={self.seed})"

    def records(self) -> Iterator[RawRecord]:
        for index, session in enumerate(generate_sessions(self.size, self.seed), start=1):
            yield RawRecord(source="sample", location=f"record {index}", data=session)
