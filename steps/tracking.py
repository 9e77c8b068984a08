"""The run-config step: the resolved config and code version, into MLflow."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel
from zenml import step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.runinfo import RunSummary
from rcatune.tracking import log_params, redact


class RunTracking(BaseModel):
    """Where this pipeline run is tracked in MLflow."""

    experiment: str
    experiment_id: str
    run_id: str
    tracking_uri: str

    def summarise(self, summary: RunSummary) -> None:
        summary.mlflow = self.model_dump()


@step(experiment_tracker=True)
def track_run_config(config: dict[str, Any], git: dict[str, Any]) -> Annotated[
    RunTracking, ArtifactConfig(name=constants.RUN_TRACKING)
]:
    """Log the flattened resolved config as params, the config itself and the commit."""
    import mlflow

    log_params(config)
    mlflow.log_dict(redact(config), "config/resolved_config.json")
    mlflow.set_tags({"git_commit": git.get("commit", "unknown"), "git_dirty": str(git.get("dirty", False))})
    run = mlflow.active_run()
    return RunTracking(experiment=mlflow.get_experiment(run.info.experiment_id).name,
                       experiment_id=run.info.experiment_id, run_id=run.info.run_id,
                       tracking_uri=mlflow.get_tracking_uri())
