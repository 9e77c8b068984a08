"""`sweep.*`: which Optuna trial a run is (set by the sweeper on each trial's command line, never by hand).

A run with `sweep.trial` set reports its validation loss to that trial after every evaluation and stops when
the study's pruner says so (`rcatune.sweeps`). The study's database comes from `$RCATUNE_SWEEP_STORAGE`, else the
SQLite file under the state folder: a URL with a password never travels in a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from rcatune.config._require import require


@dataclass
class SweepConfig:
    study: Optional[str] = None  # the Optuna study this run is a trial of
    trial: Optional[int] = None  # its trial number in that study

    def __post_init__(self) -> None:
        require((self.study is None) == (self.trial is None), "sweep",
                "sweep.study and sweep.trial go together (the sweeper sets both on each trial)")
        require(self.trial is None or self.trial >= 0, "sweep.trial", f"{self.trial} is not a trial number")

    @property
    def active(self) -> bool:
        return self.trial is not None
