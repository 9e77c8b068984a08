"""What each push sent, so a sync merges into exactly that (not into whatever the data settings read today).

Per review project (`annotation.project`), under `<state>/annotation/<project>/`:
- `pushed.jsonl`: every example pushed so far, the latest version of each id (what sync merges into);
- `pushes.jsonl`: one line per push: when, the pushed dataset's hash, its source and its ids.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rcatune.errors import RcatuneError
from rcatune.schema import TrainingExample, hash_examples
from rcatune.state import state_dir


def record_dir(project: str, state: Path | None = None) -> Path:
    slug = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-") or "project"
    return (state or state_dir()) / "annotation" / slug


def record_push(project: str, examples: list[TrainingExample], source: str, state: Path | None = None) -> dict:
    """Add this push to the project's record; returns the push's history entry."""
    folder = record_dir(project, state)
    folder.mkdir(parents=True, exist_ok=True)
    merged = {e.id: e for e in (load_pushed(project, state) if (folder / "pushed.jsonl").exists() else [])}
    merged.update({e.id: e for e in examples})
    staging = folder / "pushed.jsonl.tmp"
    staging.write_text("".join(json.dumps(e.to_json_dict(), ensure_ascii=False) + "\n" for e in merged.values()),
                       encoding="utf-8")
    staging.replace(folder / "pushed.jsonl")
    entry = {"pushed_at": datetime.now(timezone.utc).isoformat(), "data_hash": hash_examples(examples),
             "source": source, "examples": len(examples), "ids": [e.id for e in examples]}
    with open(folder / "pushes.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
    return entry


def load_pushed(project: str, state: Path | None = None) -> list[TrainingExample]:
    """Every example pushed to the project so far, in push order."""
    path = record_dir(project, state) / "pushed.jsonl"
    if not path.exists():
        raise RcatuneError(f"no push recorded for review project {project!r} in {path.parent}: push first "
                           "(python run.py pipeline=annotation), or merge the reviews into the configured data "
                           "with annotation.merge_into=source")
    return [TrainingExample.model_validate(json.loads(line)) for line in
            path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pushes(project: str, state: Path | None = None) -> list[dict[str, Any]]:
    path = record_dir(project, state) / "pushes.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
