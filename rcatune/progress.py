"""Progress bars that suit where they are written: a live bar on a terminal, plain lines in a file or pipe.

tqdm's carriage-return frames fill log files with thousands of redraws. On a terminal this is tqdm;
anywhere else it prints one line per 10% step (and at the end), so a log reads as a log.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional


def interactive(stream: Any = None) -> bool:
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class PlainProgress:
    """tqdm's `update` / `close` / context manager, written as a few plain lines."""

    def __init__(self, total: Optional[int] = None, desc: str = "", unit: str = "it", stream: Any = None,
                 step_percent: int = 10, every_s: float = 30.0) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self.stream = stream or sys.stderr
        self.step, self.every_s = step_percent, every_s
        self._shown = -1
        self._started = self._last = time.perf_counter()
        self._closed = False

    def update(self, count: int = 1) -> None:
        self.n += count
        self.refresh()

    def refresh(self) -> None:
        """A line when the count crosses the next step (or, without a total, every `every_s` seconds)."""
        if self.total:
            percent = int(100 * self.n / self.total) // self.step * self.step
            if self._shown < percent < 100:
                self._shown = percent
                self._write()
        elif time.perf_counter() - self._last >= self.every_s:
            self._write()

    def _write(self) -> None:
        self._last = time.perf_counter()
        elapsed = time.perf_counter() - self._started
        of = f"/{self.total}" if self.total else ""
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}{percent}, {elapsed:.1f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(total: Optional[int] = None, desc: str = "", unit: str = "it", enabled: bool = True):
    """A progress bar: tqdm on a terminal, `PlainProgress` elsewhere, nothing when disabled."""
    if enabled and interactive():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit)
    if enabled:
        return PlainProgress(total, desc, unit)
    return _Silent()


class _Silent:
    n = 0
    total = None

    def update(self, count: int = 1) -> None:
        self.n += count

    def close(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass
