"""`trainer=hf`: transformers Trainer + peft (+ bitsandbytes), as a recipe: setup, train, save.

Loss is on the answer tokens only; the validation split is evaluated every epoch; checkpoints go to
`<output>/checkpoints` and `trainer.resume_from` continues a killed run from the newest one. Reports
real-token throughput (padding excluded), wall time and peak memory.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field

from rcatune.config.schema import ModelConfig, TrainerConfig
from rcatune.errors import ConfigError
from rcatune.models.loading import load_model, load_tokenizer, resolve_model_path
from rcatune.schema import TrainingExample
from rcatune.training.data import PadCollator, tokenize
from rcatune.training.methods import apply_method, parameter_counts
from rcatune.training.packing import pack

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
ADAPTER_OR_MODEL = "model"


class TrainResult(BaseModel):
    """What a training run produced and how it went."""

    base_model: str
    method: str
    output_dir: str
    model_dir: str  # the adapter (LoRA/QLoRA) or full weights, with the tokenizer
    is_adapter: bool
    metrics: dict[str, float]
    history: list[dict[str, float]] = Field(default_factory=list)
    resumed_from: Optional[str] = None


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
        folders = [base / CHECKPOINTS, base / "training" / CHECKPOINTS, base / "training" / ADAPTER_OR_MODEL, base]
    for folder in folders:
        found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()] \
            if folder.is_dir() else []
        if found:
            return str(max(found, key=lambda p: int(p.name.split("-")[-1])))
    if resume_from == "latest":
        return None
    raise ConfigError(f"trainer.resume_from={resume_from!r}: no checkpoint-* folder found there")


def _mlflow_callback():
    from transformers import TrainerCallback

    class MlflowCurves(TrainerCallback):
        """Loss, eval loss and learning rate to the active MLflow run, by global step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            import mlflow

            if mlflow.active_run() is None or not logs:
                return
            wanted = {"loss": "train_loss_step", "eval_loss": "eval_loss", "learning_rate": "learning_rate",
                      "grad_norm": "grad_norm"}
            metrics = {name: float(logs[key]) for key, name in wanted.items() if key in logs}
            if metrics:
                mlflow.log_metrics(metrics, step=state.global_step)

    return MlflowCurves()


