"""`trainer=hf`: transformers Trainer + peft (+ bitsandbytes), as a recipe: setup, train, save.

Loss is on the answer tokens only; the validation split is evaluated every epoch; checkpoints go to
`<output>/checkpoints` and `trainer.resume_from` continues a killed run from the newest one. Reports
real-token throughput (padding excluded), wall time and peak memory.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from rcatune.artifacts import TrainedModel
from rcatune.config.trainer import HfTrainerConfig
from rcatune.models.loading import load_model, load_tokenizer
from rcatune.pause import pause_point
from rcatune.progress import interactive
from rcatune.training.base import (
    ADAPTER_OR_MODEL,
    TrainingJob,
    epoch_of,
    find_checkpoint,
    finish_folder,
    model_spec,
    numeric_history,
    peak_memory_mb,
    write_metrics,
)
from rcatune.training.data import PadCollator, answer_positions, erase_prompt_tokens, tokenize, weighted_loss
from rcatune.training.methods import parameter_counts
from rcatune.training.packing import pack

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


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


def _pause_callback():
    from transformers import TrainerCallback

    class PauseAfterSave(TrainerCallback):
        """`RCATUNE_PAUSE_AT=training.checkpoint:N` waits once checkpoint N is whole (rcatune.pause)."""

        def on_save(self, args, state, control, **kwargs):
            pause_point("training.checkpoint", state.global_step)

    return PauseAfterSave()


def _trainer_class(weighted: bool, prompt_dropout: float = 0.0, fill_id: int = 0, protected=()):
    """transformers' Trainer with its random streams made resumable, and, where asked, a loss that weighs each
    answer token (trainer.root_cause_weight, trainer.lead_weight) and prompt tokens erased in training batches
    (trainer.prompt_dropout).

    A run resumed from any checkpoint draws what the run never killed drew: the length-grouped order of each
    epoch comes from a generator seeded by (seed, epoch), word dropout from one seeded by (seed, step,
    micro-batch), and evaluation leaves the global random state as it found it (its data loader draws from it,
    so the epoch after an evaluation used to start from another state than a run resumed at that epoch)."""
    import torch
    from transformers import Trainer

    protected = torch.tensor(list(protected), dtype=torch.long)  # once, not per batch

    class RcaTrainer(Trainer):
        _dropout_at = (-1, 0)  # (global step, micro-batch) of the last erased batch

        def _get_train_sampler(self, train_dataset=None):
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return EpochSeededLengthSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                            dataset, self.args.seed)

        def evaluate(self, *args, **kwargs):
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                return super().evaluate(*args, **kwargs)

        def _dropout_generator(self, device) -> "torch.Generator":
            step, micro = self._dropout_at
            at = (self.state.global_step, micro + 1 if step == self.state.global_step else 0)
            self._dropout_at = at
            generator = torch.Generator(device=device)
            generator.manual_seed(self.args.seed * 1_000_003 + at[0] * 1_009 + at[1])
            return generator

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if prompt_dropout and model.training:
                ids = inputs["input_ids"]
                inputs["input_ids"] = erase_prompt_tokens(ids, inputs["labels"], prompt_dropout, fill_id, protected,
                                                          self._dropout_generator(ids.device))
            weights = inputs.pop("loss_weights", None)
            if not weighted or weights is None:  # unweighted, or evaluation batches: the plain answer loss
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            kept = answer_positions(labels)  # logits of the answer's positions only: the prompt's are not read
            outputs = model(**inputs, logits_to_keep=kept)
            loss = weighted_loss(outputs.logits, labels, weights, kept)
            if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
                # the Trainer then takes the loss as already scaled for gradient accumulation (as the model's
                # own is, through num_items_in_batch) and sums it over the accumulated batches: a mean of
                # means needs the division it would otherwise make
                loss = loss / self.current_gradient_accumulation_steps
            return (loss, outputs) if return_outputs else loss

    return RcaTrainer


def EpochSeededLengthSampler(batch_size: int, dataset, seed: int):
    """transformers' LengthGroupedSampler drawing from its own generator, reseeded with (seed, epoch) when the
    Trainer starts an epoch (`set_epoch`), instead of from the global random state."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class Sampler(LengthGroupedSampler):
        def set_epoch(self, epoch: int) -> None:
            self.generator.manual_seed(seed * 7_919 + int(epoch))

    sampler = Sampler(batch_size, dataset=dataset, generator=torch.Generator())
    sampler.set_epoch(0)
    return sampler


