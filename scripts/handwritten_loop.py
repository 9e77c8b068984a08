"""Train, then score the new version on the sessions people wrote: one command for the whole comparison.

    .venv/bin/python scripts/handwritten_loop.py model=gemma3_270m data.size=400 evaluation.max_examples=30 \\
        evaluation.max_new_tokens=128 evaluation.batch_size=8          (make gemma-run)

1. `run.py` with the given overrides: train, base vs tuned on the shift and test splits, register, export.
2. `run.py pipeline=evaluate pipeline.model_version=N` on each hand-written set (tests/data/*_sessions.jsonl;
   `--sets` picks some), with the first run's `evaluation.max_new_tokens` and `evaluation.batch_size`.
3. One table of root-cause accuracy, base vs tuned vs the bag-of-words baseline fitted on the same training
   split, printed and written to RUN_DIR/handwritten.md (RUN_DIR: `--run-dir`, else a new folder under the
   state folder's runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETS = ("set6", "set5", "set4", "set3", "holdout", "handwritten")  # tests/data/<set>_sessions.jsonl, newest first
CARRIED = ("evaluation.max_new_tokens=", "evaluation.batch_size=", "device=", "progress=")


def run_py(args: list[str]) -> None:
    print(f"$ run.py {' '.join(args)}", flush=True)
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: run.py {' '.join(args)} exited {result.returncode}: fix what it said "
                 "above, then run this again")


def accuracy(figures: dict, what: str) -> str:
    """`what`'s accuracy over the labelled incidents (the reference labels are the same for base, tuned and
    words), with the count."""
    value = figures.get(what, {}).get("rca_accuracy")
    if value is None:
        return "-"
    tuned = figures.get("tuned", {})
    labelled = round(tuned.get("label_coverage", 1.0) * tuned.get("examples", 0))
    return f"{value:.3f} ({round(value * labelled)} of {labelled})" if labelled else f"{value:.3f}"


def table(rows: list[tuple[str, dict]]) -> list[str]:
    lines = ["| set | base | tuned | bag-of-words | tuned vs base (McNemar p) | tuned vs words (McNemar p) |",
             "|---|---|---|---|---|---|"]
    for name, figures in rows:
        versus_base = figures.get("comparison", {}) or {}
        versus_words = figures.get("versus_baseline", {}) or {}
        lines.append(f"| {name} | {accuracy(figures, 'base')} | {accuracy(figures, 'tuned')} | "
                     f"{accuracy(figures, 'words_baseline')} | {_p(versus_base)} | {_p(versus_words)} |")
    return lines


def _p(comparison: dict) -> str:
    if "mcnemar_p" not in comparison:
        return "-"
    return (f"{comparison.get('first_only_right', '?')} vs {comparison.get('second_only_right', '?')}, "
            f"p = {comparison['mcnemar_p']:.2g}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s [--sets S,S] [--run-dir DIR] [run.py override ...]")
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"hand-written sets to score (default: {','.join(SETS)})")
    parser.add_argument("--run-dir", type=Path, help="the training run's folder (default: a new one)")
    args, overrides = parser.parse_known_args(argv)
    unknown = [s for s in args.sets.split(",") if s not in SETS]
    if unknown:
        parser.error(f"--sets: unknown {unknown}; known: {sorted(SETS)}")
    if any(o.startswith("pipeline=") for o in overrides):
        parser.error("the overrides are for the training run (pipeline=fine_tuning); leave pipeline= out")
    os.environ.setdefault("RCATUNE_HOME", str(ROOT / ".rcatune"))
    run_dir = args.run_dir or Path(os.environ["RCATUNE_HOME"]) / "runs" / "loops" / time.strftime("%Y-%m-%d_%H-%M-%S")
    run_py([*overrides, f"hydra.run.dir={run_dir}"])
    summary = json.loads((run_dir / "run_summary.json").read_text())
    registered = summary.get("decisions", {}).get("zenml_model_version")
    if not registered:
        sys.exit(f"handwritten_loop: the run registered no version (see {run_dir / 'run_summary.json'}), so there "
                 "is nothing to score on the hand-written sets")
    version = registered.rsplit(" v", 1)[1]
    rows = [(f"{name} ({'headline' if name == summary['evaluation'].get('headline') else 'split'})", figures)
            for name, figures in summary["evaluation"]["sets"].items()]
    carried = [o for o in overrides if o.startswith(CARRIED)]
    for name in args.sets.split(","):
        out = run_dir / "handwritten" / name
        run_py(["pipeline=evaluate", f"pipeline.model_version={version}", "data=jsonl",
                f"data.path={ROOT / 'tests' / 'data' / (name + '_sessions.jsonl')}", *carried, f"hydra.run.dir={out}"])
        scored = json.loads((out / "run_summary.json").read_text())["evaluation"]["sets"]
        rows.append((f"{name} (hand-written)", next(iter(scored.values()))))
    lines = [f"Version {version} ({' '.join(overrides) or 'defaults'}): root-cause accuracy", "", *table(rows)]
    (run_dir / "handwritten.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n" + "\n".join(lines) + f"\n\nwritten to {run_dir / 'handwritten.md'}")
    return run_dir


if __name__ == "__main__":
    main()
