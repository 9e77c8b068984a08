"""The study's database and the trial a run is: where it lives, how a run reports to it, how a killed sweep's
trials are found again.

The database is `$RCATUNE_SWEEP_STORAGE` (a team's PostgreSQL: `postgresql+psycopg://...`), else SQLite under the
state folder (`sweeps/optuna.db`). Its URL may hold a password, so it never travels in a config or on a command
line: the sweeper and every trial read the same environment.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rcatune.errors import ConfigError, RcatuneError, TrialPruned

log = logging.getLogger("rcatune")
STORAGE_ENV = "RCATUNE_SWEEP_STORAGE"
SQLITE_FILE = Path("sweeps") / "optuna.db"
SQLITE_TIMEOUT_S = 60  # parallel trials report to one SQLite file: wait for its lock instead of failing


def storage_url(state: Optional[Path] = None) -> str:
    """The study database's URL: $RCATUNE_SWEEP_STORAGE, else SQLite under the state folder (made if needed)."""
    if os.environ.get(STORAGE_ENV):
        return os.environ[STORAGE_ENV]
    from rcatune.state import state_dir

    path = Path(state or state_dir()) / SQLITE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redacted(url: str) -> str:
    """The URL as logs and summaries may show it (no password)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show its scheme only
        return url.split("://")[0] + "://..."


def refuse_password(url: Optional[str], key: str) -> None:
    """A URL with a password may not sit in a config (configs are recorded and tracked)."""
    if not url:
        return
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception as error:
        raise ConfigError(f"{key}: {url.split('://')[0]}://... is not a database URL ({error})") from None
    if password:
        raise ConfigError(f"{key}: the URL holds a password, and configs are recorded and tracked; "
                          f"set ${STORAGE_ENV} in the environment instead")


def open_storage(url: str):
    """Optuna's RDB storage over `url` (SQLite waits up to a minute for the file's lock)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as error:
        raise RcatuneError(f"the sweep's study database {redacted(url)} cannot be opened: "
                           f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None


def make_pruner(spec: dict[str, Any]):
    """An Optuna pruner from its settings ({"name": median|percentile|hyperband|none, ...})."""
    import optuna

    spec = dict(spec or {"name": "none"})
    name = str(spec.pop("name", "none"))
    kinds = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
             "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}
    if name not in kinds:
        raise ConfigError(f"hydra.sweeper.pruner.name: {name!r} is not one of {sorted(kinds)}")
    try:
        return kinds[name](**spec)
    except TypeError as error:
        raise ConfigError(f"hydra.sweeper.pruner: {error}") from None


@dataclass(frozen=True)
class TrialRef:
    """The trial a run is. It reports its validation loss after every evaluation and asks whether to stop."""

    study: str
    number: int

    def report(self, value: float, step: int, url: Optional[str] = None) -> None:
        """Record `value` at `step` (an epoch); raise TrialPruned when the study's pruner stops the trial."""
        import optuna

        storage = open_storage(url or storage_url())
        try:
            study_id = storage.get_study_id_from_name(self.study)
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        except KeyError:
            where = redacted(url or storage_url())
            raise ConfigError(f"sweep: study {self.study!r} has no trial {self.number} in {where} "
                              "(sweep.* is set by the sweeper, not by hand)") from None
        pruner = make_pruner(storage.get_study_user_attrs(study_id).get("pruner", {"name": "none"}))
        study = optuna.load_study(study_name=self.study, storage=storage, pruner=pruner)
        trial = optuna.trial.Trial(study, trial_id)
        trial.report(float(value), step)
        if trial.should_prune():
            raise TrialPruned(f"pruned by the sweep's {type(pruner).__name__} at epoch {step}: validation loss "
                              f"{value:.4f} is worse than the other trials' at that epoch (study {self.study}, "
                              f"trial {self.number})")


def sweeper_id() -> str:
    """Who runs a trial: host and process, so a later sweeper can tell a killed sweep's trial from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_alive(owner: Optional[str]) -> bool:
    """Whether the sweeper `owner` (sweeper_id) still runs; another host's counts as alive (it cannot be seen)."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def recover_orphans(study, storage) -> list[int]:
    """Trials a killed sweep left running: failed (with why) and their parameters asked again first. The numbers
    of the trials given up."""
    from optuna.trial import TrialState

    orphans = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_alive(trial.user_attrs.get("sweeper")):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "error", "its sweep was killed while it ran; its parameters were "
                                                       "asked again")
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        orphans.append(trial.number)
    return orphans
