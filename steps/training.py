"""The training step: one call into the configured trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import log_metadata, step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune import constants
from rcatune.config import from_spec
from rcatune.config.schema import TrainerConfig
from rcatune.split import DatasetSplits
from rcatune.training.hf import TrainResult


def _backend(name: str):
    if name == "llama_factory":
        from rcatune.training.llama_factory import train
    else:
        from rcatune.training.hf import train
    return train


@step(experiment_tracker=True, enable_cache=False)
def train_model(splits: DatasetSplits, model: dict[str, Any], method: dict[str, Any], trainer: TrainerConfig,
                system_prompt: str, output_dir: str, progress: bool = True) -> Annotated[
    TrainResult, ArtifactConfig(name=constants.TRAINED_MODEL)
]:
    """Fine-tune the base model on the train split, validating each epoch (trainer.name picks the backend)."""
    import mlflow

    result = _backend(trainer.name)(splits.train, splits.val, from_spec(model), from_spec(method), trainer,
                   Path(output_dir) / constants.TRAINING_DIR, system_prompt, progress)
    mlflow.log_metrics(result.metrics)
    mlflow.log_artifact(str(Path(result.output_dir) / "train_metrics.json"), artifact_path=constants.TRAINING_DIR)
    if trainer.name == "llama_factory":
        mlflow.log_artifact(str(Path(result.output_dir) / "llamafactory_train.yaml"),
                            artifact_path=constants.TRAINING_DIR)
    log_metadata(metadata={"metrics": result.metrics, "base_model": result.base_model, "method": result.method,
                           "model_dir": result.model_dir, "backend": trainer.name}, infer_artifact=True)
    return result
