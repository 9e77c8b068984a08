"""What every training backend shares: its inputs, checkpoints to resume from, and what it leaves behind.

A backend (`trainer=`) is a class built from its config (`_target_`) with one method, `train`, that
returns a `TrainedModel` whose folder loads through `rcatune.inference` (tokenizer, the signature of
what training rendered, and `rcatune_model.json`).
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rcatune.config import to_spec
from rcatune.config.model import ModelConfig
from rcatune.errors import ConfigError
from rcatune.runtime import Runtime
from rcatune.schema import TrainingExample

ADAPTER_OR_MODEL = "model"


@dataclass
class TrainingJob:
    """One backend call: data, base model, method, where to write, how this process runs."""

    train_set: list[TrainingExample]
    val_set: list[TrainingExample]
    model: ModelConfig
    method: Any  # a rcatune.training.methods.Method
    system_prompt: str
    output_dir: Path
    runtime: Runtime
    objective: Any = None  # an ObjectiveConfig (None: sft)
    trial: Any = None  # a sweep's rcatune.sweeps.study.TrialRef: report validation losses to it (may prune)

    def __post_init__(self) -> None:
        if self.objective is None:
            from rcatune.config.objective import SftObjectiveConfig

            self.objective = SftObjectiveConfig()
        self.output_dir = Path(self.output_dir)

    def to_json(self) -> str:
        """The job as JSON, for a training process of its own (`python -m rcatune.training run`)."""
        return json.dumps({
            "train_set": [e.model_dump(mode="json") for e in self.train_set],
            "val_set": [e.model_dump(mode="json") for e in self.val_set],
            "model": to_spec("model", self.model).model_dump(),
            "method": to_spec("method", self.method.config).model_dump(),
            "objective": to_spec("objective", self.objective).model_dump(), "system_prompt": self.system_prompt,
            "output_dir": str(self.output_dir), "runtime": self.runtime.model_dump(),
            "trial": {"study": self.trial.study, "number": self.trial.number} if self.trial else None})

    @classmethod
    def from_json(cls, text: str, runtime: Optional[Runtime] = None) -> "TrainingJob":
        """The job back; `runtime`: this process's own (a rank under a distributed launcher), else the recorded."""
        from rcatune.config import instantiate, load_spec
        from rcatune.sweeps.study import TrialRef

        values = json.loads(text)
        return cls([TrainingExample.model_validate(e) for e in values["train_set"]],
                   [TrainingExample.model_validate(e) for e in values["val_set"]], load_spec(values["model"]),
                   instantiate(load_spec(values["method"])), values["system_prompt"], Path(values["output_dir"]),
                   runtime or Runtime.model_validate(values["runtime"]), load_spec(values["objective"]),
                   TrialRef(**values["trial"]) if values.get("trial") else None)


def find_checkpoint(resume_from: str, own_checkpoints: Path) -> Optional[str]:
    """'latest' -> the newest checkpoint in this run's checkpoint folder; otherwise a checkpoint folder,
    a folder of checkpoints, or a run folder (either backend's layout).

    Only complete checkpoints count (a kill during a save leaves one without trainer_state.json).
    """
    if resume_from == "latest":
        folders = [own_checkpoints]
    else:
        base = Path(resume_from)
        if (base / "trainer_state.json").exists():
            return str(base)
        folders = [base / "checkpoints", base / "training" / "checkpoints", base / "training" / ADAPTER_OR_MODEL,
                   base]
    for folder in folders:
        found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()] \
            if folder.is_dir() else []
        if found:
            return str(max(found, key=lambda p: int(p.name.split("-")[-1])))
    if resume_from == "latest":
        return None
    raise ConfigError(f"trainer.resume_from={resume_from!r}: no checkpoint-* folder found there")


def epoch_of(checkpoint: Optional[str]) -> float:
    """The epoch a checkpoint was saved at (0 for none). Read it before training: with save_total_limit
    the trainer may rotate that checkpoint away while it trains."""
    if not checkpoint:
        return 0.0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return float(state.get("epoch") or 0.0)


def finish_folder(model_dir: Path, job: TrainingJob, tokenizer, is_adapter: bool) -> None:
    """What makes a trained folder loadable and checkable on its own: the tokenizer with the chat template
    rcatune renders with (LLaMA-Factory saves its own), the signature of that rendering, a description,
    and what it was trained on."""
    from rcatune.inference import PromptSignature, describe_folder
    from rcatune.lineage import TrainingData

    tokenizer.save_pretrained(model_dir)
    PromptSignature.of(tokenizer, job.system_prompt).save(model_dir)
    describe_folder(model_dir, job.model, is_adapter, job.method.name)
    TrainingData.of(job.train_set + job.val_set).save(model_dir)


def write_metrics(output_dir: Path, metrics: dict[str, float], history: list[dict[str, float]]) -> None:
    (output_dir / "train_metrics.json").write_text(json.dumps({"metrics": metrics, "history": history}, indent=1))


def numeric_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))} for entry in log_history]


def peak_memory_mb(runtime: Runtime) -> float:
    if runtime.on_gpu:
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def model_spec(job: TrainingJob):
    return to_spec("model", job.model)
