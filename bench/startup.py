"""Start-up: what `python run.py pipeline=prepare` spends outside its steps, today against the same code with the
start-up levers undone (issue 32, section 3), side by side in one run.

    python bench/startup.py [--smoke] [--repeats 3]

The levers, each undone in the `before` contender by a wrapper around run.py (nothing in the product switches
them off):
- ZenML activates only the integrations a step uses (`rcatune.stacks.skip_unused_integrations`);
- ZenML's MLflow tracker no longer imports eight MLflow flavors (and torch) after every step
  (`rcatune.stacks.skip_unloaded_autologging`);
- the device is found without importing torch where no GPU driver is present (`rcatune.runtime.cuda_available`);
- `progress=false` no longer imports transformers to switch its bars off (`rcatune.logs.quiet_logs`).

Each run is a fresh process on the same state folder (its ZenML and MLflow stores made by a first, unmeasured
run). Reported per contender: the process's wall time, the seconds of its steps (ZenML's records), the rest
(start-up, stack, summary), and whether torch, transformers and scikit-learn were imported.
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
    DERIVED,
    RESULTS,
    ROOT,
    interleave,
    markdown_table,
    medians,
    ratios,
    write,
    zenml_step_times,
)

OVERRIDES = ["pipeline=prepare", "data.size=100", "progress=false"]
SMOKE = ["pipeline=prepare", "data.size=40", "data.split.min_examples=10", "progress=false"]
CONTENDERS = ["now", "before"]
WATCHED = ("torch", "transformers", "sklearn")


def undo_levers() -> None:
    """The start-up as it was before the levers: every integration activated, every MLflow flavor imported at
    each step's end, torch imported to find the device, transformers imported by `progress=false`."""
    import rcatune.logs
    import rcatune.runtime
    import rcatune.stacks

    rcatune.stacks.skip_unused_integrations = lambda: None
    rcatune.stacks.skip_unloaded_autologging = lambda: None

    def cuda_available() -> bool:
        import torch

        return torch.cuda.is_available()

    rcatune.runtime.cuda_available = cuda_available
    quiet = rcatune.logs.quiet_logs

    def quiet_logs(bars: bool = True) -> None:
        if not bars:
            import transformers  # noqa: F401

        quiet(bars)

    rcatune.logs.quiet_logs = quiet_logs


def as_run_py(undo: bool, args: list[str]) -> None:
    """Run run.py in this process (the levers undone or not); report what it imported on the last line."""
    import atexit
    import runpy

    if undo:
        undo_levers()

    def report() -> None:
        print(json.dumps({f"imported_{name}": int(name in sys.modules) for name in WATCHED}), flush=True)

    atexit.register(report)
    sys.argv = [str(ROOT / "run.py"), *args]
    runpy.run_path(str(ROOT / "run.py"), run_name="__main__")


def one_run(contender: str, overrides: list[str], run_dir: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--as-run-py", contender, "--",
                             *overrides, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"run.py ({contender}) failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    imported = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    summary = json.loads((run_dir / "run_summary.json").read_text())
    steps = sum((end - start).total_seconds() for start, end in zenml_step_times(summary["zenml_run"]).values())
    return {"wall_seconds": round(wall, 2), "steps_seconds": round(steps, 2),
            "outside_steps_seconds": round(wall - steps, 2), **imported}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--as-run-py", choices=CONTENDERS, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.as_run_py:
        as_run_py(args.as_run_py == "before", [a for a in rest if a != "--"])
        return {}
    overrides = SMOKE if args.smoke else OVERRIDES
    repeats = 1 if args.smoke else args.repeats
    work = args.out / ("startup_smoke.work" if args.smoke else "startup.work")
    work.mkdir(parents=True, exist_ok=True)
    os.environ["RCATUNE_HOME"] = str(work / "state")  # this process reads the step times; its runs inherit it
    for key in DERIVED:
        os.environ.pop(key, None)
    print(f"start-up: run.py {' '.join(overrides)}, now vs before the levers; a first run makes the stores",
          flush=True)
    one_run("now", overrides, work / "warm-up")
    runs = interleave(CONTENDERS, repeats, lambda name, round_: one_run(name, overrides, work / f"{name}-{round_}"))
    keys = ["wall_seconds", "steps_seconds", "outside_steps_seconds", *(f"imported_{n}" for n in WATCHED)]
    per = medians(runs, keys)
    spread = {name: {key: [r[key] for r in runs if r["contender"] == name] for key in keys[:3]}
              for name in CONTENDERS}
    result = {"inputs": {"overrides": overrides, "repeats": repeats}, "runs": runs, "medians": per,
              "spread": spread, "ratio": ratios(per, "now", "outside_steps_seconds")}
    rows = [[name, per[name]["wall_seconds"], per[name]["steps_seconds"], per[name]["outside_steps_seconds"],
             f"{min(spread[name]['outside_steps_seconds'])}-{max(spread[name]['outside_steps_seconds'])}",
             ", ".join(n for n in WATCHED if per[name].get(f"imported_{n}")) or "none"] for name in CONTENDERS]
    table = [f"Start-up (run.py {' '.join(overrides)}; medians of {repeats}, interleaved)", ""]
    table += markdown_table(["contender", "wall s", "steps s", "outside steps s", "outside, range", "imports"],
                            rows)
    table += ["", f"Outside the steps, now/before: {result['ratio'].get('now/before')} (goal: under 5 s)."]
    write("startup_smoke" if args.smoke else "startup", result, table, args.out)
    print("\n".join(table))
    return result


if __name__ == "__main__":
    main()
