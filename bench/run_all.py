"""Every CPU benchmark in one go (`make bench`; `make bench-smoke` for the CI-sized run).

    python bench/run_all.py [--smoke] [--only train,logits,data,pipeline,startup,generation,serving,abuse]
                             [--out bench/results]

Writes bench/results/<name>.json and .md per benchmark and bench/results/summary.md, then prints it.
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


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sections = []
    for name in args.only.split(","):
        mark = time.perf_counter()
        print(f"== {name}", flush=True)
        module = BENCHES[name]
        module.main(["--smoke"] * args.smoke + ["--out", str(args.out)])
        suffix = "_smoke" if args.smoke else ""
        stem = {"train": "train_throughput", "logits": "answer_logits", "data": "data_path",
                "pipeline": "pipeline_overhead", "startup": "startup", "generation": "generation", "serving": "serving",
                "abuse": "serving_abuse"}[name]
        sections.append((args.out / f"{stem}{suffix}.md").read_text())
        print(f"== {name}: {time.perf_counter() - mark:.0f} s", flush=True)
    total = time.perf_counter() - started
    text = (f"# rcatune benchmarks{' (smoke)' if args.smoke else ''}\n\n" + "\n\n".join(sections)
            + f"\n\nAll benchmarks: {total:.0f} s.\n")
    summary = args.out / f"summary{'_smoke' if args.smoke else ''}.md"
    if set(args.only.split(",")) == set(BENCHES):  # a partial run leaves the full run's summary alone
        summary.write_text(text)
    print("\n" + text)
    return summary


if __name__ == "__main__":
    main()
