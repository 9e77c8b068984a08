"""`trainer=llama_factory`: the same run, trained by LLaMA-Factory (`llamafactory-cli train`) instead of
transformers' Trainer in-process.

rcatune writes LLaMA-Factory's training YAML and `dataset_info.json` from the same config (model,
method, hyper-parameters, template), runs the CLI from its own venv (`make llamafactory`: it pins
transformers <= 5.6) with its log streamed, and returns the same `TrainedModel` as `trainer=hf`, so
evaluation, registration and export do not know which backend trained.

LLaMA-Factory exits 0 after dropping examples it cannot read; here a dropped example, or a count of
examples that differs from what was written, is an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rcatune.artifacts import TrainedModel
from rcatune.config import instantiate
from rcatune.config.method import Quantisation
from rcatune.config.model import ModelConfig
from rcatune.config.trainer import LlamaFactoryTrainerConfig
from rcatune.errors import ConfigError, RcatuneError
from rcatune.formats.llama_factory import write_llama_factory
from rcatune.models import model_path
from rcatune.prompts import render
from rcatune.runtime import Runtime
from rcatune.training.base import (
    ADAPTER_OR_MODEL,
    TrainingJob,
    epoch_of,
    find_checkpoint,
    finish_folder,
    model_spec,
    numeric_history,
    write_metrics,
)
from rcatune.venvs import find_executable

log = logging.getLogger("rcatune")
CLI_ENV = "RCATUNE_LLAMAFACTORY_CLI"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install it with `make llamafactory` (its own venv, .venv-llamafactory)"
TRAIN_SET, VAL_SET = "rcatune_train_alpaca", "rcatune_val_alpaca"
NUM_EXAMPLES = re.compile(r"Num examples\s*=\s*([\d,]+)")
DROPPED = re.compile(r"Dropped invalid example", re.IGNORECASE)


class LlamaFactoryError(RcatuneError):
    """LLaMA-Factory failed, or silently trained on less than it was given."""


def find_cli() -> str:
    """`llamafactory-cli`: $RCATUNE_LLAMAFACTORY_CLI, the project's venv, or PATH."""
    found = find_executable("llamafactory-cli", CLI_ENV, PROJECT_ROOT / ".venv-llamafactory")
    if found:
        return found
    raise LlamaFactoryError(f"trainer=llama_factory: LLaMA-Factory is not installed: {INSTALL_HINT}, or point "
                            f"{CLI_ENV} at a llamafactory-cli")


def _lora(method, model_cfg: ModelConfig) -> dict[str, Any]:
    cfg = method.config
    return {"finetuning_type": "lora", "lora_rank": cfg.rank, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout,
            "lora_target": ",".join(method.targets(model_cfg))}


def _qlora(method, model_cfg: ModelConfig) -> dict[str, Any]:
    cfg = method.config
    settings = {**_lora(method, model_cfg), "quantization_bit": 8 if cfg.quantisation is Quantisation.int8 else 4,
                "quantization_method": "bnb", "double_quantization": cfg.double_quant}
    if cfg.quantisation is Quantisation.fp4:
        settings["quantization_type"] = "fp4"
    return settings


