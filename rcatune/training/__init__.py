"""Fine-tuning: tokenisation with assistant-only labels, methods (LoRA, QLoRA, full, freeze), backends."""

from __future__ import annotations

from typing import Any

from rcatune.artifacts import TrainedModel
from rcatune.config import instantiate
from rcatune.training.base import TrainingJob


def train(trainer_cfg: Any, job: TrainingJob) -> TrainedModel:
    """Run the backend `trainer_cfg` names (`_target_`) on `job`."""
    return instantiate(trainer_cfg).train(job)


__all__ = ["TrainedModel", "TrainingJob", "train"]
