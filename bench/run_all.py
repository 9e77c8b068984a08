"""Every CPU benchmark in one go (`make bench`; `make bench-smoke` for the CI-sized run).

    python bench/run_all.py [--smoke] [--only train,logits,data,pipeline,startup,generation,serving,abuse]
                             [--out bench/results] [--summary-only]

Writes bench/results/<name>.json and .md per benchmark and bench/results/summary.md (issue 32's goals, measured
or not, first), then prints it; --summary-only rebuilds summary.md from the results already there.
The GPU benchmark (bench/gpu_qlora.py) runs on a lent GPU instead; see its docstring.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    answer_logits,
    data_path,
    generation,
    pipeline_overhead,
    serving,
    serving_abuse,
    startup,
    train_throughput,
)
from bench.common import RESULTS  # noqa: E402

BENCHES = {"train": train_throughput, "logits": answer_logits, "data": data_path, "pipeline": pipeline_overhead,
           "startup": startup, "generation": generation, "serving": serving, "abuse": serving_abuse}


def _read(out: Path, stem: str) -> dict | None:
    import json

    path = out / f"{stem}.json"
    return json.loads(path.read_text()) if path.exists() else None


def goals(out: Path, suffix: str = "") -> list[str]:
    """Issue 32's goals against the latest results under `out`: goal, measured, met (a missing result says so)."""
    rows = []

    def add(goal: str, measured, target: float, above: bool = True, unit: str = "x") -> None:
        if measured is None:
            rows.append(f"| {goal} | not measured | - |")
            return
        met = measured >= target if above else measured < target
        rows.append(f"| {goal} | {measured:.2f}{unit} | {'yes' if met else 'no'} |")

    # the LoRA setting (make bench), and the full one where `train_throughput.py --method full` wrote its result
    for stem in ("train_throughput", "train_throughput_full"):
        train = _read(out, stem + suffix)
        if train is None and stem.endswith("_full"):
            continue
        ratio, method = (train or {}).get("ratios") or {}, ((train or {}).get("inputs") or {}).get("method", "lora")
        add(f"training ({method}): rcatune / LLaMA-Factory as shipped >= 2.0x", ratio.get("rcatune/llamafactory"),
            2.0)
        add(f"training ({method}): rcatune / LLaMA-Factory, gradient checkpointing off >= 1.5x",
            ratio.get("rcatune/llamafactory_no_gc"), 1.5)
    serving_result = _read(out, "serving" + suffix) or {}
    for key, engine in (("batched_over_llama_factory", "transformers"), ("onnx_over_llama_factory", "onnx")):
        over = serving_result.get(key) or {}
        add(f"serving (engine={engine}): rcatune / LLaMA-Factory API throughput at c=1 >= 1.5x",
            (over.get("c=1") or {}).get("tokens_per_second"), 1.5)
        add(f"serving (engine={engine}): rcatune / LLaMA-Factory API throughput at c=16 >= 3x",
            (over.get("c=16") or {}).get("tokens_per_second"), 3.0)
    start = (_read(out, "startup" + suffix) or {}).get("medians", {}).get("now", {})
    add("start-up: `pipeline=prepare` outside its steps < 5 s", start.get("outside_steps_seconds"), 5.0,
        above=False, unit=" s")
    data = (_read(out, "data_path" + suffix) or {}).get("medians", {})
    largest = max((k for k in data if k.startswith("rcatune@")), key=lambda k: int(k.split("@")[1]), default=None)
    add(f"data path: peak RSS / input at {largest.split('@')[1] if largest else '?'} sessions < 3x",
        data[largest]["peak_rss_mb"] / data[largest]["input_mb"] if largest and data[largest].get("input_mb")
        else None, 3.0, above=False)
    return ["## Goals (issue 32)", "", "| goal | measured | met |", "|---|---|---|", *rows]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summary-only", action="store_true",
                        help="run nothing: write summary.md (goals first) from the results already under --out")
    args = parser.parse_args(argv)
    if args.summary_only and not args.out.is_dir():
        parser.error(f"--summary-only: {args.out} holds no results (run the benchmarks first: make bench)")
    started = time.perf_counter()
    sections = []
    for name in args.only.split(","):
        mark = time.perf_counter()
        suffix = "_smoke" if args.smoke else ""
        if not args.summary_only:
            print(f"== {name}", flush=True)
            BENCHES[name].main(["--smoke"] * args.smoke + ["--out", str(args.out)])
        stem = {"train": "train_throughput", "logits": "answer_logits", "data": "data_path",
                "pipeline": "pipeline_overhead", "startup": "startup", "generation": "generation", "serving": "serving",
                "abuse": "serving_abuse"}[name]
        result = args.out / f"{stem}{suffix}.md"
        sections.append(result.read_text() if result.exists() else f"{stem}: no result under {args.out} yet "
                        f"(python bench/run_all.py --only {name})")
        if not args.summary_only:
            print(f"== {name}: {time.perf_counter() - mark:.0f} s", flush=True)
    total = time.perf_counter() - started
    took = ("Rebuilt from the latest result of each benchmark (they ran at different times; each file's `at` "
            "says when)." if args.summary_only else f"All benchmarks: {total:.0f} s.")
    text = (f"# rcatune benchmarks{' (smoke)' if args.smoke else ''}\n\n"
            + "\n".join(goals(args.out, "_smoke" if args.smoke else "")) + "\n\n" + "\n\n".join(sections)
            + f"\n\n{took}\n")
    summary = args.out / f"summary{'_smoke' if args.smoke else ''}.md"
    if set(args.only.split(",")) == set(BENCHES):  # a partial run leaves the full run's summary alone
        summary.write_text(text)
    print("\n" + text)
    return summary


if __name__ == "__main__":
    main()
