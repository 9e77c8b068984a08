"""`trainer=hf`: transformers Trainer + peft (+ bitsandbytes), as a recipe: setup, train, save.

Loss is on the answer tokens only; the validation split is evaluated every epoch; checkpoints go to
`<output>/checkpoints` and `trainer.resume_from` continues a killed run from the newest one. Reports
real-token throughput (padding excluded), wall time and peak memory.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Optional

from rcatune.artifacts import TrainedModel
from rcatune.config import instantiate
from rcatune.config.trainer import HfTrainerConfig
from rcatune.errors import ConfigError
from rcatune.models import model_path
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
from rcatune.training.data import answer_losses, answer_positions, erase_prompt_tokens, weighted_loss
from rcatune.training.methods import parameter_counts
from rcatune.training.objectives import TrainingData

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"
RUN_ID_ENV = "RCATUNE_MLFLOW_RUN_ID"  # rcatune.training.launch sets it for a training process of its own


def _mlflow_callback():
    from transformers import TrainerCallback

    class MlflowCurves(TrainerCallback):
        """Loss, eval loss and learning rate to the active MLflow run, by global step."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            import os

            import mlflow

            wanted = {"loss": "train_loss_step", "eval_loss": "eval_loss", "learning_rate": "learning_rate",
                      "grad_norm": "grad_norm"}
            metrics = {name: float(logs[key]) for key, name in wanted.items() if key in (logs or {})}
            if not metrics:
                return
            if mlflow.active_run() is not None:
                mlflow.log_metrics(metrics, step=state.global_step)
            elif os.environ.get(RUN_ID_ENV):  # a training process of its own: the step's run
                from mlflow.entities import Metric
                from mlflow.tracking import MlflowClient

                now = int(time.time() * 1000)
                MlflowClient().log_batch(os.environ[RUN_ID_ENV], metrics=[
                    Metric(k, v, now, state.global_step) for k, v in metrics.items()])

    return MlflowCurves()


def _trial_callback(trial):
    from transformers import TrainerCallback

    class ReportToTrial(TrainerCallback):
        """A sweep's trial: each epoch's validation loss to the study; TrialPruned when its pruner says stop."""

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics and "eval_loss" in metrics:
                trial.report(float(metrics["eval_loss"]), int(round(state.epoch or 0)))

    return ReportToTrial()


def deepspeed_config(distributed, runtime) -> dict[str, Any]:
    """DeepSpeed's config for `distributed` (a ZeRO strategy). Batch sizes, accumulation, clipping and precision
    are "auto": the Trainer fills them from its own settings, so the two never disagree. On CPU the precision is
    fp32 (no fp16 kernels there) and the Trainer's AdamW stands in for DeepSpeed's compiled optimizers."""
    zero: dict[str, Any] = {"stage": distributed.zero_stage, "contiguous_gradients": True, "overlap_comm": False}
    if distributed.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": runtime.on_gpu}
    if distributed.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # save one whole model, not shards
        if distributed.offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": runtime.on_gpu}
    return {"zero_optimization": zero, "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "bf16": {"enabled": "auto"},
            "fp16": {"enabled": "auto"}, "zero_allow_untested_optimizer": True,
            "zero_force_ds_cpu_optimizer": False, "steps_per_print": 10**9}


def deepspeed_process_group(distributed, runtime) -> None:
    """DeepSpeed's process group, made before the Trainer's settings (FIELD-NOTES: otherwise on CPU every rank
    silently trains on all the data, and ZeRO-3 refuses its batch sizes): gloo on CPU, nccl on GPU."""
    import os

    try:
        import deepspeed
    except ImportError:
        raise ConfigError(f"distributed={distributed.strategy.value} needs DeepSpeed: pip install -c "
                          "constraints.txt deepspeed==0.19.8 (make test installs it)") from None
    from accelerate import PartialState

    backend = distributed.backend or ("nccl" if runtime.on_gpu else "gloo")
    deepspeed.init_distributed(dist_backend=backend)
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    PartialState(backend=backend)


