"""What a run records about itself: code version and the machine-readable summary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

RUN_SUMMARY = "run_summary.json"


def git_state(root: Path) -> dict[str, Any]:
    """Commit and dirty flag of the project checkout ('unknown' outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD") or "unknown"
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": False}
    return {"commit": commit, "dirty": dirty}


class RunSummary(BaseModel):
    """run_summary.json: everything needed to find, judge and reproduce a run."""

    status: str = "running"
    error: str | None = None  # one line for expected failures
    traceback: str | None = None  # bugs only
    pipeline: str
    run_dir: str
    choices: dict[str, Any] = Field(default_factory=dict)
    overrides: list[str] = Field(default_factory=list)
    git: dict[str, Any] = Field(default_factory=dict)
    zenml_run: str | None = None
    zenml_server: str | None = None  # the ZenML server the run is on (None: the project's own store)
    mlflow: dict[str, Any] = Field(default_factory=dict)
    data_hash: str | None = None
    counts: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    evaluation: dict[str, Any] = Field(default_factory=dict)
    decisions: dict[str, Any] = Field(default_factory=dict)
    primary_metric: dict[str, Any] | None = None  # {name, value}: what run.py returns to a sweeper
    review: dict[str, Any] = Field(default_factory=dict)  # review projects, merge counts, agreement
    scrub: dict[str, Any] = Field(default_factory=dict)  # what was replaced, by type and field (rcatune/scrub.py)
    deployment: dict[str, Any] = Field(default_factory=dict)  # endpoint, version now serving, previous (deploy/)
    ab_test: dict[str, Any] = Field(default_factory=dict)  # an A/B test's start, analysis and decision
    seconds: float | None = None

    def write(self, run_dir: Path) -> Path:
        from rcatune import atomic

        return atomic.write_text(run_dir / RUN_SUMMARY, json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
