"""`python -m rcatune.jobs`: compose a job to JSON, or run one (what the subprocess launcher starts).

    python -m rcatune.jobs compose pipeline=prepare data.size=50 > job.json   # validated; exit 2 when not
    python -m rcatune.jobs run job.json        # runs it here, writes run_summary.json in its run folder
Exit: 0 succeeded, 2 failed (one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")
    parser = argparse.ArgumentParser(prog="python -m rcatune.jobs", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("compose", help="compose overrides into a job (JSON on stdout)")
    made.add_argument("overrides", nargs="*")
    made.add_argument("--run-dir", help="where the job writes (default: conf's hydra.run.dir)")
    ran = commands.add_parser("run", help="run a job's JSON in this process")
    ran.add_argument("job", help="a job.json")
    ran.add_argument("--no-summary", action="store_true", help="do not print the summary (the launcher does)")
    args = parser.parse_args(argv)

    from rcatune.errors import RcatuneError
    from rcatune.jobs import InProcessLauncher, Job, compose

    try:
        if args.command == "compose":
            print(compose(args.overrides, run_dir=args.run_dir).to_json())
            return 0
        job = Job.load(args.job)
        os.environ["RCATUNE_HOME"] = job.state
        job.config()  # refused here, in one line, when it no longer composes to what it recorded
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
    from rcatune.report import print_summary_file

    result = InProcessLauncher().launch(job)
    if not args.no_summary:
        from pathlib import Path

        print_summary_file(Path(result.run_dir), with_error=False)
    if not result.ok:
        print(f"rcatune: {'' if result.status == 'interrupted' else 'error: '}{result.error}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
