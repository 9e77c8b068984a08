"""How many threads a server computes with (`serving.threads`, `--threads`): a number, or `auto`, the cores this
process may use (its CPU affinity, capped by a container's or a Kubernetes pod's CPU limit from the cgroup)
divided by the servers that share them (a blue/green deployment keeps two warm). torch's default takes every
core for each server, which on a busy machine made 64-token completions 20x slower at p50 (docs/deployment.md)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional


def cpu_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> Optional[float]:
    """The CPU limit of this process's cgroup in cores (v2 `cpu.max`, or v1's quota / period), or None."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may run on: its affinity, capped by its cgroup's CPU limit."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cpu_limit()
    return max(1, min(cores, math.floor(limit)) if limit else cores)


def resolve_threads(setting: str, servers: int = 1) -> int:
    """`setting` ('auto' or a number) as a thread count for one of `servers` servers sharing this machine."""
    if str(setting).strip().lower() == "auto":
        return max(1, available_cores() // max(1, servers))
    return int(setting)


def apply_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
