"""Jobs for the control API: composed from overrides (validated before anything starts, as on the command line),
kept in a durable table, run as processes of their own (`python -m rcatune.jobs run job.json`, the subprocess
launcher's command) by a runner thread, `api.max_concurrent_jobs` at a time.

States: queued -> running -> succeeded | failed | cancelled. A job's process starts in a session of its own,
so it outlives the API: when the API starts again, a job whose process still lives is watched again (its pid
and the process's start time must both match), one whose process is gone takes the state its run folder
tells (`run_summary.json`), else failed with the reason; queued jobs start in their order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

from rcatune.api.db import Database, api_dir
from rcatune.config.api import ApiConfig
from rcatune.errors import ConfigError

log = logging.getLogger("rcatune.api")
PIPELINES = ("fine_tuning", "prepare", "evaluate", "annotation")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")
JOB_ID = re.compile(r"^job-[0-9a-f]{12}$")
LOG_FILE = "job.log"
COMPOSE_LOCK = threading.Lock()
OVERRIDE = re.compile(r"^[+~]?[A-Za-z_][A-Za-z0-9_./@-]*=")


def check_overrides(overrides: list[str], config: ApiConfig, project_root: Path, state: Path) -> list[str]:
    """The overrides a job may take from a request: `key=value` only, no Hydra or pipeline keys (the API sets
    those), no interpolation, and every value that looks like a path inside the allowed roots."""
    roots = [state.resolve(), (project_root / "data").resolve(), *(Path(r).resolve() for r in config.allowed_roots)]
    checked = []
    for override in overrides:
        if not isinstance(override, str) or not OVERRIDE.match(override) or "\n" in override:
            raise ConfigError(f"override {str(override)[:80]!r}: use KEY=VALUE (as on the command line)")
        key, value = override.lstrip("+~").split("=", 1)
        if key.startswith("hydra") or key in ("pipeline", "launcher") or key.startswith("launcher."):
            raise ConfigError(f"{key}: set by the control API, not by a request (the pipeline is the request's "
                              "`pipeline` field)")
        if key == "hparams_search" or key.startswith("sweep"):
            raise ConfigError(f"{key}: a sweep runs from the command line (python run.py hparams_search=optuna); "
                              "a job is one run")
        if "${" in value:
            raise ConfigError(f"{key}: interpolations (${{...}}) are not taken from a request")
        for part in _values(value):
            if "/" in part or part.startswith(("~", ".")) or (part and (project_root / part).exists()):
                where = Path(os.path.expanduser(part))
                where = (where if where.is_absolute() else project_root / where).resolve()
                if not any(where == root or root in where.parents for root in roots):
                    raise ConfigError(f"{key}: {part!r} is outside the folders a request may name (the state "
                                      f"folder, the project's data/, and api.allowed_roots)")
        checked.append(override)
    return checked


def _values(value: str) -> list[str]:
    value = value.strip().strip("[]")
    return [v.strip().strip("'\"") for v in value.split(",")] if value else []


class JobTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, row: dict[str, Any]) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(self.db.jobs.insert().values(**row))

    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        from sqlalchemy import select

        with self.db.engine.connect() as connection:
            row = connection.execute(select(self.db.jobs).where(self.db.jobs.c.id == job_id)).first()
        return _row(row) if row else None

    def list(self, state: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        from sqlalchemy import select

        query = select(self.db.jobs).order_by(self.db.jobs.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(self.db.jobs.c.state == state)
        with self.db.engine.connect() as connection:
            return [_row(r) for r in connection.execute(query).all()]

    def update(self, job_id: str, only_if: Optional[tuple[str, ...]] = None, **values: Any) -> bool:
        """Change a job's row; `only_if`: only from one of these states (False when it was not in them)."""
        from sqlalchemy import update

        statement = update(self.db.jobs).where(self.db.jobs.c.id == job_id)
        if only_if:
            statement = statement.where(self.db.jobs.c.state.in_(only_if))
        with self.db.engine.begin() as connection:
            return bool(connection.execute(statement.values(**values)).rowcount)

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        with self.db.engine.connect() as connection:
            found = dict(connection.execute(select(self.db.jobs.c.state, func.count()).group_by(
                self.db.jobs.c.state)).all())
        return {state: int(found.get(state, 0)) for state in STATES}


