"""The training step: one call into the configured backend."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.artifacts import TrainedModel
from rcatune.config import Spec, instantiate
from rcatune.runtime import Runtime
from rcatune.split import DatasetSplits
from rcatune.training import TrainingJob, train


@step(experiment_tracker=True, enable_cache=False)
def train_model(splits: DatasetSplits, model: Spec, method: Spec, trainer: Spec, system_prompt: str,
                output_dir: str, runtime: Runtime, objective: Optional[Spec] = None,
                trial: Optional[dict[str, Any]] = None) -> Annotated[
    TrainedModel, ArtifactConfig(name=constants.TRAINED_MODEL)
]:
    """Fine-tune the base model on the train split, validating each epoch (trainer=... picks the backend). A sweep's
    trial (`trial`: study and number) reports each validation loss to its study and may be pruned."""
    import mlflow

    from rcatune.sweeps.study import TrialRef

    job = TrainingJob(splits.train, splits.val, model.load(), instantiate(method.load()), system_prompt,
                      Path(output_dir) / constants.TRAINING_DIR, runtime, objective.load() if objective else None,
                      TrialRef(**trial) if trial else None)
    result = train(trainer.load(), job)
    mlflow.log_metrics(result.metrics)
    for name in ("train_metrics.json", "llamafactory_train.yaml"):
        if (Path(result.output_dir) / name).exists():
            mlflow.log_artifact(str(Path(result.output_dir) / name), artifact_path=constants.TRAINING_DIR)
    log_metadata(metadata={"metrics": result.metrics, "base_model": result.base_model, "method": result.method,
                           "model_dir": result.model_dir, "backend": result.backend}, infer_artifact=True)
    return result
