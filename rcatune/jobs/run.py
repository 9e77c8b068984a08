"""Run a job in this process: the pipeline its config names, on its stack; `run_summary.json` is always left."""

from __future__ import annotations

from pathlib import Path

from rcatune.jobs.job import Job
from rcatune.runinfo import RunSummary


def run_job(job: Job) -> RunSummary:
    """Run `job` here (its launcher is not consulted: this is what every launcher ends in)."""
    from rcatune import runner
    from rcatune.runtime import Runtime

    cfg = job.config()
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    job.save()  # beside its summary: the run can be run again from it
    runner.load_pipelines("pipelines")
    context = runner.RunContext(resolved=job.resolved, choices=job.choices, overrides=job.overrides,
                                run_dir=run_dir, project_root=Path(job.project_root), git=job.git,
                                runtime=Runtime.detect(cfg.device.value, cfg.progress))
    return runner.run(cfg, context)