def _row(row) -> dict[str, Any]:
    found = dict(row._mapping)
    found["overrides"] = json.loads(found["overrides"])
    return found


def submit(table: JobTable, pipeline: str, overrides: list[str], by: str, config: ApiConfig) -> dict[str, Any]:
    """A queued job: composed and checked now, so a bad override is refused before anything starts."""
    from rcatune.jobs import compose
    from rcatune.jobs.compose import PROJECT_ROOT
    from rcatune.state import state_dir

    if pipeline not in PIPELINES:
        raise ConfigError(f"pipeline {pipeline!r}: one of {', '.join(PIPELINES)}")
    state = state_dir()
    overrides = check_overrides(list(overrides), config, PROJECT_ROOT, state)
    job_id = f"job-{os.urandom(6).hex()}"
    run_dir = api_dir(state) / "jobs" / job_id
    with COMPOSE_LOCK:  # Hydra's composition is process-global
        job = compose([f"pipeline={pipeline}", *overrides], run_dir=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    job.save(run_dir / "job.json")
    table.add({"id": job_id, "pipeline": pipeline, "overrides": json.dumps(overrides), "state": "queued",
               "run_dir": str(run_dir), "submitted_by": by, "created_at": time.time(), "cancel_requested": False})
    return table.get(job_id)


def process_started(pid: int) -> Optional[str]:
    """The start time of process `pid` (clock ticks since boot, from /proc), or None when it is gone or a
    zombie; with the pid, it tells a job's process from another that got the same pid later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def log_tail(run_dir: str, lines: int) -> list[str]:
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:]


def progress(job: dict[str, Any]) -> Optional[dict[str, Any]]:
    """Steps done of the job's ZenML run (named in its run folder as it starts), and the one running."""
    from rcatune.runner import ZENML_RUN_FILE

    name_file = Path(job["run_dir"]) / ZENML_RUN_FILE
    if not name_file.exists():
        return {"steps_done": 0, "steps": None, "current": "starting"} if job["state"] == "running" else None
    try:
        from zenml.client import Client

        run = Client().get_pipeline_run(name_file.read_text().strip())
        statuses = {name: str(getattr(step.status, "value", step.status)) for name, step in run.steps.items()}
        total = len(run.snapshot.step_configurations) if run.snapshot else None
    except Exception:  # the run is not in the store yet
        return {"steps_done": 0, "steps": None, "current": "starting"}
    done = sum(s in ("completed", "cached") for s in statuses.values())
    running = [n for n, s in statuses.items() if s == "running"]
    return {"steps_done": done, "steps": total, "current": running[0] if running else None,
            "zenml_run": name_file.read_text().strip()}


class JobRunner:
    """Starts queued jobs and watches running ones, in a thread of the API process."""

    def __init__(self, table: JobTable, config: ApiConfig) -> None:
        self.table, self.config = table, config
        self._children: dict[str, subprocess.Popen] = {}
        self._cancel_sent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.beat = 0.0  # when the loop last went round (readiness)

    def start(self) -> "JobRunner":
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="rcatune-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive() and time.time() - self.beat < 30)

    def recover(self) -> None:
        """After a restart: each job the table says is running is found again, or accounted for."""
        for job in self.table.list("running", limit=10_000):
            if job["pid"] and process_started(job["pid"]) == job["pid_started"]:
                log.warning("job %s: its process %s still runs; watching it again", job["id"], job["pid"])
                continue
            self._finish(job, None, "the control API stopped while the job ran and its process is gone")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the table is away for a moment: the next round tries again
                log.exception("the job runner's round failed")
            self.beat = time.time()
            self._stop.wait(self.config.poll_s)

    def tick(self) -> None:
        for job in self.table.list("running", limit=10_000):
            self._watch(job)
        free = self.config.max_concurrent_jobs - self.table.counts()["running"]  # after the ones that ended
        if free > 0:
            for job in sorted(self.table.list("queued", limit=10_000), key=lambda j: j["created_at"])[:free]:
                if job["cancel_requested"]:
                    continue
                try:
                    self._launch(job)
                except Exception as error:  # its folder or its Python is gone: failed, with why, not retried forever
                    self.table.update(job["id"], only_if=("queued",), state="failed", ended_at=time.time(),
                                      error=f"could not start: {type(error).__name__}: {error}")

    def _launch(self, job: dict[str, Any]) -> None:
        from rcatune.jobs import Job
        from rcatune.jobs.launchers import SubprocessLauncher

        run_dir = Path(job["run_dir"])
        loaded = Job.load(run_dir / "job.json")
        command = SubprocessLauncher().command(run_dir / "job.json")
        with open(run_dir / LOG_FILE, "ab") as handle:
            process = subprocess.Popen(command, cwd=loaded.project_root, env={**loaded.environment(),
                                                                               "PYTHONUNBUFFERED": "1"},
                                       stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self._children[job["id"]] = process
        if not self.table.update(job["id"], only_if=("queued",), state="running", started_at=time.time(),
                                 pid=process.pid, pid_started=process_started(process.pid) or ""):
            _end_group(process.pid, signal.SIGKILL)  # cancelled between the read and the start
            self._children.pop(job["id"], None)

    def _watch(self, job: dict[str, Any]) -> None:
        child = self._children.get(job["id"])
        if child is not None:
            code = child.poll()
            alive = code is None
        else:  # a process from before a restart: not our child, so no exit code
            code, alive = None, process_started(job["pid"]) == job["pid_started"] if job["pid"] else False
        if job["cancel_requested"] and alive:
            sent = self._cancel_sent.get(job["id"])
            if sent is None:
                self._cancel_sent[job["id"]] = time.monotonic()
                _end_group(job["pid"], signal.SIGINT)  # the job stops and writes that it was interrupted
            elif time.monotonic() - sent > self.config.cancel_grace_s:
                _end_group(job["pid"], signal.SIGKILL)
            return
        if not alive:
            self._children.pop(job["id"], None)
            self._cancel_sent.pop(job["id"], None)
            self._finish(job, code, None)

    def _finish(self, job: dict[str, Any], code: Optional[int], gone: Optional[str]) -> None:
        from rcatune.jobs.launchers import JobResult

        result = JobResult.read(Path(job["run_dir"]))
        if job["cancel_requested"]:
            state, error = "cancelled", f"cancelled by {job['cancelled_by'] or 'a caller'}"
        elif result.summary and result.status == "succeeded" and code in (0, None):
            state, error = "succeeded", None
        elif result.summary and result.status in ("failed", "interrupted"):
            state, error = "failed", result.error
        else:
            how = f"exit {code}" if code is not None and code >= 0 else (
                f"signal {-code}" if code is not None else "an end nobody saw")
            state = "failed"
            error = f"{gone or 'the job process ended'} ({how}) before it wrote its summary; the same job again " \
                    "continues where it can"
        self.table.update(job["id"], only_if=("running",), state=state, ended_at=time.time(), exit_code=code,
                          error=error)


def cancel(table: JobTable, job_id: str, by: str) -> dict[str, Any]:
    """Queued: cancelled at once. Running: the runner ends its process (SIGINT, then SIGKILL after the grace)."""
    table.update(job_id, only_if=("queued",), state="cancelled", cancel_requested=True, cancelled_by=by,
                 ended_at=time.time(), error=f"cancelled by {by} before it started")
    table.update(job_id, only_if=("running",), cancel_requested=True, cancelled_by=by)
    return table.get(job_id)


def _end_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