class HfTrainer:
    """Fine-tune in-process with transformers' Trainer."""

    def __init__(self, config: HfTrainerConfig) -> None:
        self.config = config

    def train(self, job: TrainingJob) -> TrainedModel:
        """Fine-tune the base model on `job.train_set`; evaluate on `job.val_set` each epoch."""
        from transformers import set_seed

        cfg, runtime, output_dir = self.config, job.runtime, job.output_dir
        set_seed(cfg.seed)
        output_dir.mkdir(parents=True, exist_ok=True)
        path = job.model.resolve_path()
        tokenizer = load_tokenizer(job.model, path)
        model = load_model(job.model, job.method, path, runtime)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model = job.method.apply(model, job.model, cfg.gradient_checkpointing)
        model.config.use_cache = False  # no KV cache in training; packed rows need it off for their mask
        trainable, total = parameter_counts(model)

        train_tokens = tokenize(job.train_set, tokenizer, job.system_prompt, cfg.max_length, cfg.root_cause_weight,
                                cfg.lead_weight)
        val_tokens = tokenize(job.val_set, tokenizer, job.system_prompt, cfg.max_length)  # eval loss: unweighted
        resume = find_checkpoint(cfg.resume_from, output_dir / CHECKPOINTS) if cfg.resume_from else None
        start_epoch = epoch_of(resume)
        train_features = pack(train_tokens.features, cfg.max_length) if cfg.packing else train_tokens.features
        trainer = _trainer_class("loss_weights" in train_tokens.features[0], cfg.prompt_dropout,
                                 tokenizer.pad_token_id, tokenizer.all_special_ids)(
                          model=model, args=self.arguments(job, len(train_features)), train_dataset=train_features,
                          eval_dataset=val_tokens.features,
                          data_collator=PadCollator(tokenizer.pad_token_id, packed=cfg.packing),
                          callbacks=[_mlflow_callback(), _pause_callback()])
        if runtime.on_gpu:
            import torch

            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        outcome = trainer.train(resume_from_checkpoint=resume)
        wall = time.perf_counter() - started
        evals = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
        eval_loss = evals[-1] if evals else trainer.evaluate()["eval_loss"]

        model_dir = output_dir / ADAPTER_OR_MODEL
        is_adapter = hasattr(trainer.model, "peft_config")
        trainer.model.save_pretrained(model_dir)
        finish_folder(model_dir, job, tokenizer, is_adapter)
        epochs_run = float(outcome.metrics.get("epoch", cfg.epochs))
        real_tokens = train_tokens.tokens * max(epochs_run - start_epoch, 0.0)
        metrics = {
            "train_loss": float(outcome.training_loss),
            "eval_loss": float(eval_loss),
            "train_seconds": round(wall, 2),
            "train_tokens_per_second": round(real_tokens / wall, 1) if wall > 0 else 0.0,
            "train_real_tokens": float(real_tokens),
            "train_examples": float(len(job.train_set)),
            "train_rows": float(len(train_features)),
            "train_truncated": float(train_tokens.truncated),
            "train_without_answer": float(train_tokens.without_answer),
            "trainable_parameters": float(trainable),
            "total_parameters": float(total),
            "peak_memory_mb": peak_memory_mb(runtime),
            "epochs": epochs_run,
            "global_steps": float(trainer.state.global_step),
        }
        history = numeric_history(trainer.state.log_history)
        write_metrics(output_dir, metrics, history)
        return TrainedModel(base_model=path, model_spec=model_spec(job), method=job.method.name, backend=cfg.name,
                            output_dir=str(output_dir), model_dir=str(model_dir), is_adapter=is_adapter,
                            metrics=metrics, history=history, resumed_from=resume)

    def arguments(self, job: TrainingJob, rows: int):
        """The Trainer's settings from the typed config."""
        from transformers import TrainingArguments

        cfg, runtime = self.config, job.runtime
        steps_per_epoch = math.ceil(rows / (cfg.batch_size * cfg.gradient_accumulation_steps))
        return TrainingArguments(
            output_dir=str(job.output_dir / CHECKPOINTS),
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler.value,
            warmup_steps=math.ceil(cfg.warmup_ratio * steps_per_epoch * cfg.epochs),
            weight_decay=cfg.weight_decay,
            logging_steps=cfg.logging_steps,
            eval_strategy="epoch",
            save_strategy="steps" if cfg.save_steps else "epoch",
            save_steps=cfg.save_steps or 500,
            save_total_limit=cfg.save_total_limit,
            seed=cfg.seed,
            use_cpu=not runtime.on_gpu,
            **runtime.mixed_precision(job.model.dtype.value),
            report_to=[],
            # a live bar on a terminal; in a file or pipe the Trainer's plain log lines say enough
            disable_tqdm=not (runtime.progress and interactive()),
            dataloader_num_workers=0,
            remove_unused_columns=False,
            # packed rows vary in length too (short tails, rows nothing else fitted into): group them as well
            train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        )


__all__ = ["CHECKPOINTS", "HfTrainer", "Path"]
