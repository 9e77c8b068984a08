"""Audit every virtual environment the project makes (.venv, .venv-labelstudio, .venv-llamafactory, .venv-team) with
pip-audit against a vulnerability source (OSV, then PyPI's advisory data).

    python scripts/audit_dependencies.py [--venv .venv ...] [--accepted security/accepted-vulnerabilities.txt]

Each venv's exact pins (`pip freeze`) are audited without installing anything. A finding listed in the accepted
file (venv, package, advisory id, reason) is reported as accepted; any other fails the audit (exit 1). When no
source can be reached (a machine without internet), one line says so and the audit passes (exit 0): nothing
was checked, and the line says that too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = (".venv", ".venv-labelstudio", ".venv-llamafactory", ".venv-team")
SOURCES = ("osv", "pypi")


def frozen(venv: Path) -> list[str]:
    """The venv's exact pins (editable installs, which no source knows, left out)."""
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    return [line for line in out.splitlines() if "==" in line and not line.startswith("-e")]


def audit(pins: list[str], source: str) -> dict | None:
    """pip-audit's JSON for `pins` against `source`, or None when the source did not answer for any of them."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
        requirements.write("\n".join(pins) + "\n")
        requirements.flush()
        result = subprocess.run([sys.executable, "-m", "pip_audit", "-r", requirements.name, "--no-deps",
                                 "--disable-pip", "--progress-spinner", "off", "-s", source, "-f", "json"],
                                capture_output=True, text=True, timeout=1800)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        return None  # it failed before auditing: the source could not be reached
    audited = [d for d in report.get("dependencies", []) if not d.get("skip_reason")]
    return report if audited else None


def accepted(path: Path) -> set[tuple[str, str, str]]:
    if not path.exists():
        return set()
    entries = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            venv, package, advisory, *_ = line.split()
            entries.add((venv, package.lower(), advisory))
    return entries


def verdict(venv: str, report: dict, allowed: set[tuple[str, str, str]]) -> tuple[list[str], list[str]]:
    """(one line per finding, the advisory ids not accepted) of a pip-audit JSON report."""
    lines, failures = [], []
    for dependency in report["dependencies"]:
        for vuln in dependency.get("vulns", []):
            package, advisory, fixes = dependency["name"].lower(), vuln["id"], vuln.get("fix_versions") or []
            known = (venv, package, advisory) in allowed
            lines.append(f"  {'accepted' if known else 'FOUND   '} {venv} {package}=={dependency['version']} {advisory}"
                         + (f" (fixed in {', '.join(fixes)})" if fixes else ""))
            if not known:
                failures.append(advisory)
    return lines, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", action="append", help="a venv to audit (default: every one the project made)")
    parser.add_argument("--accepted", type=Path, default=ROOT / "security" / "accepted-vulnerabilities.txt")
    args = parser.parse_args(argv)
    venvs = [ROOT / v for v in (args.venv or VENVS) if (ROOT / v / "bin" / "python").exists()]
    allowed = accepted(args.accepted)
    failures, unreached = [], []
    for venv in venvs:
        pins = frozen(venv)
        report, source = None, None
        for source in SOURCES:
            report = audit(pins, source)
            if report is not None:
                break
        if report is None:
            unreached.append(f"{venv.name} ({len(pins)} packages)")
            continue
        lines, failed = verdict(venv.name, report, allowed)
        skipped = sum(1 for d in report["dependencies"] if d.get("skip_reason"))
        print(f"pip-audit ({source}): {venv.name}: {len(pins) - skipped} packages audited, {skipped} not known to "
              f"the source, {len(lines)} findings", *lines, sep="\n")
        failures += failed
    if unreached:
        print(f"pip-audit: no vulnerability source ({', '.join(SOURCES)}) answered from this machine: "
              f"{', '.join(unreached)} NOT audited")
    if failures:
        print(f"{len(failures)} finding(s) not accepted: upgrade, or list them with a reason in {args.accepted}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
