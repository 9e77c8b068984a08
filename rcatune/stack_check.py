"""Check a stack without running a pipeline: `python -m rcatune.stack_check stack=NAME [overrides] [--jobs DIR]`.

It registers the stack on its store (the project's own, or the ZenML server `stack.zenml_url` names), validates
it as ZenML validates a stack before a run, and for a cluster stack writes the Kubernetes Jobs its steps would
run as (stacks/README.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from rcatune.errors import RcatuneError
from rcatune.stacks import connect, ensure_stack, ensure_zenml_repository, load_definition, run_settings, step_jobs
from rcatune.state import configure_environment, state_dir


def check(overrides: list[str], out: Optional[Path] = None) -> dict[str, Any]:
    """Register the stack the overrides choose on its store and validate it as ZenML does before a run, without
    running anything; with `out`, write the per-step Jobs a cluster stack implies. Returns what it found."""
    from zenml.client import Client
    from zenml.stack import Stack

    from rcatune.jobs import compose

    cfg = compose(overrides).config()
    connection = connect(cfg.stack, state_dir())
    state = configure_environment()
    root = Path(__file__).resolve().parents[1]
    definition = load_definition(root / "stacks" / cfg.stack.definition, state, connection.mlflow_uri,
                                 cfg.stack.values)
    ensure_zenml_repository(connection.repository)
    stack_id = ensure_stack(definition)
    stack = Stack.from_model(Client().get_stack(stack_id))
    try:
        stack.validate()
    except Exception as error:  # ZenML's validators raise StackValidationError, pydantic or kubernetes errors
        raise RcatuneError(f"stack {definition['name']} does not validate: {error}") from None
    found: dict[str, Any] = {"stack": definition["name"], "id": stack_id, "store": os.environ.get(
        "ZENML_STORE_URL", "the project's own"), "components": {kind: spec["flavor"] for kind, spec in
                                                                definition["components"].items()}}
    pipeline_settings, steps = run_settings(cfg.stack)
    found["settings"] = {"pipeline": pipeline_settings, "steps": steps}
    if out is not None and cfg.stack.pods:
        registry = cfg.stack.values.get("registry", "rcatune")
        jobs = step_jobs(cfg.stack, f"{registry}/zenml:fine_tuning", cfg.stack.values.get("namespace", "default"))
        out.mkdir(parents=True, exist_ok=True)
        for step, job in jobs.items():
            (out / f"{step}.json").write_text(json.dumps(job, indent=2) + "\n", encoding="utf-8")
        found["jobs"] = sorted(str(out / f"{step}.json") for step in jobs)
    return found


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m rcatune.stack_check",
        description="Register a stack on its store and validate it as ZenML does before a run, without running a "
                    "pipeline; with --jobs, write the Kubernetes Jobs a cluster stack's steps would run as.",
        epilog="example: python -m rcatune.stack_check stack=kubernetes stack.zenml_url=https://zenml.example.com "
               "stack.mlflow_url=https://mlflow.example.com stack.values.kube_context=prod --jobs out/")
    parser.add_argument("overrides", nargs="*", help="run.py overrides (stack=..., stack.values.NAME=...)")
    parser.add_argument("--jobs", type=Path, help="write one Job manifest per pod group's step into this folder")
    args = parser.parse_args(argv)
    try:
        found = check(args.overrides, args.jobs)
    except RcatuneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"stack {found['stack']} ({found['id']}) on {found['store']}: registered and valid")
    for kind, flavor in found["components"].items():
        print(f"  {kind:<19} {flavor}")
    for path in found.get("jobs", []):
        print(f"  job {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
