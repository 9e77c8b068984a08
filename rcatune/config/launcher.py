"""`launcher=`: how a job is started. In this process (the default), or in a process of its own from the job's
JSON (`python -m rcatune.jobs run JOB.json`). The scale-out launchers (a ZenML server stack) and the control
API start jobs through the same interface (`rcatune.jobs.launchers`)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from rcatune.config._require import require


@dataclass
class LauncherConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class InProcessLauncherConfig(LauncherConfig):
    _target_: str = "rcatune.jobs.launchers.InProcessLauncher"
    name: str = "inprocess"


@dataclass
class SubprocessLauncherConfig(LauncherConfig):
    _target_: str = "rcatune.jobs.launchers.SubprocessLauncher"
    name: str = "subprocess"
    timeout_s: float = 0.0  # 0: none; past it the job's process group is ended and the job failed

    def __post_init__(self) -> None:
        require(self.timeout_s >= 0, "launcher.timeout_s", "must be 0 (none) or a number of seconds")


SCHEMAS = {"inprocess": InProcessLauncherConfig, "subprocess": SubprocessLauncherConfig}