def train(train_set: list[TrainingExample], val_set: list[TrainingExample], model_cfg: ModelConfig, method: Any,
          trainer_cfg: TrainerConfig, output_dir: Path, system_prompt: str, progress: bool = True) -> TrainResult:
    """Fine-tune the base model on `train_set`; evaluate on `val_set` each epoch."""
    import torch
    from transformers import Trainer, set_seed

    set_seed(trainer_cfg.seed)
    on_gpu = torch.cuda.is_available()
    output_dir.mkdir(parents=True, exist_ok=True)
    path = resolve_model_path(model_cfg)
    tokenizer = load_tokenizer(model_cfg, path)
    model = load_model(model_cfg, method, path, on_gpu)
    if trainer_cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = apply_method(model, model_cfg, method, trainer_cfg.gradient_checkpointing)
    model.config.use_cache = False  # no KV cache in training; packed rows need it off for their mask
    trainable, total = parameter_counts(model)

    train_tokens = tokenize(train_set, tokenizer, system_prompt, trainer_cfg.max_length)
    val_tokens = tokenize(val_set, tokenizer, system_prompt, trainer_cfg.max_length)
    resume = find_checkpoint(trainer_cfg.resume_from, output_dir / CHECKPOINTS) if trainer_cfg.resume_from else None
    # Read it now: with save_total_limit the Trainer may rotate the checkpoint away while it trains.
    start_epoch = epoch_of(resume)
    train_features = pack(train_tokens.features, trainer_cfg.max_length) if trainer_cfg.packing \
        else train_tokens.features
    args = _arguments(trainer_cfg, model_cfg, output_dir, len(train_features), on_gpu, progress)
    collator = PadCollator(tokenizer.pad_token_id, packed=trainer_cfg.packing)
    trainer = Trainer(model=model, args=args, train_dataset=train_features, eval_dataset=val_tokens.features,
                      data_collator=collator, callbacks=[_mlflow_callback()])
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    evals = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    eval_loss = evals[-1] if evals else trainer.evaluate()["eval_loss"]

    model_dir = output_dir / ADAPTER_OR_MODEL
    trainer.model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    epochs_run = float(outcome.metrics.get("epoch", trainer_cfg.epochs))
    real_tokens = train_tokens.tokens * max(epochs_run - start_epoch, 0.0)
    metrics = {
        "train_loss": float(outcome.training_loss),
        "eval_loss": float(eval_loss),
        "train_seconds": round(wall, 2),
        "train_tokens_per_second": round(real_tokens / wall, 1) if wall > 0 else 0.0,
        "train_real_tokens": float(real_tokens),
        "train_examples": float(len(train_set)),
        "train_rows": float(len(train_features)),
        "train_truncated": float(train_tokens.truncated),
        "trainable_parameters": float(trainable),
        "total_parameters": float(total),
        "peak_memory_mb": _peak_memory_mb(on_gpu),
        "epochs": epochs_run,
        "global_steps": float(trainer.state.global_step),
    }
    history = [{k: float(v) for k, v in entry.items() if isinstance(v, (int, float))}
               for entry in trainer.state.log_history]
    (output_dir / "train_metrics.json").write_text(json.dumps({"metrics": metrics, "history": history}, indent=1))
    return TrainResult(base_model=path, method=getattr(method, "name", "?"), output_dir=str(output_dir),
                       model_dir=str(model_dir), is_adapter=hasattr(trainer.model, "peft_config"),
                       metrics=metrics, history=history, resumed_from=resume)


def _arguments(trainer_cfg: TrainerConfig, model_cfg: ModelConfig, output_dir: Path, rows: int, on_gpu: bool,
               progress: bool):
    """The Trainer's settings from the typed config."""
    from transformers import TrainingArguments

    rows_per_step = trainer_cfg.batch_size * trainer_cfg.gradient_accumulation_steps
    steps_per_epoch = math.ceil(rows / rows_per_step)
    return TrainingArguments(
        output_dir=str(output_dir / CHECKPOINTS),
        num_train_epochs=trainer_cfg.epochs,
        per_device_train_batch_size=trainer_cfg.batch_size,
        per_device_eval_batch_size=trainer_cfg.batch_size,
        gradient_accumulation_steps=trainer_cfg.gradient_accumulation_steps,
        learning_rate=trainer_cfg.learning_rate,
        lr_scheduler_type=trainer_cfg.lr_scheduler.value,
        warmup_steps=math.ceil(trainer_cfg.warmup_ratio * steps_per_epoch * trainer_cfg.epochs),
        weight_decay=trainer_cfg.weight_decay,
        logging_steps=trainer_cfg.logging_steps,
        eval_strategy="epoch",
        save_strategy="steps" if trainer_cfg.save_steps else "epoch",
        save_steps=trainer_cfg.save_steps or 500,
        save_total_limit=trainer_cfg.save_total_limit,
        seed=trainer_cfg.seed,
        use_cpu=not on_gpu,
        bf16=on_gpu and model_cfg.dtype.value == "bfloat16",
        fp16=on_gpu and model_cfg.dtype.value == "float16",
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
        # packed rows vary in length too (short tails, rows nothing else fitted into): group them as well
        train_sampling_strategy="group_by_length" if trainer_cfg.group_by_length else "random",
    )


def epoch_of(checkpoint: Optional[str]) -> float:
    """The epoch a checkpoint was saved at (0 for none)."""
    if not checkpoint:
        return 0.0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return float(state.get("epoch") or 0.0)


def _peak_memory_mb(on_gpu: bool) -> float:
    if on_gpu:
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
