"""Fine-tuning: tokenisation with assistant-only labels, methods (LoRA, QLoRA, full, freeze), objectives,
backends. A backend is a recipe (setup, fit, save); `trainer.launcher` says where it runs: in this process, or
in one of its own from the serialised job (`python -m rcatune.training run`)."""

from __future__ import annotations

from typing import Any

from rcatune.artifacts import TrainedModel
from rcatune.config import instantiate
from rcatune.training.base import TrainingJob


def train(trainer_cfg: Any, job: TrainingJob) -> TrainedModel:
    """Run the backend `trainer_cfg` names (`_target_`) on `job`, where `trainer_cfg.launcher` says; with
    `distributed=ddp`, torchrun starts one process per rank from the serialised job."""
    distributed = getattr(trainer_cfg, "distributed", None)
    if distributed is not None and distributed.strategy.value != "none":
        from rcatune.training.launch import torchrun_prefix, train_in_subprocess

        return train_in_subprocess(trainer_cfg, job, torchrun_prefix(distributed))
    if getattr(trainer_cfg, "launcher", None) is not None and trainer_cfg.launcher.value == "subprocess":
        from rcatune.training.launch import train_in_subprocess

        return train_in_subprocess(trainer_cfg, job)
    return instantiate(trainer_cfg).train(job)


__all__ = ["TrainedModel", "TrainingJob", "train"]
