"""Golden losses per training recipe (trainer=hf: full, LoRA, freeze), resumed and in a process of its own, so a
refactor of the recipe cannot move training silently. Recorded on this project's CPU machines (torch 2.13.0,
one thread); a change that is meant to move them re-records them and says why."""

from __future__ import annotations

import shutil

import pytest

from rcatune.config import instantiate
from rcatune.config.method import FreezeMethodConfig, FullMethodConfig, LoraMethodConfig
from rcatune.config.trainer import HfTrainerConfig, TrainingLauncher
from rcatune.demo.generator import generate_sessions
from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
from rcatune.runtime import Runtime
from rcatune.schema import TrainingExample
from rcatune.training import TrainingJob, train
from tests.test_training import GOLDEN, TINY

GOLDEN_BY_METHOD = {
    "full": GOLDEN,
    # LoRA's initial weights draw from the seeded generator. Before issue 25 a run that built the tiny model drew
    # them after the build had reseeded torch (7.988963 / 7.600094) and a run on a cached one did not (these):
    # the build now leaves the random state alone and the seed is set after it, so both give these.
    "lora": {"train_loss": 7.961556, "eval_loss": 7.550147},
    "freeze": {"train_loss": 7.120342, "eval_loss": 6.543654},
}
METHODS = {"full": FullMethodConfig(), "lora": LoraMethodConfig(rank=8, alpha=16, dropout=0.0),
           "freeze": FreezeMethodConfig()}


def _examples():
    return [TrainingExample.model_validate(r) for r in generate_sessions(20, seed=3)]


def _trainer(**changes) -> HfTrainerConfig:
    values = dict(learning_rate=3e-3, epochs=2, batch_size=4, gradient_accumulation_steps=1, max_length=1024,
                  gradient_checkpointing=False, logging_steps=1, warmup_ratio=0.0, seed=42, group_by_length=False)
    return HfTrainerConfig(**{**values, **changes})


def _run(method: str, out, **changes):
    import torch

    torch.set_num_threads(1)
    examples = _examples()
    job = TrainingJob(examples[:16], examples[16:], TINY, instantiate(METHODS[method]), DEFAULT_SYSTEM_PROMPT, out,
                      Runtime(device="cpu", progress=False))
    return train(_trainer(**changes), job)


def _losses(result) -> dict[str, float]:
    return {k: result.metrics[k] for k in ("train_loss", "eval_loss")}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "freeze"])
def test_golden_losses_per_recipe(method, tmp_path):
    result = _run(method, tmp_path)
    assert result.metrics["global_steps"] == 8
    print(f"golden losses {method}: {_losses(result)}")
    assert _losses(result) == pytest.approx(GOLDEN_BY_METHOD[method], rel=5e-4)


@pytest.mark.slow
def test_the_recipe_in_a_process_of_its_own_gives_the_golden_losses(tmp_path):
    """The serialised training job, run by `python -m rcatune.training run`, trains exactly what this process
    trains: the same losses to every digit, and a folder that loads the same way."""
    here = _run("lora", tmp_path / "here")
    there = _run("lora", tmp_path / "there", launcher=TrainingLauncher.subprocess)
    assert (tmp_path / "there" / "training_job.json").exists() and (tmp_path / "there" / "model").is_dir()
    assert _losses(there) == _losses(here)
    assert _losses(there) == pytest.approx(GOLDEN_BY_METHOD["lora"], rel=5e-4)
    assert there.metrics["global_steps"] == here.metrics["global_steps"] == 8


@pytest.mark.slow
def test_a_resumed_recipe_reaches_the_never_resumed_losses(tmp_path):
    """Stopped after its 4th step (the end of epoch 1) and resumed from that checkpoint: the same eval loss as
    the run never stopped (the kill -9 version of this is in test_pipeline)."""
    whole = _run("full", tmp_path / "whole", save_steps=2, save_total_limit=10)
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "whole" / "checkpoints" / "checkpoint-4", resumed_dir / "checkpoints" / "checkpoint-4")
    resumed = _run("full", resumed_dir, save_steps=2, save_total_limit=10, resume_from="latest")
    assert resumed.resumed_from.endswith("checkpoint-4")
    assert resumed.metrics["eval_loss"] == pytest.approx(whole.metrics["eval_loss"], rel=1e-6)
    assert whole.metrics["eval_loss"] == pytest.approx(GOLDEN["eval_loss"], rel=5e-4)
