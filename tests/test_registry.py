"""The registry as a library, against the real ZenML and MLflow stores: list versions with their figures and
lineage, show one, promote and demote with a reason recorded in both registries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rcatune.errors import ConfigError
from rcatune.registry import describe_version, list_versions, set_stage
from tests.conftest import ROOT

MODEL = "rcatune-rca"


@pytest.mark.integration
def test_list_show_promote_and_demote_with_a_reason(servable_versions):
    from mlflow.tracking import MlflowClient

    numbers = [v["number"] for v in servable_versions]
    listed = {v.number: v for v in list_versions(MODEL)}
    assert set(numbers) <= set(listed)
    for number in numbers:
        info = listed[number]
        assert info.metrics.get("rca_accuracy") is not None and info.gate_passed is True
        assert len(info.data_hash) == 64 and info.commit != "" and info.run and info.mlflow_version
        assert info.registration == "complete"
    before = {n: listed[n].stage for n in numbers}
    first, second = numbers
    try:
        promoted = set_stage(MODEL, first, "production", "chosen by hand for the test", by="tester")
        assert promoted.stage == "production" and "champion" in promoted.aliases
        assert describe_version(MODEL, "production").number == first
        assert promoted.stage_history[-1]["reason"] == "chosen by hand for the test"
        assert promoted.stage_history[-1]["by"] == "tester"
        twin = MlflowClient().get_model_version(MODEL, promoted.mlflow_version)
        assert twin.tags["stage"] == "production" and twin.tags["stage_reason"] == "chosen by hand for the test"

        demoted = set_stage(MODEL, first, "archived", "wrong on payment incidents", by="tester")
        assert demoted.stage == "archived" and "champion" not in demoted.aliases
        assert [h["stage"] for h in demoted.stage_history[-2:]] == ["production", "archived"]
        assert MlflowClient().get_model_version(MODEL, demoted.mlflow_version).tags["stage_changed_by"] == "tester"
        with pytest.raises(ConfigError, match="needs a reason"):
            set_stage(MODEL, second, "production", "  ")
        with pytest.raises(ConfigError, match="stage 'prod'"):
            set_stage(MODEL, second, "prod", "typo")
    finally:
        for number, stage in before.items():
            set_stage(MODEL, number, stage or "none", "restored after the registry test", by="tester")

    shown = subprocess.run([sys.executable, "-m", "rcatune.registry", "list", "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert {v["number"] for v in json.loads(shown.stdout)} >= set(numbers)
    missing = subprocess.run([sys.executable, "-m", "rcatune.registry", "show", "999"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and missing.stderr.count("\n") == 1
