"""Jobs and launchers: a run is a value (`Job`) that any launcher can start.

    job = compose(["pipeline=prepare", "data.size=50"])   # validated as the command line validates
    result = launch(job)                                   # launcher= picks how; a failure is a result
    python -m rcatune.jobs compose pipeline=prepare > job.json ;  python -m rcatune.jobs run job.json
"""

from __future__ import annotations

from rcatune.jobs.compose import compose
from rcatune.jobs.job import JOB_FILE, Job
from rcatune.jobs.launchers import InProcessLauncher, JobResult, SubprocessLauncher, launch, launcher_for

__all__ = ["JOB_FILE", "InProcessLauncher", "Job", "JobResult", "SubprocessLauncher", "compose", "launch",
           "launcher_for"]
