"""Tools that live in virtual environments of their own (Label Studio, LLaMA-Factory): finding them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def find_executable(name: str, env_var: str, venv: Path) -> str | None:
    """`$env_var` if set, else `<venv>/bin/<name>`, else `name` on PATH; None when none is executable."""
    for candidate in (os.environ.get(env_var), str(venv / "bin" / name), shutil.which(name)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None
