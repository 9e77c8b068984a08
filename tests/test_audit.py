"""pip-audit over every venv the project makes (issue 24): findings fail unless accepted with a reason; a machine
that reaches no vulnerability source says so in one line and passes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))


@pytest.mark.integration
def test_every_venv_is_audited_or_one_line_says_why_not():
    result = subprocess.run([sys.executable, "scripts/audit_dependencies.py"], cwd=ROOT, capture_output=True,
                            text=True, timeout=1800)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    unreached = [line for line in result.stdout.splitlines() if "NOT audited" in line]
    audited = [line for line in result.stdout.splitlines() if line.startswith("pip-audit (")]
    assert len(unreached) <= 1 and (audited or unreached)
    assert ".venv (" in result.stdout or ".venv:" in result.stdout


def test_a_finding_fails_unless_accepted_with_its_venv_package_and_id(tmp_path):
    """pip-audit's JSON report (its documented shape), judged: the source itself cannot be reached here."""
    from audit_dependencies import accepted, verdict

    report = {"dependencies": [
        {"name": "Jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}]},
        {"name": "requests", "version": "2.32.5", "vulns": []},
        {"name": "private-pkg", "version": "1.0", "skip_reason": "not found on PyPI"}]}
    lines, failures = verdict(".venv", report, set())
    assert failures == ["GHSA-h5c8-rqwp-cp95"] and "FOUND" in lines[0] and "fixed in 3.1.3" in lines[0]
    listed = tmp_path / "accepted.txt"
    listed.write_text("# comment\n.venv jinja2 GHSA-h5c8-rqwp-cp95 the sandbox is not used; until 2027-01\n")
    lines, failures = verdict(".venv", report, accepted(listed))
    assert failures == [] and lines[0].lstrip().startswith("accepted")
    assert verdict(".venv-labelstudio", report, accepted(listed))[1] == ["GHSA-h5c8-rqwp-cp95"]  # per venv
