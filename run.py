#!/usr/bin/env python
"""rcatune's one entry point: compose the config (Hydra), launch the job it makes, print what it did.

    python run.py                                   # the default fine-tuning pipeline on sample data
    python run.py pipeline=prepare data=jsonl data.path=sessions.jsonl
    python run.py -m data.size=100,200              # a sweep: one ZenML run and one MLflow run each
    python run.py launcher=subprocess               # the job in a process of its own (python -m rcatune.jobs)
    python run.py --help                            # groups, options and examples

Composition and validation live in `rcatune.jobs` (a control API or a sweep trial composes the same way);
this file only turns their errors into exit codes. `main` returns the run's primary metric, so a Hydra
sweeper can optimise it; a failed trial of a sweep is reported and the sweep goes on (exit 2 at its end).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("RCATUNE_HOME", str(ROOT / ".rcatune"))
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from rcatune.errors import ConfigError  # noqa: E402
from rcatune.jobs.compose import build, register  # noqa: E402

register(ROOT / "conf")
FAILED_TRIALS: list[str] = []


def _fail(message: str) -> None:
    print(f"rcatune: error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> Optional[float]:
    from hydra.types import RunMode

    from rcatune.jobs import launch
    from rcatune.report import print_summary_file

    hydra_cfg = HydraConfig.get()
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        job = build(cfg, dict(hydra_cfg.runtime.choices), list(hydra_cfg.overrides.task),
                    hydra_cfg.runtime.output_dir, ROOT / "conf")
    except ConfigError as error:
        if not sweeping:
            _fail(str(error))
        return _trial_failed(hydra_cfg, str(error))
    result = launch(job)
    print_summary_file(Path(result.run_dir), with_error=False)
    if result.status == "pruned":  # a sweep's pruner stopped the trial: its result, told to the study
        print(f"rcatune: {result.error}", file=sys.stderr)
        return None
    if result.status == "interrupted":  # Ctrl-C: one line, the summary says so, exit as shells expect
        print(f"rcatune: {result.error}", file=sys.stderr)
        sys.exit(130)
    if not result.ok:
        if not sweeping:
            _fail(result.error)
        return _trial_failed(hydra_cfg, result.error)
    return result.primary_metric


def _trial_failed(hydra_cfg, error: str) -> None:
    """A sweep goes on past a failed trial; it is named now and again at the end (exit 2)."""
    trial = f"trial {hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)})"
    print(f"rcatune: error: {trial} failed: {error}", file=sys.stderr)
    FAILED_TRIALS.append(f"{trial}: {error}")
    return None


if __name__ == "__main__":
    main()
    if FAILED_TRIALS:
        print(f"rcatune: error: {len(FAILED_TRIALS)} trial(s) of the sweep failed:\n  " + "\n  ".join(FAILED_TRIALS),
              file=sys.stderr)
        sys.exit(2)
