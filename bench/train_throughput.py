"""Training throughput and memory: rcatune (trainer=hf), rcatune packed, LLaMA-Factory as shipped (gradient
checkpointing on) and with gradient checkpointing off, and a plain
transformers + peft baseline that pads every batch to the max length, on the same model, data,
hyper-parameters and sequence length. Runs interleave (A B C D A B C D ...; the packed row and the baseline, which
no goal reads, in the first round only); each run is a fresh process.

    python bench/train_throughput.py [--smoke] [--repeats 2] [--method lora|full]

Figures per run: real (non-padding) training tokens per second, model FLOPs utilisation (MFU: PaLM's formula
against this machine's fp32 matmul peak, measured here per thread count), training-loop seconds, process wall
seconds, peak RSS, and the final eval loss on the same validation set measured the same way for all
(mean negative log-likelihood of the answer tokens), so speed is never bought with quality.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS,
    interleave,
    llamafactory_missing,
    markdown_table,
    matmul_peak_gflops,
    medians,
    peak_rss_mb,
    ratios,
    run_worker,
    tiny_inputs,
    training_flops,
    write,
)

CONTENDERS = ["rcatune", "rcatune_packed", "llamafactory", "llamafactory_no_gc", "baseline"]
# reference rows no goal reads, run in the first round only: the plain baseline alone took 175 s of each round's
# 394 (`--repeats-all` runs them every round)
ONCE = frozenset({"rcatune_packed", "baseline"})
KEYS = ["tokens_per_second", "mfu", "train_seconds", "process_wall_seconds", "peak_rss_mb", "eval_loss"]
SYSTEM = "You are an SRE assistant."


def sizes(smoke: bool) -> dict:
    if smoke:
        return {"n_train": 8, "n_val": 4, "hidden": 64, "intermediate": 128, "layers": 2, "max_length": 1024,
                "batch_size": 4, "epochs": 1}
    return {"n_train": 96, "n_val": 16, "hidden": 256, "intermediate": 768, "layers": 4, "max_length": 2048,
            "batch_size": 4, "epochs": 1}


# ----------------------------------------------------------------------------------------------- workers
def _configs(spec: dict, packing: bool = False):
    from rcatune.config import instantiate
    from rcatune.config.method import FullMethodConfig, LoraMethodConfig
    from rcatune.config.model import Dtype, FamilyConfig, ModelConfig
    from rcatune.config.trainer import HfTrainerConfig

    family = FamilyConfig(name="tiny", chat_template="chatml", lora_target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = ModelConfig(name_or_path=spec["model_dir"], family=family, context_length=spec["max_length"],
                        dtype=Dtype.float32)
    method = LoraMethodConfig(rank=16, alpha=32, dropout=0.0) if spec["method"] == "lora" else FullMethodConfig()
    trainer = HfTrainerConfig(learning_rate=spec["lr"], epochs=spec["epochs"], batch_size=spec["batch_size"],
                              gradient_accumulation_steps=1, max_length=spec["max_length"],
                              gradient_checkpointing=False, group_by_length=True, packing=packing, logging_steps=5,
                              warmup_ratio=0.0, seed=spec["seed"])
    return model, instantiate(method), trainer


def _job(spec: dict, out: Path):
    from rcatune.runtime import Runtime
    from rcatune.training import TrainingJob

    model, method, trainer = _configs(spec)
    train_set, val_set = _examples(spec)
    return TrainingJob(train_set, val_set, model, method, SYSTEM, out, Runtime(device="cpu", progress=False))


def _examples(spec: dict):
    from rcatune.schema import TrainingExample

    rows = [TrainingExample.model_validate_json(line) for line in Path(spec["data"]).read_text().splitlines()]
    return rows[:spec["n_train"]], rows[spec["n_train"]:spec["n_train"] + spec["n_val"]]


def answer_loss(spec: dict, trained_dir: str, is_adapter: bool) -> float:
    """Mean NLL of the answer tokens on the validation set: one yardstick for every contender."""
    from rcatune.evaluation.evaluate import perplexity
    from rcatune.inference import LoadedModel
    from rcatune.models.loading import load_model, load_tokenizer
    from rcatune.runtime import Runtime

    model_cfg, _, _ = _configs(spec)
    _, val = _examples(spec)
    cpu = Runtime(device="cpu", progress=False)
    if is_adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_model(model_cfg, None, spec["model_dir"], cpu), trained_dir)
    else:
        model = load_model(model_cfg, None, trained_dir, cpu)
    # the same tokenizer and template for every contender (the baseline saves none of its own)
    loaded = LoadedModel(model.eval(), load_tokenizer(model_cfg, spec["model_dir"]), "contender", None, cpu)
    return round(math.log(perplexity(loaded, val, SYSTEM, spec["max_length"])), 4)


def work_rcatune(spec: dict, out: Path, packing: bool) -> dict:
    from rcatune.training.hf import HfTrainer

    _, _, trainer = _configs(spec, packing)
    result = HfTrainer(trainer).train(_job(spec, out))
    m = result.metrics
    peak = peak_rss_mb()  # before the shared eval loads a second model
    return {"tokens_per_second": m["train_tokens_per_second"], "train_seconds": m["train_seconds"],
            "real_tokens": m["train_real_tokens"], "rows": m["train_rows"], "peak_rss_mb": peak,
            "eval_loss": answer_loss(spec, result.model_dir, result.is_adapter)}


def work_llamafactory(spec: dict, out: Path, checkpointing: bool) -> dict:
    """LLaMA-Factory as shipped (`checkpointing`: its default, gradient checkpointing on) or with it off."""
    from dataclasses import asdict

    from rcatune.config.trainer import LlamaFactoryTrainerConfig
    from rcatune.training.llama_factory import LlamaFactoryTrainer

    _, _, hf = _configs(spec)
    shared = {k: v for k, v in asdict(hf).items() if k not in ("_target_", "name", "distributed")}  # one process
    shared["gradient_checkpointing"] = checkpointing
    result = LlamaFactoryTrainer(LlamaFactoryTrainerConfig(**shared)).train(_job(spec, out))
    m = result.metrics
    return {"tokens_per_second": m["train_tokens_per_second"], "train_seconds": m["train_seconds"],
            "real_tokens": m["train_real_tokens"], "peak_rss_mb": m["peak_memory_mb"],  # the CLI process's own
            "eval_loss": answer_loss(spec, result.model_dir, result.is_adapter)}


def work_baseline(spec: dict, out: Path) -> dict:
    """What a notebook does: tokenize the whole chat, pad every row to max_length, labels = inputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    from rcatune.models.loading import load_tokenizer
    from rcatune.prompts import render, to_messages

    set_seed(spec["seed"])
    model_cfg, _, _ = _configs(spec)
    tokenizer = load_tokenizer(model_cfg, spec["model_dir"])
    train_set, val_set = _examples(spec)

    def encode(examples):
        texts = [tokenizer.apply_chat_template(to_messages(render(e, SYSTEM)), tokenize=False) for e in examples]
        batch = tokenizer(texts, padding="max_length", truncation=True, max_length=spec["max_length"])
        rows = []
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True):
            labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
            rows.append({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                         "labels": torch.tensor(labels)})
        return rows

    train_rows, val_rows = encode(train_set), encode(val_set)
    real = sum(int(r["attention_mask"].sum()) for r in train_rows) * spec["epochs"]
    model = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32)
    if spec["method"] == "lora":
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    args = TrainingArguments(output_dir=str(out / "checkpoints"), num_train_epochs=spec["epochs"],
                             per_device_train_batch_size=spec["batch_size"],
                             per_device_eval_batch_size=spec["batch_size"],
                             learning_rate=spec["lr"], lr_scheduler_type="cosine", logging_steps=5,
                             eval_strategy="epoch", save_strategy="epoch", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=spec["seed"], dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, eval_dataset=val_rows)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    trainer.model.save_pretrained(out / "model")
    return {"tokens_per_second": round(real / seconds, 1), "train_seconds": round(seconds, 2), "real_tokens": real,
            "padded_tokens": len(train_rows) * spec["max_length"] * spec["epochs"], "peak_rss_mb": peak,
            "eval_loss": answer_loss(spec, str(out / "model"), spec["method"] == "lora")}


