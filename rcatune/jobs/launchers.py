"""How a job is started (`launcher=`). Every launcher takes a `Job` and gives back a `JobResult`: a job that
fails is a failed result with its one-line reason, never an exit of the caller, so a sweep survives a failed
trial and the control API records it. The scale-out stacks add theirs on this interface."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

from rcatune.errors import Interrupted, RcatuneError, TrialPruned
from rcatune.jobs.job import Job
from rcatune.runinfo import RUN_SUMMARY

log = logging.getLogger("rcatune")
EXIT_FAILED, EXIT_INTERRUPTED = 2, 130  # as run.py exits


@dataclass
class JobResult:
    status: str  # succeeded | failed | interrupted | pruned (a sweep's pruner stopped the trial)
    run_dir: str
    error: Optional[str] = None  # one line
    summary: dict[str, Any] = field(default_factory=dict)  # run_summary.json, when the run left one

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def primary_metric(self) -> Optional[float]:
        metric = self.summary.get("primary_metric")
        return metric["value"] if metric else None

    @property
    def exit_code(self) -> int:
        return {"succeeded": 0, "pruned": 0, "interrupted": EXIT_INTERRUPTED}.get(self.status, EXIT_FAILED)

    @classmethod
    def read(cls, run_dir: Path, status: Optional[str] = None, error: Optional[str] = None) -> "JobResult":
        """The result a run folder tells (its summary's status and error, unless given)."""
        path = Path(run_dir) / RUN_SUMMARY
        summary = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        status = status or summary.get("status") or "failed"
        error = error or summary.get("error")
        if status != "succeeded" and not error:
            error = "the job ended without saying why (no run_summary.json error)"
        return cls(status, str(run_dir), error, summary)


class Launcher(Protocol):
    def launch(self, job: Job) -> JobResult: ...


class InProcessLauncher:
    """The job runs in this process (the default)."""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def launch(self, job: Job) -> JobResult:
        from rcatune.jobs.run import run_job

        try:
            run_job(job)
        except Interrupted as error:
            return JobResult.read(Path(job.run_dir), "interrupted", str(error))
        except TrialPruned as error:
            return JobResult.read(Path(job.run_dir), "pruned", str(error))
        except RcatuneError as error:
            return JobResult.read(Path(job.run_dir), "failed", str(error))
        except Exception as error:  # a bug: its traceback is printed and kept in run_summary.json
            traceback.print_exc()
            return JobResult.read(Path(job.run_dir), "failed", f"{type(error).__name__}: {error}")
        return JobResult.read(Path(job.run_dir))


class SubprocessLauncher:
    """The job runs in a process of its own, from its JSON: `python -m rcatune.jobs run <run dir>/job.json`."""

    def __init__(self, config: Any = None) -> None:
        self.timeout = getattr(config, "timeout_s", 0) or None

    def command(self, job_file: Path) -> list[str]:
        return [sys.executable, "-m", "rcatune.jobs", "run", str(job_file), "--no-summary"]

    def launch(self, job: Job) -> JobResult:
        job_file = job.save()
        process = subprocess.Popen(self.command(job_file), cwd=job.project_root, env=job.environment(),
                                   start_new_session=True)
        try:
            code = process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _end(process)
            return JobResult.read(Path(job.run_dir), "failed", f"the job ran past launcher.timeout_s="
                                  f"{self.timeout:g} s and was ended")
        except KeyboardInterrupt:  # our own Ctrl-C: the job's process group gets it too, then we wait
            _end(process, signal.SIGINT)
            return JobResult.read(Path(job.run_dir), "interrupted", "interrupted (Ctrl-C)")
        if code == 0:
            return JobResult.read(Path(job.run_dir))
        result = JobResult.read(Path(job.run_dir))
        if result.status == "succeeded" or not result.summary:  # it died before or after saying so
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            return JobResult.read(Path(job.run_dir), "failed", f"the job's process ended with {how} "
                                  "(killed?); the same job again continues where it can")
        return result


def _end(process: subprocess.Popen, first: int = signal.SIGTERM, grace: float = 30.0) -> None:
    import os

    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def launcher_for(config: Any) -> Launcher:
    """The launcher a `launcher=` option names."""
    from rcatune.config import locate

    return locate(config._target_)(config)


def launch(job: Job) -> JobResult:
    """Start `job` with the launcher its config names."""
    return launcher_for(job.config().launcher).launch(job)
