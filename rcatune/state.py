"""The project state folder: every mutable thing rcatune writes lives under it.

`RCATUNE_HOME` moves it; otherwise it is `.rcatune/` in the current directory
(`run.py` pins that to the project root). Nothing is written to the user's home.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

STATE_ENV = "RCATUNE_HOME"


def state_dir() -> Path:
    """Return the state folder, creating it when missing."""
    path = Path(os.environ.get(STATE_ENV) or Path.cwd() / ".rcatune").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_tracking_uri(state: Path | None = None) -> str:
    """The embedded MLflow store: a SQLite file under the state folder."""
    state = state or state_dir()
    return f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"


def mlflow_artifact_root(state: Path | None = None) -> Path:
    return (state or state_dir()) / "mlflow" / "artifacts"


def configure_environment(state: Path | None = None) -> Path:
    """Point ZenML, MLflow and the HF caches at the state folder; switch telemetry off.

    Explicit environment settings made by the user win (setdefault), except the
    telemetry switches, which are always off.
    """
    state = state or state_dir()
    (state / "mlflow").mkdir(parents=True, exist_ok=True)
    defaults = {
        "ZENML_CONFIG_PATH": str(state / "zenml" / "config"),
        "ZENML_REPOSITORY_PATH": str(state),
        "ZENML_AUTO_OPEN_DASHBOARD": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_ENABLE_RICH_TRACEBACK": "false",
        "MLFLOW_TRACKING_URI": mlflow_tracking_uri(state),
        "HF_HOME": str(state / "hf"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    return state


@contextmanager
def state_lock(name: str, state: Path | None = None) -> Iterator[None]:
    """An exclusive lock on the state folder's `locks/<name>.lock` while the block runs: runs that share one
    state folder (a parallel sweep, two people, the control API) take turns where a store is set up or a
    number is handed out. It is released when the process ends, however it ends."""
    import fcntl

    folder = (state or state_dir()) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