def _pause_callback():
    from transformers import TrainerCallback

    class PauseAfterSave(TrainerCallback):
        """`RCATUNE_PAUSE_AT=training.checkpoint:N` waits once checkpoint N is whole (rcatune.pause)."""

        def on_save(self, args, state, control, **kwargs):
            pause_point("training.checkpoint", state.global_step)

    return PauseAfterSave()


def trainer_class(weighted: bool, prompt_dropout: float = 0.0, fill_id: int = 0, protected=()):
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
            labels = inputs.pop("labels")
            kept = answer_positions(labels)  # logits of the answer's positions only: the prompt's are not read
            outputs = model(**inputs, logits_to_keep=kept)
            accumulated = self.model_accepts_loss_kwargs and num_items_in_batch is not None
            if weighted and weights is not None:
                loss = weighted_loss(outputs.logits, labels, weights, kept)
                if accumulated:
                    # the Trainer then takes the loss as already scaled for gradient accumulation (as the model's
                    # own is, through num_items_in_batch) and sums it over the accumulated batches: a mean of
                    # means needs the division it would otherwise make
                    loss = loss / self.current_gradient_accumulation_steps
            else:  # the plain answer loss, as the model's own computes it, from the answer's logits only
                losses = answer_losses(outputs.logits, labels, kept)
                if accumulated:  # summed over the tokens of all the accumulated batches, as the model's own
                    loss = losses.sum() / num_items_in_batch
                    if self.args.average_tokens_across_devices and self.args.world_size > 1:
                        loss = loss * self.args.world_size  # as Trainer.compute_loss: ranks' gradients are averaged
                else:
                    loss = losses.mean() if losses.numel() else losses.sum()
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


@dataclass
class Prepared:
    """What `setup` made: the Trainer over the model, its data and where it resumes from."""

    trainer: Any
    tokenizer: Any
    base_path: str
    data: TrainingData
    resume: Optional[str]
    start_epoch: float
    trainable: int
    total: int


