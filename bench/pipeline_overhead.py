"""Pipeline overhead: `python run.py` (Hydra + ZenML + MLflow) against a plain script that makes the
same library calls in one process with no orchestration and no tracking, on the same config.

    python bench/pipeline_overhead.py [--smoke] [--repeats 1]

Reports the run.py wall time, the plain script's wall time, the seconds Hydra/ZenML/MLflow add in
all, and per step: ZenML's step duration against the plain script's time for the same work.
Steps with no plain counterpart (tracking, gate, registration) are overhead by definition.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    RESULTS,
    ROOT,
    interleave,
    markdown_table,
    medians,
    run_worker,
    write,
    zenml_step_times,
)

OVERRIDES = ["data.size=120", "trainer.epochs=2", "evaluation.max_examples=6", "evaluation.max_new_tokens=64",
             "progress=false"]
SMOKE = ["data.size=40", "trainer.epochs=1", "evaluation.max_examples=2", "evaluation.max_new_tokens=16",
         "model.hidden_size=64", "model.intermediate_size=128", "model.num_layers=2", "model.vocab_size=1024",
         "data.split.min_examples=10", "progress=false"]
PHASES = ["load_data", "split_data", "export_data", "train_model", "evaluate_model", "export_trained"]


def plain(overrides: list[str], out: Path) -> dict:
    """The pipeline's work as one script: same functions, same order, no ZenML, no MLflow."""
    phases: dict[str, float] = {}
    started = time.perf_counter()
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rcatune.config import register_configs
    from rcatune.state import configure_environment, state_dir

    configure_environment()
    OmegaConf.register_new_resolver("rcatune_state", lambda: str(state_dir()), replace=True)
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = OmegaConf.to_object(compose("config", overrides=overrides))
    phases["compose"] = time.perf_counter() - started

    def timed(name, call):
        mark = time.perf_counter()
        value = call()
        phases[name] = time.perf_counter() - mark
        return value

    import peft  # noqa: F401  (the heavy imports the steps make lazily, timed as imports, not as work)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from rcatune.config import instantiate
    from rcatune.evaluation.run import evaluate_candidate
    from rcatune.export import export_model
    from rcatune.formats import export_formats
    from rcatune.inference import load_base, load_folder
    from rcatune.runtime import Runtime
    from rcatune.split import SplitSpec, split_examples
    from rcatune.training import TrainingJob, train
    from rcatune.validation import load_source

    phases["imports"] = time.perf_counter() - started - phases["compose"]
    runtime = Runtime.detect(cfg.device.value, progress=False)
    out.mkdir(parents=True, exist_ok=True)
    dataset, _ = timed("load_data", lambda: load_source(cfg.data, out, progress=False, scrub=cfg.scrub))
    split = cfg.data.split
    splits = timed("split_data", lambda: split_examples(dataset.examples, SplitSpec(split.fractions, split.seed,
                                                                                    split.min_examples,
                                                                                    split.shift_phrasing)))
    timed("export_data", lambda: export_formats(splits, out / "formats", list(cfg.formats.formats),
                                                cfg.formats.system_prompt, cfg.formats.openai_max_tokens))
    job = TrainingJob(splits.train, splits.val, cfg.model, instantiate(cfg.method), cfg.formats.system_prompt,
                      out / "training", runtime)
    result = timed("train_model", lambda: train(cfg.trainer, job))
    timed("evaluate_model", lambda: evaluate_candidate(
        {"test": splits.test, "shift": splits.shift}, lambda: load_folder(result.model_dir, runtime, base=cfg.model),
        lambda: load_base(cfg.model, runtime), cfg.evaluation, cfg.formats.system_prompt, cfg.trainer.max_length,
        out / "evaluation", result.history, progress=False))
    facts = {"name": "bench", "base_model": result.base_model, "method": result.method}
    timed("export_trained", lambda: export_model(result, out / "export", cfg.export.quantisation, facts, runtime,
                                                 cfg.evaluation.max_new_tokens))
    return {"wall_seconds": round(time.perf_counter() - started, 2),
            **{f"{k}_seconds": round(v, 2) for k, v in phases.items()}}


def zenml(overrides: list[str], out: Path) -> dict:
    """run.py in a subprocess, then the step durations ZenML recorded for that run."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "run.py", *overrides, f"hydra.run.dir={out}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=1800, env=dict(os.environ))
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"run.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    summary = json.loads((out / "run_summary.json").read_text())
    times = zenml_step_times(summary["zenml_run"])
    steps = {name: (end - start).total_seconds() for name, (start, end) in times.items()}
    first = min(start for start, _ in times.values())
    last = max(end for _, end in times.values())
    figures = {"wall_seconds": round(wall, 2), "steps_total_seconds": round(sum(steps.values()), 2),
               "first_to_last_step_seconds": round((last - first).total_seconds(), 2),
               "summary_seconds": summary["seconds"]}
    figures.update({f"{k}_seconds": round(v, 2) for k, v in steps.items()})
    return figures


def worker(name: str, overrides: list[str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    figures = plain(overrides, out) if name == "plain" else zenml(overrides, out)
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, json.loads(args.overrides), args.run_dir)
        return {}
    overrides = SMOKE if args.smoke else OVERRIDES
    work = args.out / ("pipeline_smoke.work" if args.smoke else "pipeline.work")
    work.mkdir(parents=True, exist_ok=True)

    def measure(name: str, round_: int) -> dict:
        return run_worker(Path(__file__), ["--worker", name, "--overrides", json.dumps(overrides),
                                           "--run-dir", str(work / f"{name}-{round_}")], state=work / "state")

    print(f"pipeline overhead: run.py vs plain script, {overrides}", flush=True)
    runs = interleave(["run.py", "plain"], args.repeats, measure)
    keys = sorted({k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and k != "round"})
    per = medians(runs, keys)
    zen, bare = per["run.py"], per["plain"]
    added = round(zen["wall_seconds"] - bare["wall_seconds"], 2)
    rows = []
    for name in ["track_run_config", *PHASES[:5], "gate_model", "register_model", PHASES[5]]:
        step = zen.get(f"{name}_seconds")
        own = bare.get(f"{name}_seconds")
        rows.append([name, step, own if own is not None else "-",
                     round(step - own, 2) if step is not None and own is not None else step])
    outside = round(zen["wall_seconds"] - zen["steps_total_seconds"], 2)
    result = {"inputs": {"overrides": overrides, "repeats": args.repeats}, "runs": runs, "medians": per,
              "added_seconds": added, "outside_steps_seconds": outside,
              "ratio": {"run.py/plain_wall": round(zen["wall_seconds"] / bare["wall_seconds"], 3)}}
    table = [f"Pipeline overhead ({' '.join(overrides)}; medians of {args.repeats})", ""]
    table += markdown_table(["step", "ZenML step s", "plain s", "overhead s"], rows)
    table += ["", f"run.py wall {zen['wall_seconds']} s vs plain script {bare['wall_seconds']} s: Hydra + ZenML + "
                  f"MLflow add {added} s (x{result['ratio']['run.py/plain_wall']}); {outside} s of run.py is outside "
                  f"the steps (start-up, stack, summary); the plain script spent {bare.get('compose_seconds')} s "
                  f"composing the config and {bare.get('imports_seconds')} s importing."]
    write("pipeline_overhead_smoke" if args.smoke else "pipeline_overhead", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
