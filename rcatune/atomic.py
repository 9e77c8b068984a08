"""Writes that a crash cannot leave half done: a file or a folder is written under a temporary name beside its
place and renamed into it, so a reader (or a rerun) finds the whole previous version, the whole new one, or
nothing; never a part."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL = ".partial"  # the suffix of what is being written; a rerun removes any left by a killed run


def write_text(path: Path, text: str) -> Path:
    """`path.write_text(text)` that is never seen half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staged, path)
    except BaseException:
        Path(staged).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def folder(path: Path) -> Iterator[Path]:
    """Write a folder's content into the yielded staging folder; on success it replaces `path` whole.
    A staging folder left by a killed writer is removed first."""
    path = Path(path)
    staged = path.with_name(path.name + PARTIAL)
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(staged, path)
    shutil.rmtree(old, ignore_errors=True)