def worker(name: str, spec_file: Path, out: Path) -> None:
    spec = json.loads(spec_file.read_text())
    os.environ["RCATUNE_HOME"] = spec["state"]
    from rcatune.state import configure_environment

    configure_environment()
    out.mkdir(parents=True, exist_ok=True)
    if name in ("rcatune", "rcatune_packed"):
        figures = work_rcatune(spec, out, packing=name == "rcatune_packed")
    elif name in ("llamafactory", "llamafactory_no_gc"):
        figures = work_llamafactory(spec, out, checkpointing=name == "llamafactory")
    else:
        figures = work_baseline(spec, out)
    print(json.dumps(figures))


# ----------------------------------------------------------------------------------------------- main
def prepare(work: Path, size: dict, method: str, seed: int = 7) -> Path:
    """The shared inputs: sessions as JSONL and the tiny Llama folder every contender loads."""
    data, model_dir = tiny_inputs(work, size["n_train"] + size["n_val"], seed, hidden_size=size["hidden"],
                                  intermediate_size=size["intermediate"], num_layers=size["layers"],
                                  context_length=size["max_length"])
    spec = {**size, "method": method, "lr": 2e-4 if method == "lora" else 1e-3, "seed": 42, "data": str(data),
            "model_dir": str(model_dir), "state": str(work / "state")}
    spec_file = work / "spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    return spec_file


