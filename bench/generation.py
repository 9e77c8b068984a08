"""Generation: latency p50/p95 and tokens/s of a model on the evaluation prompts, the way rcatune's
evaluation generates today (one prompt at a time, greedy, KV cache) against batched generation
(left-padded batches of 8), interleaved.

    python bench/generation.py [--smoke] [--model-dir RUN_DIR/export/merged]

Without --model-dir it uses the tiny model's shape with its initial weights: speed depends on the
shape, not the weights, but random weights rarely stop early, so every answer runs to max tokens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, interleave, markdown_table, medians, peak_rss_mb, ratios, run_worker, write  # noqa: E402

KEYS = ["latency_p50_ms", "latency_p95_ms", "tokens_per_second", "wall_seconds", "peak_rss_mb"]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def worker(name: str, spec: dict) -> dict:
    import torch

    from rcatune.config.model import TinyModelConfig
    from rcatune.inference import GenerationSettings, Generator, load_base, load_folder, session_messages
    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
    from rcatune.runtime import Runtime
    from rcatune.schema import TrainingExample
    from rcatune.sources import SampleSource
    from rcatune.state import configure_environment

    configure_environment()
    torch.manual_seed(0)
    runtime = Runtime(device="cpu", progress=False)
    model_cfg = TinyModelConfig(**spec["tiny"])
    loaded = load_folder(spec["model_dir"], runtime, base=model_cfg) if spec.get("model_dir") \
        else load_base(model_cfg, runtime)
    generator = Generator(loaded)
    settings = GenerationSettings(max_new_tokens=spec["max_new_tokens"])
    examples = [TrainingExample.model_validate(r.data) for r in SampleSource(size=spec["prompts"], seed=21).records()]
    batch = 1 if name == "sequential" else spec["batch_size"]
    latencies, generated = [], 0
    started = time.perf_counter()
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        completions = generator.complete([session_messages(e, DEFAULT_SYSTEM_PROMPT) for e in chunk], settings)
        generated += sum(c.completion_tokens for c in completions)
        latencies += [c.seconds for c in completions]  # each request waits for its whole batch
    wall = time.perf_counter() - started
    return {"latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "latency_p95_ms": round(_percentile(latencies, 0.95) * 1000, 1),
            "tokens_per_second": round(generated / wall, 1), "generated_tokens": generated,
            "wall_seconds": round(wall, 2), "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--model-dir", default=None, help="a model folder (export/merged); default: tiny shape")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, json.loads(args.spec))))
        return {}
    repeats = args.repeats or (1 if args.smoke else 2)
    work = args.out / ("generation_smoke.work" if args.smoke else "generation.work")
    work.mkdir(parents=True, exist_ok=True)
    tiny = {"hidden_size": 64, "intermediate_size": 128, "num_layers": 2} if args.smoke else {}
    spec = {"tiny": tiny, "model_dir": args.model_dir, "prompts": 4 if args.smoke else 24,
            "max_new_tokens": 16 if args.smoke else 96, "batch_size": 8}
    print(f"generation: sequential vs batched ({spec})", flush=True)
    runs = interleave(["sequential", "batched"], repeats,
                      lambda name, _round: run_worker(Path(__file__), ["--worker", name, "--spec", json.dumps(spec)],
                                                      state=work / "state"))
    per = medians(runs, KEYS)
    result = {"inputs": {**spec, "repeats": repeats}, "runs": runs, "medians": per,
              "ratios": ratios(per, "batched", "tokens_per_second")}
    rows = [[name, f["latency_p50_ms"], f["latency_p95_ms"], f["tokens_per_second"], f["wall_seconds"],
             f["peak_rss_mb"]] for name, f in per.items()]
    table = [f"Generation ({spec['prompts']} evaluation prompts, {spec['max_new_tokens']} new tokens, "
             f"{'model ' + args.model_dir if args.model_dir else 'tiny shape'}; medians of {repeats})", ""]
    table += markdown_table(["mode", "latency p50 ms", "latency p95 ms", "tokens/s", "wall s", "peak RSS MB"], rows)
    table += ["", "Ratio of tokens/s: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items())]
    write("generation_smoke" if args.smoke else "generation", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
