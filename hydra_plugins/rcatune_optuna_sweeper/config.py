"""The sweeper's settings (`hydra.sweeper.*`), registered as `hydra/sweeper=rcatune_optuna`."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class RcatuneOptunaSweeperConf:
    _target_: str = "hydra_plugins.rcatune_optuna_sweeper.optuna_sweeper.RcatuneOptunaSweeper"
    study_name: Optional[str] = None  # None: named from the search space and the fixed overrides (resumes)
    storage: Optional[str] = None  # None: $RCATUNE_SWEEP_STORAGE, else SQLite under the state folder
    metric: str = "eval_loss"  # a validation-split figure of the run summary (never test or shift)
    direction: str = "minimize"
    n_trials: int = 4  # finished trials wanted (complete or pruned); a resumed sweep counts the earlier ones
    n_jobs: int = 1  # trials asked at once: run in parallel by hydra/launcher=joblib
    max_failures: Optional[int] = None  # stop after this many failed trials (None: n_trials)
    sampler: str = "tpe"  # tpe | random
    seed: int = 42
    pruner: Dict[str, Any] = field(default_factory=lambda: {"name": "median", "n_startup_trials": 2,
                                                             "n_warmup_steps": 1})
    params: Dict[str, Any] = field(default_factory=dict)  # key -> choice(...) | interval(...) | range(...)


ConfigStore.instance().store(group="hydra/sweeper", name="rcatune_optuna", node=RcatuneOptunaSweeperConf,
                             provider="rcatune")
