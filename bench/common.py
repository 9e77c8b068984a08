"""Shared bench plumbing: machine facts, interleaved runs, medians and ratios, JSON + markdown output."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> dict[str, Any]:
    import torch

    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "omp_threads": os.environ.get("OMP_NUM_THREADS"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        info["memory_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                            text=True, timeout=10).stdout.strip()
    except OSError:
        pass
    return info


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM) of this process or another: unlike ru_maxrss, it starts afresh
    at exec, so a worker does not inherit the high-water mark of the process that forked it."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


DERIVED = ("ZENML_CONFIG_PATH", "ZENML_REPOSITORY_PATH", "MLFLOW_TRACKING_URI", "HF_HOME")


def run_worker(script: Path, args: list[str], timeout: int = 1800, state: Path | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh process (its own peak memory); it prints one JSON line last.

    `state`: the worker's own RCATUNE_HOME (its ZenML/MLflow stores follow it, not the caller's).
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if state is not None:
        env["RCATUNE_HOME"] = str(state)
        for key in DERIVED:
            env.pop(key, None)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env,
                            timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    figures = json.loads(lines[-1])
    figures.setdefault("process_wall_seconds", round(wall, 2))
    return figures


def zenml_step_times(run_name: str) -> dict[str, tuple[Any, Any]]:
    """Each step's (start, end) as ZenML recorded them for `run_name`, read from the stores this process's
    RCATUNE_HOME names."""
    from zenml.client import Client

    from rcatune.state import configure_environment

    configure_environment()
    run = Client().get_pipeline_run(run_name)
    return {name: (step.start_time, step.end_time) for name, step in run.steps.items()}


def interleave(contenders: list[str], repeats: int, measure: Callable[[str, int], dict[str, Any]],
               echo: bool = True, once: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """A B C A B C ...: each round runs every contender once, so drift in the machine hits all alike; those in
    `once` (reference rows no goal reads) run in the first round only."""
    runs = []
    for round_ in range(repeats):
        for name in contenders:
            if round_ and name in once:
                continue
            if echo:
                print(f"  round {round_ + 1}/{repeats}: {name} ...", flush=True)
            figures = measure(name, round_)
            runs.append({"contender": name, "round": round_ + 1, **figures})
            if echo:
                shown = {k: v for k, v in figures.items() if isinstance(v, (int, float))}
                print(f"    {json.dumps(shown)}", flush=True)
    return runs


def medians(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        out.setdefault(run["contender"], {})
    for name in out:
        mine = [r for r in runs if r["contender"] == name]
        for key in keys:
            values = [r[key] for r in mine if isinstance(r.get(key), (int, float))]
            if values:
                out[name][key] = round(statistics.median(values), 4)
    return out


def ratios(per: dict[str, dict[str, float]], subject: str, key: str) -> dict[str, float]:
    """subject / peer of the medians of `key`, for every peer."""
    mine = per.get(subject, {}).get(key)
    return {f"{subject}/{peer}": round(mine / figures[key], 3) for peer, figures in per.items()
            if peer != subject and mine and figures.get(key)}


def write(name: str, payload: dict[str, Any], table: list[str], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), **payload}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"{name}.md").write_text("\n".join(table) + "\n", encoding="utf-8")
    return path


def tiny_inputs(work: Path, sessions: int, seed: int, **model: Any) -> tuple[Path, Path]:
    """The inputs a training benchmark's contenders share, under `work`: `sessions` generated sessions as
    JSONL, and the tiny Llama folder (built once in `work/state`, `model` overriding its config's fields)."""
    os.environ["RCATUNE_HOME"] = str(work / "state")
    from rcatune.config.model import TinyModelConfig
    from rcatune.schema import TrainingExample
    from rcatune.sources import SampleSource
    from rcatune.state import configure_environment, state_dir

    configure_environment()
    from rcatune.models.tiny import ensure_tiny_model

    data = work / "sessions.jsonl"
    data.write_text("".join(TrainingExample.model_validate(r.data).model_dump_json() + "\n"
                            for r in SampleSource(size=sessions, seed=seed).records()))
    return data, ensure_tiny_model(TinyModelConfig(**model), state_dir() / "models")


def markdown_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def matmul_peak_gflops(threads: int, size: int = 1024, repeats: int = 15) -> float:
    """This machine's fp32 matmul rate with `threads` torch threads: the best of `repeats` timed `size`-square
    products after a warm-up, in GFLOP/s (2 * size**3 per product). The yardstick MFU is measured against."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        for _ in range(3):
            a @ b
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    return round(2 * size ** 3 / best / 1e9, 2)


def llamafactory_missing() -> str | None:
    """None when `llamafactory-cli` is here (make llamafactory), else why LLaMA-Factory's contenders are left out."""
    from rcatune.errors import RcatuneError
    from rcatune.training.llama_factory import find_cli

    try:
        find_cli()
    except RcatuneError as error:
        return str(error)
    return None


def linear_weights(model) -> int:
    """Weights of every linear layer of `model` (the output layer included): the N of model FLOPs."""
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def training_flops(model_dir: Path, row_lengths: list[int], full: bool) -> dict[str, Any]:
    """Model FLOPs of one epoch over rows of `row_lengths` real tokens, by PaLM's formula (Chowdhery et al. 2022,
    appendix B): per token k * N for the matmuls plus 12 * layers * hidden * row length for attention, where N
    counts every linear layer's weights (the output layer included, embeddings excluded) and k is 6 for full
    fine-tuning (forward 2, backward 4) and 4 when the weights are frozen (LoRA: no weight gradients; its own
    small matrices are left out). The standard model's FLOPs, whatever a contender skips (rcatune projects only
    the answer's positions onto the vocabulary), so MFU is comparable across contenders."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):  # shapes only: nothing allocated
        n = linear_weights(AutoModelForCausalLM.from_config(config))
    hidden, layers = config.hidden_size, config.num_hidden_layers
    k = 6 if full else 4
    tokens = sum(row_lengths)
    flops = k * n * tokens + 12 * layers * hidden * sum(length * length for length in row_lengths)
    return {"formula": f"{k} * N * tokens + 12 * layers * hidden * sum(row length^2)", "n_linear": n,
            "tokens": tokens, "flops_per_epoch": flops}
