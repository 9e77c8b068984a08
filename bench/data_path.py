"""Data path scaling: load + validate + split + format for 1k, 10k and 100k sessions.

    python bench/data_path.py [--smoke] [--sizes 1000,10000,100000]

Each size runs in a fresh process (its own peak RSS), next to a floor that only reads and parses
the same JSONL (`json.loads` per line): how much of the cost is rcatune's and how it grows. Time
should grow linearly with size (seconds per 1k sessions flat), and peak memory should stay a small
multiple of the input file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, interleave, markdown_table, medians, peak_rss_mb, run_worker, write  # noqa: E402

KEYS = ["seconds", "sessions_per_second", "peak_rss_mb", "data_rss_mb", "rss_over_input"]


def generate(path: Path, size: int) -> None:
    from rcatune.demo.generator import generate_sessions

    with open(path, "w", encoding="utf-8") as handle:
        for session in generate_sessions(size, seed=5):
            handle.write(json.dumps(session) + "\n")


def work_rcatune(data: Path, out: Path) -> dict:
    from rcatune.formats import Format, export_formats
    from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
    from rcatune.sources import JsonlSource
    from rcatune.split import SplitSpec, split_examples
    from rcatune.validation import load_examples

    phases = {}
    started = time.perf_counter()
    examples, report = load_examples(JsonlSource(str(data)), out / "quarantine.jsonl", 0.1, progress=False)
    phases["load_validate"] = time.perf_counter() - started
    mark = time.perf_counter()
    splits = split_examples(examples, SplitSpec())
    phases["split"] = time.perf_counter() - mark
    mark = time.perf_counter()
    export_formats(splits, out / "formats", list(Format), DEFAULT_SYSTEM_PROMPT)
    phases["format"] = time.perf_counter() - mark
    total = time.perf_counter() - started
    return {"sessions": report.accepted, "seconds": round(total, 3),
            **{f"{k}_seconds": round(v, 3) for k, v in phases.items()}}


def work_floor(data: Path, out: Path) -> dict:
    started = time.perf_counter()
    count = 0
    with open(data, encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
            count += 1
    return {"sessions": count, "seconds": round(time.perf_counter() - started, 3)}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def warm_pyarrow() -> None:
    """Load pyarrow and parse one row the way the HuggingFace writer does: library code and its tables, the same
    whatever the size of the data."""
    from rcatune.formats.tabular import arrow_rows, hf_schema, json_lines

    arrow_rows(json_lines(['{"id": "x", "system": "s", "instruction": "i", "input": "x", "output": "o", '
                           '"messages": []}']), hf_schema())


def worker(name: str, data: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if name.startswith("rcatune"):
        import rcatune.formats  # noqa: F401  (imports first: their memory is not the data's)
        import rcatune.validation  # noqa: F401
        warm_pyarrow()
    baseline = current_rss_mb()
    figures = work_rcatune(data, out) if name.startswith("rcatune") else work_floor(data, out)
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["data_rss_mb"] = round(figures["peak_rss_mb"] - baseline, 1)  # peak above the imported code
    input_mb = data.stat().st_size / 2**20
    figures["input_mb"] = round(input_mb, 1)
    figures["rss_over_input"] = round(figures["data_rss_mb"] / input_mb, 2)
    figures["sessions_per_second"] = round(figures["sessions"] / figures["seconds"], 1)
    print(json.dumps(figures))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--sizes", default=None, help="comma-separated session counts")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.data, args.run_dir)
        return {}
    sizes = [int(s) for s in (args.sizes or ("200,1000" if args.smoke else "1000,10000,100000")).split(",")]
    work = args.out / ("data_smoke.work" if args.smoke else "data.work")
    work.mkdir(parents=True, exist_ok=True)
    files = {}
    for size in sizes:
        files[size] = work / f"sessions-{size}.jsonl"
        if not files[size].exists():
            print(f"  generating {size} sessions ...", flush=True)
            generate(files[size], size)
    contenders = [f"{kind}@{size}" for size in sizes for kind in ("rcatune", "read_only")]

    def measure(name: str, round_: int) -> dict:
        kind, size = name.split("@")
        return run_worker(Path(__file__), ["--worker", kind, "--data", str(files[int(size)]),
                                           "--run-dir", str(work / f"{kind}-{size}-{round_}")],
                          state=work / f"state-{kind}-{size}")

    print(f"data path: sizes {sizes}", flush=True)
    runs = interleave(contenders, args.repeats, measure)
    per = medians(runs, KEYS + ["load_validate_seconds", "split_seconds", "format_seconds", "input_mb"])
    scaling = {}
    for size in sizes:
        mine = per[f"rcatune@{size}"]
        floor = per[f"read_only@{size}"]
        scaling[str(size)] = {"seconds_per_1k": round(mine["seconds"] / size * 1000, 3),
                              "rcatune/read_only_seconds": round(mine["seconds"] / floor["seconds"], 1)}
    first, last = str(sizes[0]), str(sizes[-1])
    growth = round(scaling[last]["seconds_per_1k"] / scaling[first]["seconds_per_1k"], 2)
    result = {"inputs": {"sizes": sizes, "repeats": args.repeats}, "runs": runs, "medians": per,
              "scaling": scaling, "seconds_per_1k_growth": {f"{last}_vs_{first}": growth}}
    rows = []
    for size in sizes:
        m = per[f"rcatune@{size}"]
        rows.append([size, m.get("input_mb"), m["seconds"], m["sessions_per_second"], m.get("load_validate_seconds"),
                     m.get("split_seconds"), m.get("format_seconds"), m["peak_rss_mb"], m["data_rss_mb"],
                     m["rss_over_input"],
                     scaling[str(size)]["rcatune/read_only_seconds"]])
    table = ["Data path: load + validate + split + format (all formats), one process per size", ""]
    table += markdown_table(["sessions", "input MB", "seconds", "sessions/s", "load+validate s", "split s",
                             "format s", "peak RSS MB", "data RSS MB", "data RSS / input", "x read-only"], rows)
    table += ["", f"Seconds per 1k sessions, {last} vs {first}: x{growth} (1.0 = linear)"]
    write("data_path_smoke" if args.smoke else "data_path", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
