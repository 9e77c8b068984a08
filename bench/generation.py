"""Generation: latency p50/p95, tokens/s and milliseconds per generated token of a model on the evaluation
prompts, one prompt at a time (greedy, KV cache) and in left-padded batches of 8, each decoded by rcatune's own
greedy loop over the model's forward, by transformers' generate() (`_generate`) and by the same loop over the
model's ONNX export in onnxruntime (`_onnx`: `export.onnx=true`, the native CPU engine as the reference),
interleaved; beside them the arithmetic floor of one token (2 x the linear layers' weights, over this machine's
measured fp32 matmul peak), and the ONNX graph's size, export time and parity check against the safetensors.

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

from bench.common import (  # noqa: E402
    RESULTS,
    interleave,
    linear_weights,
    markdown_table,
    medians,
    peak_rss_mb,
    ratios,
    run_worker,
    write,
)

KEYS = ["latency_p50_ms", "latency_p95_ms", "tokens_per_second", "ms_per_token", "wall_seconds", "peak_rss_mb"]
MODES = ["sequential", "sequential_generate", "sequential_onnx", "batched", "batched_generate", "batched_onnx"]


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
    if name == "export":  # the ONNX graph the _onnx modes run, from the folder the others load
        from rcatune.models import model_path
        from rcatune.onnx_export import export_onnx

        folder = spec.get("model_dir") or model_path(model_cfg)
        return {**export_onnx(folder, spec["onnx_dir"]),
                "safetensors_bytes": sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))}
    loaded = load_folder(spec["model_dir"], runtime, base=model_cfg) if spec.get("model_dir") \
        else load_base(model_cfg, runtime)
    weights = linear_weights(loaded.model)
    if name.endswith("_onnx"):
        from rcatune.inference import LoadedModel
        from rcatune.onnx_export import OnnxCausalLM

        loaded.release()
        loaded = LoadedModel(OnnxCausalLM(spec["onnx_dir"]), loaded.tokenizer, "onnx", loaded.signature, runtime)
    generator = Generator(loaded)
    generator.own_loop = generator.own_loop and not name.endswith("_generate")
    settings = GenerationSettings(max_new_tokens=spec["max_new_tokens"])
    examples = [TrainingExample.model_validate(r.data) for r in SampleSource(size=spec["prompts"], seed=21).records()]
    batch = 1 if name.startswith("sequential") else spec["batch_size"]
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
            "ms_per_token": round(1000 * wall / generated, 3),
            "linear_weights": weights,
            "wall_seconds": round(wall, 2), "peak_rss_mb": peak_rss_mb()}


def decode_floor_ms(linear_weights: int) -> dict:
    """One token's matmuls at batch 1 (2 x the linear layers' weights, the output layer included; attention over a
    short context left out) at this machine's fp32 matmul peak with the threads the workers use."""
    import os

    from bench.common import matmul_peak_gflops

    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    gflops = matmul_peak_gflops(threads)
    flops = 2 * linear_weights
    return {"flops": flops, "gflops": gflops, "threads": threads, "ms_per_token": 1000 * flops / (gflops * 1e9)}


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
    spec["onnx_dir"] = str(work / "onnx")
    print(f"generation: {MODES} ({spec})", flush=True)
    exported = run_worker(Path(__file__), ["--worker", "export", "--spec", json.dumps(spec)], state=work / "state")
    runs = interleave(MODES, repeats,
                      lambda name, _round: run_worker(Path(__file__), ["--worker", name, "--spec", json.dumps(spec)],
                                                      state=work / "state"))
    per = medians(runs, KEYS)
    floor = decode_floor_ms(runs[0]["linear_weights"])
    onnx = {key: exported[key] for key in ("bytes", "safetensors_bytes", "kv_cache", "export_seconds", "parity")}
    result = {"inputs": {**spec, "repeats": repeats}, "runs": runs, "medians": per, "floor": floor, "onnx": onnx,
              "ratios": {**ratios(per, "batched", "tokens_per_second"),
                         **ratios(per, "sequential", "tokens_per_second"),
                         **ratios(per, "sequential_onnx", "tokens_per_second"),
                         **ratios(per, "batched_onnx", "tokens_per_second")}}
    rows = [[name, f["latency_p50_ms"], f["latency_p95_ms"], f["tokens_per_second"], f["ms_per_token"],
             f["wall_seconds"], f["peak_rss_mb"]] for name, f in per.items()]
    table = [f"Generation ({spec['prompts']} evaluation prompts, {spec['max_new_tokens']} new tokens, "
             f"{'model ' + args.model_dir if args.model_dir else 'tiny shape'}; medians of {repeats})", ""]
    table += markdown_table(["mode", "latency p50 ms", "latency p95 ms", "tokens/s", "ms/token", "wall s",
                             "peak RSS MB"], rows)
    table += ["", "Ratio of tokens/s: " + ", ".join(f"{k} {v}" for k, v in result["ratios"].items()),
              "", f"Arithmetic floor of one token at batch 1: {floor['ms_per_token']:.3f} ms ({floor['flops']:,} "
                  f"FLOPs over {floor['gflops']:,.1f} GFLOP/s, {floor['threads']} thread(s)); one at a time is "
                  f"{per['sequential']['ms_per_token'] / floor['ms_per_token']:,.0f}x it: framework overhead "
                  f"(onnxruntime's: {per['sequential_onnx']['ms_per_token'] / floor['ms_per_token']:,.0f}x).",
              "", f"ONNX export ({'with' if onnx['kv_cache'] else 'WITHOUT'} its KV cache): "
                  f"{onnx['bytes'] / 2**20:,.2f} MiB against {onnx['safetensors_bytes'] / 2**20:,.2f} MiB of "
                  f"safetensors, exported in {onnx['export_seconds']} s; largest logit difference from PyTorch "
                  f"{onnx['parity']['max_logit_difference']:.1e}, the same {onnx['parity']['greedy_tokens']} greedy "
                  f"tokens on the probe session: {'yes' if onnx['parity']['greedy_tokens_equal'] else 'NO'}."]
    write("generation_smoke" if args.smoke else "generation", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
