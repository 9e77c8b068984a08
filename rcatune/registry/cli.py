"""`python -m rcatune.registry`: list, show, promote, demote and check registered versions.

    python -m rcatune.registry list [--model rcatune-rca] [--json]
    python -m rcatune.registry show production [--json]
    python -m rcatune.registry promote 3 --reason "re-scored by hand on set 6" [--to staging]
    python -m rcatune.registry demote 3 --reason "wrong on payment incidents" [--to archived]
    python -m rcatune.registry check                 # repair or report; exit 1 when something is off
"""

from __future__ import annotations

import argparse
import json
import sys

from rcatune.errors import RcatuneError

HEADLINE = ("rca_accuracy", "query_validity", "perplexity")


def _row(info) -> str:
    metrics = " ".join(f"{k}={info.metrics[k]:.3f}" for k in HEADLINE if k in info.metrics)
    gate = {True: "gate passed", False: "GATE FAILED", None: "gate unknown"}[info.gate_passed]
    aliases = f" [{', '.join(info.aliases)}]" if info.aliases else ""
    return (f"v{info.number:<4} {info.stage or 'none':<10}{aliases:<14} {gate:<12} {metrics}"
            f"  data {info.data_hash[:12]}"
            f"  commit {info.commit[:8]}  run {info.run or '-'}")


def main(argv: list[str] | None = None) -> int:
    from rcatune.registry.twins import reconcile
    from rcatune.registry.versions import describe_version, list_versions, set_stage
    from rcatune.state import configure_environment

    parser = argparse.ArgumentParser(prog="python -m rcatune.registry", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("command", choices=["list", "show", "promote", "demote", "check"])
    parser.add_argument("version", nargs="?", help="a number or a stage (production, staging, latest)")
    parser.add_argument("--model", default="rcatune-rca", help="the registered model (default: %(default)s)")
    parser.add_argument("--to", help="the stage (promote: production; demote: archived)")
    parser.add_argument("--reason", help="why (promote, demote): recorded in ZenML and MLflow")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    configure_environment()
    try:
        if args.command == "check":
            check = reconcile(args.model)
            print(check.line(args.model))
            return 0 if check.clean else 1
        if args.command == "list":
            versions = list_versions(args.model)
            if args.json:
                print(json.dumps([v.as_dict() for v in versions], indent=2))
            else:
                print("\n".join(_row(v) for v in versions) or f"{args.model}: no versions registered")
            return 0
        if not args.version:
            parser.error(f"{args.command} needs a version (a number or a stage)")
        if args.command == "show":
            info = describe_version(args.model, args.version)
        else:
            stage = args.to or ("production" if args.command == "promote" else "archived")
            info = set_stage(args.model, args.version, stage, args.reason or "")
        print(json.dumps(info.as_dict(), indent=2) if args.json or args.command == "show" else _row(info))
        return 0
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