def _freeze(method, model_cfg: ModelConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {"finetuning_type": "freeze", "freeze_trainable_layers": method.config.trainable_layers}
    if method.config.trainable_modules:
        settings["freeze_trainable_modules"] = ",".join(method.config.trainable_modules)
    return settings


# How each rcatune method is spelled in LLaMA-Factory's config, by method name.
METHOD_SETTINGS: dict[str, Callable[[Any, ModelConfig], dict[str, Any]]] = {
    "lora": _lora, "qlora": _qlora, "freeze": _freeze, "full": lambda method, model_cfg: {"finetuning_type": "full"}}


def finetuning_settings(method, model_cfg: ModelConfig) -> dict[str, Any]:
    """LLaMA-Factory's method keys for an rcatune method (a `rcatune.training.methods.Method`)."""
    if method.name not in METHOD_SETTINGS:
        raise LlamaFactoryError(f"method {method.name!r} has no LLaMA-Factory equivalent")
    return METHOD_SETTINGS[method.name](method, model_cfg)


def training_yaml(model_path: str, model_cfg: ModelConfig, method, trainer_cfg: LlamaFactoryTrainerConfig,
                  data_dir: Path, output_dir: Path, runtime: Runtime, resume: str | None = None,
                  objective_stage: str = "sft") -> dict[str, Any]:
    """The LLaMA-Factory `train` config for the same run `trainer=hf` would do (`objective_stage`: its `stage`,
    from the objective: sft today)."""
    config: dict[str, Any] = {
        "model_name_or_path": model_path,
        "trust_remote_code": model_cfg.trust_remote_code,
        "stage": objective_stage, "do_train": True,
        **finetuning_settings(method, model_cfg),
        "dataset": TRAIN_SET, "eval_dataset": VAL_SET, "dataset_dir": str(data_dir),
        "template": trainer_cfg.template_for(model_cfg.family.name),
        "cutoff_len": trainer_cfg.max_length,
        "overwrite_cache": True, "preprocessing_num_workers": 1, "dataloader_num_workers": 0,
        "packing": trainer_cfg.packing, "neat_packing": trainer_cfg.packing,  # no attention across examples
        "output_dir": str(output_dir / ADAPTER_OR_MODEL), "overwrite_output_dir": True,
        "logging_steps": trainer_cfg.logging_steps,
        "save_strategy": "steps" if trainer_cfg.save_steps else "epoch",
        "save_total_limit": trainer_cfg.save_total_limit, "plot_loss": False,
        "per_device_train_batch_size": trainer_cfg.batch_size,
        "per_device_eval_batch_size": trainer_cfg.batch_size,
        "gradient_accumulation_steps": trainer_cfg.gradient_accumulation_steps,
        "learning_rate": trainer_cfg.learning_rate, "num_train_epochs": trainer_cfg.epochs,
        "lr_scheduler_type": trainer_cfg.lr_scheduler.value, "warmup_ratio": trainer_cfg.warmup_ratio,
        "weight_decay": trainer_cfg.weight_decay, "seed": trainer_cfg.seed,
        "gradient_checkpointing": trainer_cfg.gradient_checkpointing,
        # its own switch, on unless disabled: without it trainer.gradient_checkpointing=false changed nothing
        "disable_gradient_checkpointing": not trainer_cfg.gradient_checkpointing,
        "eval_strategy": "epoch", "report_to": "none", "disable_tqdm": not runtime.progress,
        **runtime.mixed_precision(model_cfg.dtype.value),
        "use_cpu": not runtime.on_gpu,
    }
    if trainer_cfg.save_steps:
        config["save_steps"] = trainer_cfg.save_steps
    if resume:
        config["resume_from_checkpoint"] = resume
    return config


def _write_yaml(path: Path, config: dict[str, Any]) -> None:
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def run_cli(cli: str, config_file: Path, log_file: Path, echo: bool = True) -> tuple[int, list[str], float]:
    """Run `llamafactory-cli train` and stream its log; returns (exit code, log lines, its peak memory in MB,
    VmHWM as last read while it logged)."""
    env = {**os.environ, "DISABLE_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1", "WANDB_DISABLED": "true",
           "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    env.pop("MLFLOW_TRACKING_URI", None)  # its Trainer must not log into our runs behind our back
    lines: list[str] = []
    peak = 0.0
    with open(log_file, "w", encoding="utf-8") as handle:
        process = subprocess.Popen([cli, "train", str(config_file)], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            handle.write(line)
            lines.append(line.rstrip("\n"))
            peak = max(peak, _peak_mb(process.pid))
            if echo:
                sys.stdout.write(f"[llamafactory] {line}")
        code = process.wait()
    return code, lines, peak


def _peak_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # exited, or no /proc here
        pass
    return 0.0


def check_log(lines: list[str], train_rows: int) -> None:
    """LLaMA-Factory drops unreadable examples with a warning and exit 0: make that an error."""
    dropped = [line for line in lines if DROPPED.search(line)]
    if dropped:
        raise LlamaFactoryError(f"LLaMA-Factory dropped {len(dropped)} example(s) it could not read, e.g. "
                                f"{dropped[0].strip()[:300]}")
    counts = [int(m.group(1).replace(",", "")) for line in lines for m in [NUM_EXAMPLES.search(line)] if m]
    if counts and counts[0] != train_rows:
        raise LlamaFactoryError(f"LLaMA-Factory trained on {counts[0]} examples, but rcatune wrote {train_rows}: "
                                "some were lost in its preprocessing (see llamafactory.log)")
    if not counts:
        raise LlamaFactoryError("LLaMA-Factory's log never said how many examples it trained on; see llamafactory.log")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def objective_settings(objective) -> dict[str, Any]:
    """LLaMA-Factory's keys for a preference objective, from the same config trainer=hf reads (none for sft)."""
    if objective.name == "dpo":
        return {"pref_beta": objective.beta, "pref_loss": objective.loss_type}
    if objective.name == "kto":
        return {"pref_beta": objective.beta, "kto_chosen_weight": objective.desirable_weight,
                "kto_rejected_weight": objective.undesirable_weight}
    return {}


class LlamaFactoryTrainer:
    """Train with LLaMA-Factory; same inputs and result as `rcatune.training.hf.HfTrainer`."""

    def __init__(self, config: LlamaFactoryTrainerConfig) -> None:
        self.config = config

    @staticmethod
    def _write_data(job: TrainingJob, data_dir: Path) -> tuple[int, dict[str, str]]:
        """The train and validation files for the objective: (rows it must train on, the dataset names)."""
        if job.objective.name == "sft":
            write_llama_factory(data_dir, {"train": [render(e, job.system_prompt) for e in job.train_set],
                                           "val": [render(e, job.system_prompt) for e in job.val_set]})
            return len(job.train_set), {"dataset": TRAIN_SET, "eval_dataset": VAL_SET}
        from rcatune.preferences import PreferenceWriter, lf_dataset_name

        objective = instantiate(job.objective)
        objective.require_rows(objective.rows(job.train_set, job.system_prompt),
                               objective.rows(job.val_set, job.system_prompt))
        writer = PreferenceWriter(data_dir, tuple(job.objective.sources))
        for split, examples in (("train", job.train_set), ("val", job.val_set)):
            writer.begin(split)
            for example in examples:
                writer.add(split, example, render(example, job.system_prompt))
            writer.end(split)
        writer.finish()
        kind = job.objective.name
        rows = writer.counts["train"]["pairs" if kind == "dpo" else "kto_rows"]
        return rows, {"dataset": lf_dataset_name("train", kind), "eval_dataset": lf_dataset_name("val", kind)}

    def train(self, job: TrainingJob) -> TrainedModel:
        from rcatune.models.loading import load_tokenizer
        from rcatune.training.data import tokenize

        cfg, output_dir = self.config, job.output_dir
        if job.objective.name not in ("sft", "dpo", "kto"):
            raise ConfigError(f"objective={job.objective.name} is not wired to trainer=llama_factory: use trainer=hf")
        cli = find_cli()
        if cfg.root_cause_weight != 1.0 or cfg.lead_weight not in (None, 1.0):
            log.warning("trainer.root_cause_weight=%g and trainer.lead_weight=%s are not available with "
                        "trainer=llama_factory: it weighs every answer token the same (use trainer=hf to weigh the "
                        "root cause)", cfg.root_cause_weight, cfg.lead_weight)
        if cfg.prompt_dropout:
            log.warning("trainer.prompt_dropout=%g is not available with trainer=llama_factory: it trains on every "
                        "prompt token as written (use trainer=hf for word dropout)", cfg.prompt_dropout)
        output_dir.mkdir(parents=True, exist_ok=True)
        base_path = model_path(job.model)
        data_dir = output_dir / "llamafactory_data"
        rows, datasets = self._write_data(job, data_dir)
        # Its checkpoints live in its output folder; resolve 'latest' and read the epoch before it trains,
        # since save_total_limit may rotate that checkpoint away.
        resume = find_checkpoint(cfg.resume_from, output_dir / ADAPTER_OR_MODEL) if cfg.resume_from else None
        start_epoch = epoch_of(resume)
        config = training_yaml(base_path, job.model, job.method, cfg, data_dir, output_dir, job.runtime, resume,
                               job.objective.stage)
        config.update(datasets, **objective_settings(job.objective))
        config_file = output_dir / "llamafactory_train.yaml"
        _write_yaml(config_file, config)
        log.info("training with LLaMA-Factory: %s train %s", cli, config_file)
        started = time.perf_counter()
        code, lines, peak_mb = run_cli(cli, config_file, output_dir / "llamafactory.log", echo=job.runtime.progress)
        wall = time.perf_counter() - started
        if code != 0:
            last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
            raise LlamaFactoryError(f"llamafactory-cli train exited with {code} ({last[:300]}); its whole log: "
                                    f"{output_dir / 'llamafactory.log'}")
        check_log(lines, rows)
        model_dir = output_dir / ADAPTER_OR_MODEL
        results = _read_json(model_dir / "all_results.json")
        state = _read_json(model_dir / "trainer_state.json")
        history = numeric_history(state.get("log_history", []))
        # Real tokens counted the way trainer=hf counts them (the same chat template and cut), so the two
        # backends' throughput compares like for like.
        tokenizer = load_tokenizer(job.model, base_path)
        if job.objective.name == "sft":
            real = tokenize(job.train_set, tokenizer, job.system_prompt, cfg.max_length).tokens
        else:
            objective = instantiate(job.objective)
            real = objective.answer_tokens(objective.rows(job.train_set, job.system_prompt), tokenizer)
        epochs = float(results.get("epoch", cfg.epochs))
        trained_epochs = epochs - start_epoch
        train_seconds = float(results.get("train_runtime", wall))
        metrics = {
            "train_loss": float(results.get("train_loss", float("nan"))),
            "eval_loss": float(results.get("eval_loss", float("nan"))),
            "train_seconds": round(train_seconds, 2),
            "train_wall_seconds": round(wall, 2),  # with LLaMA-Factory's start-up and preprocessing
            "train_tokens_per_second": round(real * trained_epochs / train_seconds, 1) if train_seconds > 0
            else 0.0,
            "train_real_tokens": float(real * trained_epochs),
            "train_examples": float(len(job.train_set)),
            "peak_memory_mb": round(peak_mb or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "epochs": epochs,
            "global_steps": float(state.get("global_step", 0)),
        }
        write_metrics(output_dir, metrics, history)
        is_adapter = (model_dir / "adapter_config.json").exists()
        if not is_adapter and not (model_dir / "config.json").exists():
            raise LlamaFactoryError(f"LLaMA-Factory finished but left no model in {model_dir}")
        finish_folder(model_dir, job, tokenizer, is_adapter)
        return TrainedModel(base_model=base_path, model_spec=model_spec(job), method=job.method.name,
                            backend=cfg.name, output_dir=str(output_dir), model_dir=str(model_dir),
                            is_adapter=is_adapter, metrics=metrics, history=history, resumed_from=resume)
