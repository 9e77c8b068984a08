"""The A/B test step: start, look at (and act on), or stop an experiment on the configured deployer."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel
from zenml import step
from zenml.artifacts.artifact_config import ArtifactConfig

from rcatune.config import Spec, load_spec
from rcatune.config.abtest import ABTestConfig
from rcatune.config.serving import ServingConfig
from rcatune.deploy import abtest


class ABTestReport(BaseModel):
    action: str
    report: dict[str, Any]

    def summarise(self, summary) -> None:
        summary.ab_test = {"action": self.action, **self.report}


@step(enable_cache=False, experiment_tracker=True)
def ab_test_step(action: str, deployer: Spec, serving: ServingConfig, ab_test: ABTestConfig, registry_name: str,
                 force: bool = False, reason: Optional[str] = None) -> Annotated[
        ABTestReport, ArtifactConfig(name="ab_test_report")]:
    """ab_start: treatment beside control; ab_status: the analysis now; ab_analyse: and its decision carried
    out; ab_stop: end it, keeping control."""
    config = load_spec(deployer)
    if action == "ab_start":
        report = abtest.start(config, serving, ab_test, registry_name, force, reason)
    elif action == "ab_stop":
        report = abtest.stop(config, serving, reason)
    else:
        report = abtest.look(config, serving, ab_test, act=action == "ab_analyse")
    return ABTestReport(action=action, report=report)
