"""`python -m rcatune.deploy stop-all`: stop every local and docker deployment started from this state folder
(routers, instances, containers), e.g. before deleting the state folder. `python -m rcatune.deploy reconcile
FOLDER`: bring a deployment's state and records up to what its router did (the router runs it after a
failover). Deploy, roll back and report with `python run.py pipeline=deployment`."""

from __future__ import annotations

import argparse
import json
import sys

from rcatune.deploy.records import deployments_dir
from rcatune.processes import stop_group


def stop_all() -> int:
    """Stop what every local or docker deployment's state names; the number of processes stopped."""
    stopped = 0
    for state_file in deployments_dir().glob("*/*/state.json"):
        state = json.loads(state_file.read_text(encoding="utf-8") or "{}")
        for role in ("active", "previous", "router"):
            stopped += stop_group((state.get(role) or {}).get("pid"), timeout_s=10)
        if state.get("active", {}).get("container") or state.get("previous", {}).get("container"):
            print(f"{state_file.parent.name}: containers are left to the engine (deployment.action=stop removes them)")
    return stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcatune.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["stop-all", "reconcile"])
    parser.add_argument("folder", nargs="?", help="reconcile: the deployment's folder (<state>/deployments/T/NAME)")
    args = parser.parse_args(argv)
    if args.action == "reconcile":
        from pathlib import Path

        from rcatune.deploy.bluegreen import reconcile_folder
        from rcatune.state import configure_environment

        configure_environment()
        status = reconcile_folder(Path(args.folder))
        print(f"{args.folder}: v{status.get('version')} serves; answers: {status.get('answers')}")
        return 0
    print(f"stopped {stop_all()} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