class HfTrainer:
    """Fine-tune with transformers' Trainer, as a recipe of three parts: `setup` (model, tokenizer, data, method,
    objective), `fit` (train, evaluating each epoch) and `save` (only rank 0 writes). `train` runs them in turn;
    `python -m rcatune.training run` runs them in a process of its own, once per rank under a distributed
    launcher."""

    def __init__(self, config: HfTrainerConfig) -> None:
        self.config = config

    def train(self, job: TrainingJob) -> TrainedModel:
        """Fine-tune the base model on `job.train_set`; evaluate on `job.val_set` each epoch."""
        prepared = self.setup(job)
        return self.save(job, prepared, self.fit(prepared))

    def setup(self, job: TrainingJob) -> Prepared:
        from transformers import set_seed

        cfg, runtime, output_dir = self.config, job.runtime, job.output_dir
        if runtime.is_main:
            output_dir.mkdir(parents=True, exist_ok=True)
        path = model_path(job.model)  # may build the tiny model: before the seed, so a cached one trains the same
        if cfg.distributed.deepspeed and runtime.distributed:
            deepspeed_process_group(cfg.distributed, runtime)
        set_seed(cfg.seed)
        tokenizer = load_tokenizer(job.model, path)
        objective = instantiate(job.objective)
        data = objective.data(job, tokenizer, cfg)
        # the settings before the model: while they live, ZeRO-3 partitions the weights as they load
        args_class, extra = objective.arguments(cfg)
        args = self.arguments(job, len(data.train), args_class, **extra)
        model = load_model(job.model, job.method, path, runtime)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model = job.method.apply(model, job.model, cfg.gradient_checkpointing)
        model.config.use_cache = False  # no KV cache in training; packed rows need it off for their mask
        trainable, total = parameter_counts(model)

        resume = find_checkpoint(cfg.resume_from, output_dir / CHECKPOINTS) if cfg.resume_from else None
        callbacks = [_mlflow_callback()] if runtime.is_main else []
        if job.trial is not None and not runtime.distributed:  # ranks would have to agree to stop: not pruned
            callbacks.append(_trial_callback(job.trial))
        trainer = objective.build_trainer(data, cfg, tokenizer, model, args, callbacks + [_pause_callback()])
        return Prepared(trainer, tokenizer, path, data, resume, epoch_of(resume), trainable, total)

    def fit(self, prepared: Prepared) -> dict[str, float]:
        """Train (from the checkpoint setup found, if any); the figures of the run."""
        trainer = prepared.trainer
        if not trainer.args.use_cpu:
            import torch

            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        outcome = trainer.train(resume_from_checkpoint=prepared.resume)
        wall = time.perf_counter() - started
        evals = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
        eval_loss = evals[-1] if evals else trainer.evaluate()["eval_loss"]
        epochs_run = float(outcome.metrics.get("epoch", self.config.epochs))
        real_tokens = prepared.data.tokens * max(epochs_run - prepared.start_epoch, 0.0)
        return {
            "train_loss": float(outcome.training_loss),
            "eval_loss": float(eval_loss),
            "train_seconds": round(wall, 2),
            "train_tokens_per_second": round(real_tokens / wall, 1) if wall > 0 else 0.0,
            "train_real_tokens": float(real_tokens),
            "train_examples": float(prepared.data.examples),
            "train_rows": float(len(prepared.data.train)),
            "train_truncated": float(prepared.data.truncated),
            "train_without_answer": float(prepared.data.without_answer),
            "trainable_parameters": float(prepared.trainable),
            "total_parameters": float(prepared.total),
            "peak_memory_mb": 0.0,  # set by save, after everything has run
            "epochs": epochs_run,
            "global_steps": float(trainer.state.global_step),
        }

    def save(self, job: TrainingJob, prepared: Prepared, metrics: dict[str, float]) -> TrainedModel:
        """The trained folder (loadable and checkable on its own) and the metrics: written by rank 0 only."""
        trainer, output_dir = prepared.trainer, job.output_dir
        model_dir = output_dir / ADAPTER_OR_MODEL
        is_adapter = hasattr(trainer.model, "peft_config")
        metrics = {**metrics, "peak_memory_mb": peak_memory_mb(job.runtime)}
        history = numeric_history(trainer.state.log_history)
        if self.config.distributed.deepspeed and job.runtime.distributed:
            trainer.save_model(str(model_dir))  # every rank: ZeRO-3 gathers its shards into rank 0's copy
        elif job.runtime.is_main:
            trainer.model.save_pretrained(model_dir)
        if job.runtime.is_main:
            finish_folder(model_dir, job, prepared.tokenizer, is_adapter)
            write_metrics(output_dir, metrics, history)
        return TrainedModel(base_model=prepared.base_path, model_spec=model_spec(job), method=job.method.name,
                            backend=self.config.name, output_dir=str(output_dir), model_dir=str(model_dir),
                            is_adapter=is_adapter, metrics=metrics, history=history, resumed_from=prepared.resume)

    def arguments(self, job: TrainingJob, rows: int, cls=None, **extra: Any):
        """The Trainer's settings from the typed config (`cls`: the objective's settings class, TrainingArguments
        or a subclass; `extra`: what the objective adds or changes)."""
        from transformers import TrainingArguments

        cls = cls or TrainingArguments
        cfg, runtime = self.config, job.runtime
        world = max(1, runtime.world_size)
        steps_per_epoch = math.ceil(rows / (cfg.batch_size * cfg.gradient_accumulation_steps * world))
        distributed = {}
        if world > 1:  # each rank on its share; LoRA with checkpointing needs the unused-parameter search off
            distributed = {"ddp_backend": cfg.distributed.backend or ("nccl" if runtime.on_gpu else "gloo"),
                           "ddp_find_unused_parameters": False}
            if cfg.distributed.deepspeed:  # the process group made by deepspeed_process_group, taken as it is
                distributed = {"deepspeed": deepspeed_config(cfg.distributed, runtime),
                               "accelerator_config": {"use_configured_state": True}}
        values = dict(
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
            prediction_loss_only=True,  # the loss is what evaluation reads: no logits gathered over the set
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
            **distributed,
        )
        return cls(**{**values, **extra})


__all__ = ["CHECKPOINTS", "EpochSeededLengthSampler", "HfTrainer", "Prepared", "trainer_class"]