def row_lengths(spec_file: Path) -> list[int]:
    """Real tokens of each training row (chat template, cut at max length), counted once for every contender."""
    from rcatune.models.loading import load_tokenizer
    from rcatune.prompts import render, to_messages

    spec = json.loads(spec_file.read_text())
    model_cfg, _, _ = _configs(spec)
    tokenizer = load_tokenizer(model_cfg, spec["model_dir"])
    train_set, _ = _examples(spec)
    texts = [tokenizer.apply_chat_template(to_messages(render(e, SYSTEM)), tokenize=False) for e in train_set]
    return [min(len(ids), spec["max_length"]) for ids in tokenizer(texts)["input_ids"]]


def available(contenders: list[str]) -> tuple[list[str], dict[str, str]]:
    missing = llamafactory_missing()
    skipped = {c: missing for c in contenders if missing and c.startswith("llamafactory")}
    return [c for c in contenders if c not in skipped], skipped


def _once_note(contenders: list[str], once: frozenset[str], repeats: int) -> str:
    ran_once = sorted(c for c in contenders if c in once)
    return f", {' and '.join(ran_once)} once" if repeats > 1 and ran_once else ""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round (CI)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 2; 1 with --smoke)")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--repeats-all", action="store_true",
                        help=f"run {', '.join(sorted(ONCE))} every round too (default: the first round only)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.spec, args.run_dir)
        return {}
    size = sizes(args.smoke)
    repeats = args.repeats or (1 if args.smoke else 2)
    work = args.out / ("train_smoke.work" if args.smoke else "train.work")
    work.mkdir(parents=True, exist_ok=True)
    spec_file = prepare(work, size, args.method)
    contenders, skipped = available(args.contenders.split(","))
    print(f"training throughput: {contenders} x {repeats} rounds, {size}", flush=True)

    def measure(name: str, round_: int) -> dict:
        return run_worker(Path(__file__), ["--worker", name, "--spec", str(spec_file),
                                           "--run-dir", str(work / f"{name}-{round_}")], state=work / "state")

    spec = json.loads(spec_file.read_text())
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    peaks = {n: matmul_peak_gflops(n) for n in sorted({1, threads, os.cpu_count() or 1})}
    flops = training_flops(Path(spec["model_dir"]), row_lengths(spec_file), full=args.method == "full")
    per_token = flops["flops_per_epoch"] / flops["tokens"]
    print(f"fp32 matmul peak GFLOP/s by threads: {peaks}; model FLOPs per real token {per_token:,.0f}", flush=True)

    def measured(name: str, round_: int) -> dict:
        figures = measure(name, round_)
        figures["mfu"] = round(figures["tokens_per_second"] * per_token / (peaks[threads] * 1e9), 4)
        return figures

    once = frozenset() if args.repeats_all else ONCE
    runs = interleave(contenders, repeats, measured, once=once)
    per = medians(runs, KEYS)
    result = {"inputs": {**size, "method": args.method, "repeats": repeats, "contenders": contenders,
                         "once": sorted(once & set(contenders)),
                         "skipped": skipped, "threads": threads},
              "matmul_peak_gflops_by_threads": peaks, "model_flops": {**flops, "per_real_token": round(per_token)},
              "runs": runs, "medians": per,
              "ratios": {**ratios(per, "rcatune", "tokens_per_second"),
                         **ratios(per, "rcatune_packed", "tokens_per_second")}}
    rows = [[name, f.get("tokens_per_second"), f"{100 * f.get('mfu', 0):.1f}%", f.get("train_seconds"),
             f.get("process_wall_seconds"), f.get("peak_rss_mb"), f.get("eval_loss")] for name, f in per.items()]
    table = [f"Training throughput ({args.method}, {size['n_train']} examples, max length {size['max_length']}, "
             f"hidden {size['hidden']} x {size['layers']} layers; medians of {repeats}"
             f"{_once_note(contenders, once, repeats)})", ""]
    table += markdown_table(["contender", "real tokens/s", "MFU", "train s", "process s", "peak RSS MB", "eval loss"],
                            rows)
    table += ["", "Ratios of real tokens/s: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()),
              "", f"MFU: model FLOPs ({flops['formula']}; {per_token:,.0f} per real token) per second over this "
                  f"machine's fp32 matmul peak with {threads} thread(s), {peaks[threads]:,.1f} GFLOP/s (measured "
                  f"here, 1024-square products; by threads: "
                  + ", ".join(f"{n}: {g:,.1f}" for n, g in peaks.items()) + "). llamafactory is LLaMA-Factory as "
                  "shipped (gradient checkpointing on, its default); llamafactory_no_gc with it off."]
    if skipped:
        table += ["", f"Skipped: {skipped}"]
    name = "train_throughput" + ("_full" if args.method == "full" else "") + ("_smoke" if args.smoke else "")
    write(name, result, table, args.out)  # the full setting beside the LoRA one, not over it
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
