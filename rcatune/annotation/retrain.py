"""Retraining once the experts have reviewed what drifted (issue 30, section 2).

`pipeline=drift pipeline.push_for_review=true pipeline.retrain_with=[...]` pushes the drifted sessions and leaves a
request beside the review project's push record (`<state>/annotation/<project>/retrain.json`): the sessions to wait
for and the overrides of the job to run. Each `annotation.action=sync` of that project then checks the request:
while some of those sessions have no verdict it says how many; once every one has (validated, corrected or
rejected), it starts the job through the job seam (`python -m rcatune.jobs compose`, then `... run` in its own
process group, which outlives the sync) on exactly the reviewed dataset this sync saved
(`data=annotated data.version=N`), and files the request away as started, so the next sync does not start it
again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from rcatune import constants
from rcatune.annotation.pushed import record_dir
from rcatune.errors import ConfigError

REQUEST = "retrain.json"


def compose_job(overrides: list[str], run_dir: Path, project_root: Path) -> Path:
    """The job's JSON, composed and validated in a process of its own (Hydra is already running in this one):
    its path, or a ConfigError with what the composer said."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "rcatune.jobs", "compose", *overrides, "--run-dir", str(run_dir)],
                            cwd=project_root, capture_output=True, text=True, env=dict(os.environ))
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["(nothing)"])[-1].removeprefix("rcatune: error: ")
        raise ConfigError(f"pipeline.retrain_with {overrides}: {said}")
    path = run_dir / "job.json"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def check(overrides: list[str], project_root: Path) -> None:
    """Refuse overrides that do not compose into a job, before a drift run pushes anything."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        compose_job(["data=annotated", *overrides], Path(folder), project_root)


def request(project: str, overrides: list[str], ids: list[str], drift_run: str) -> dict[str, Any]:
    """Ask for a retraining job once `ids` are reviewed (`check` the overrides first)."""
    entry = {"overrides": overrides, "ids": ids, "drift_run": drift_run,
             "requested_at": datetime.now(timezone.utc).isoformat()}
    folder = record_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REQUEST).write_text(json.dumps(entry, indent=1), encoding="utf-8")
    return entry


def after_sync(project: str, run_dir: Path, dataset_version: str, project_root: Path) -> Optional[dict]:
    """What the sync in `run_dir` means for a waiting request: None (no request), the sessions still waited for,
    or the job it started."""
    folder = record_dir(project)
    path = folder / REQUEST
    if not path.exists():
        return None
    entry = json.loads(path.read_text(encoding="utf-8"))
    review = run_dir / constants.ANNOTATION_DIR
    reviewed = set(json.loads((review / "review_report.json").read_text(encoding="utf-8"))["dropped"])
    with open(review / "merged.jsonl", encoding="utf-8") as handle:
        reviewed |= {row["id"] for row in map(json.loads, handle) if row.get("human_validated")}
    waiting = [i for i in entry["ids"] if i not in reviewed]
    if waiting:
        return {"waiting_for": len(waiting), "of": len(entry["ids"]), "requested_by": entry["drift_run"]}
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    job_dir = _runs_dir() / "retrain" / stamp
    job = compose_job(["data=annotated", f"data.version={dataset_version}", *entry["overrides"]], job_dir,
                      project_root)
    with open(job_dir / "job.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "rcatune.jobs", "run", str(job)], cwd=project_root,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=dict(os.environ))
    started = {**entry, "job": str(job), "run_dir": str(job_dir), "pid": process.pid, "dataset_version":
               dataset_version, "started_at": datetime.now(timezone.utc).isoformat(), "synced_by": str(run_dir)}
    (folder / f"retrain_started_{stamp}.json").write_text(json.dumps(started, indent=1), encoding="utf-8")
    path.unlink()
    return {"started": str(job_dir), "pid": process.pid, "dataset_version": dataset_version,
            "requested_by": entry["drift_run"]}


def _runs_dir() -> Path:
    from rcatune.state import state_dir

    return state_dir() / "runs"
