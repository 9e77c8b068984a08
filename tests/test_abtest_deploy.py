"""An A/B test through `python run.py pipeline=deployment` on the local deployer, with two registered versions:
start (nothing promoted), traffic with feedback from a script where the treatment is truly better, a look that
promotes it by itself; then a second experiment whose treatment dies and is switched off without a human."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import httpx
import pytest

from tests.test_deploy_local import _deploy, _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ASK = {"model": "rcatune-rca", "messages": [{"role": "user", "content": "checkout returns 500 since 14:02"}],
       "max_tokens": 8}
DECIDE = ["ab_test.min_effect=0.2", "ab_test.tuning_units=200", "ab_test.latency_margin=1.0"]


def _traffic(endpoint: str, units: range, right: dict[str, float], seed: int) -> dict[str, int]:
    """One request per unit and its feedback: the script knows the truth (each arm's chance of a right root
    cause) and says it as an expert would."""
    rng, arms = random.Random(seed), {"control": 0, "treatment": 0}
    with httpx.Client(timeout=60) as client:
        for unit in units:
            reply = client.post(f"{endpoint}/v1/chat/completions", json=ASK, headers={"x-rcatune-unit": f"inc-{unit}"})
            assert reply.status_code == 200, reply.text
            arm = reply.headers["x-rcatune-arm"]
            arms[arm] += 1
            fed = client.post(f"{endpoint}/v1/feedback", json={
                "request_id": reply.headers["x-rcatune-request-id"], "root_cause_correct": rng.random() < right[arm],
                "human_prompts": rng.choice([1, 2, 3])})
            assert fed.status_code == 200, fed.text
    return arms


def test_an_ab_test_promotes_a_better_treatment_and_switches_off_a_dead_one(servable_versions, tmp_path):
    from zenml.client import Client

    from rcatune.deploy.records import history

    first, second = (v["number"] for v in servable_versions)
    where = [f"deployer.port={_free_port()}", "deployer.name=abtest"]
    _, deployed = _deploy(tmp_path, "deploy", *where, f"deployment.version={first}")
    endpoint = deployed["deployment"]["endpoint"]
    production_before = Client().get_model_version("rcatune-rca", "production").number

    _, started = _deploy(tmp_path, "start", *where, "deployment.action=ab_start", f"ab_test.treatment={second}",
                         "ab_test.name=exp-better")
    assert started["ab_test"]["control"] == first and started["ab_test"]["treatment"] == second
    assert Client().get_model_version("rcatune-rca", "production").number == production_before  # nothing promoted
    refused, _ = _deploy(tmp_path, "refused", *where, f"deployment.version={second}", check=False)
    assert refused.returncode == 2 and "A/B test 'exp-better' runs" in refused.stderr

    arms = _traffic(endpoint, range(60), {"control": 0.4, "treatment": 0.9}, seed=1)
    _, early = _deploy(tmp_path, "early", *where, "deployment.action=ab_status", *DECIDE)
    assert early["ab_test"]["analysis"]["decision"] in ("continue", "deploy_treatment")
    assert early["ab_test"]["acted"] is None  # a status never acts
    arms2 = _traffic(endpoint, range(60, 160), {"control": 0.4, "treatment": 0.9}, seed=2)
    assert min(arms["control"] + arms2["control"], arms["treatment"] + arms2["treatment"]) > 50
    _, decided = _deploy(tmp_path, "decide", *where, "deployment.action=ab_analyse", *DECIDE)
    analysis = decided["ab_test"]["analysis"]
    assert analysis["decision"] == "deploy_treatment", analysis["reasons"]
    assert analysis["primary"]["low"] > 0 and not analysis["srm"]["alarm"]
    assert "promoted" in decided["ab_test"]["acted"]
    assert httpx.post(f"{endpoint}/v1/chat/completions", json=ASK).headers["x-rcatune-version"] == second
    assert Client().get_model_version("rcatune-rca", "production").number == int(second)
    last = history("local", "abtest")[-1]
    assert (last.action, last.version, last.previous, last.detail["ab_test"]) == ("deploy", second, first,
                                                                                "exp-better")
    # the second experiment: its treatment dies, and the router switches it off by itself
    _, again = _deploy(tmp_path, "start2", *where, "deployment.action=ab_start", f"ab_test.treatment={first}",
                       "ab_test.name=exp-dies", "deployment.force=true", "deployment.reason=test")
    state = json.loads((_state_folder() / "state.json").read_text())
    os.kill(state["experiment"]["treatment"]["pid"], signal.SIGKILL)
    time.sleep(4)
    _traffic(endpoint, range(200, 220), {"control": 0.5, "treatment": 0.5}, seed=3)  # all answered, by control
    _, looked = _deploy(tmp_path, "look2", *where, "deployment.action=ab_analyse")
    assert looked["ab_test"]["killed"] and looked["ab_test"]["analysis"]["switch_off"]
    assert "stopped answering" in looked["ab_test"]["analysis"]["reasons"][0]
    _, stopped = _deploy(tmp_path, "stop2", *where, "deployment.action=ab_stop", "deployment.reason=dead")
    assert stopped["ab_test"]["experiment"] == "exp-dies"
    assert httpx.post(f"{endpoint}/v1/chat/completions", json=ASK).headers["x-rcatune-version"] == second
    _deploy(tmp_path, "stop", *where, "deployment.action=stop")


def _state_folder():
    from rcatune.deploy.records import deployments_dir

    return deployments_dir() / "local" / "abtest"
