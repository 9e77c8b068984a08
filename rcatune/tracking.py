"""MLflow helpers: experiments with their artifacts under the state folder, flat params, no secrets."""

from __future__ import annotations

import re
from typing import Any, Mapping

SECRET_KEY = re.compile(r"(token|password|passwd|secret|api[_-]?key|credential)", re.IGNORECASE)
REDACTED = "***"
PARAM_VALUE_LIMIT = 500


def redact(value: Any) -> Any:
    """A copy of nested dicts/lists with values under secret-looking keys replaced."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") and not str(k).endswith("_env")
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}; lists stay as their text."""
    flat: dict[str, str] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    else:
        text = str(value)
        flat[prefix] = text if len(text) <= PARAM_VALUE_LIMIT else text[: PARAM_VALUE_LIMIT - 3] + "..."
    return flat


def ensure_experiment(name: str, tracking_uri: str, artifact_root: str | None) -> str:
    """Create the experiment with an explicit artifact location (never ./mlruns; None: a tracking server's own
    artifact store); return its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=f"{artifact_root}/{name}" if artifact_root else None)


def tracking_run() -> bool:
    """Whether this process has an active MLflow run (mlflow is not imported when nothing imported it)."""
    import sys

    return "mlflow" in sys.modules and sys.modules["mlflow"].active_run() is not None


def log_params(params: Mapping[str, Any]) -> None:
    """Log the flattened, redacted config to the active MLflow run."""
    import mlflow

    flat = flatten(redact(params))
    items = sorted(flat.items())
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start:start + 100]))
