"""Named points where a process can be made to wait, so a crash can be caused exactly there (crash drills and
the kill -9 tests): `RCATUNE_PAUSE_AT=training.checkpoint:10,register.between` makes the process that reaches
one of them write `<name>.paused` (its pid) into `$RCATUNE_PAUSE_DIR` (default: the state folder's `pauses/`)
and wait there until it is killed. Without the variable a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

PAUSE_ENV, PAUSE_DIR_ENV = "RCATUNE_PAUSE_AT", "RCATUNE_PAUSE_DIR"


def pause_point(name: str, detail: Optional[object] = None) -> None:
    """Wait here for good when `name` (or `name:detail`) is listed in $RCATUNE_PAUSE_AT."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted:
        return
    points = {p.strip() for p in wanted.split(",")}
    label = name if detail is None else f"{name}:{detail}"
    if name not in points and label not in points:
        return
    marker = pause_dir() / f"{label}.paused"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()), encoding="utf-8")
    while True:  # until the drill kills this process
        time.sleep(3600)


def pause_dir() -> Path:
    from rcatune.state import state_dir

    return Path(os.environ.get(PAUSE_DIR_ENV) or state_dir() / "pauses")
