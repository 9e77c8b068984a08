"""The router serving an A/B test between two real server processes: each unit keeps its arm, every answer is
recorded once with its arm and request id, feedback by request id is idempotent and checked, and a treatment
that dies is switched off by the router while control keeps answering."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import httpx
import pytest

from bench.serving_abuse import TOKEN, start_server
from rcatune.abtest.store import OutcomeStore
from rcatune.config.model import TinyModelConfig
from rcatune.deploy.router import write_target
from rcatune.models import model_path

pytestmark = pytest.mark.slow
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ASK = {"model": "tiny", "messages": [{"role": "user", "content": "checkout fails with 500s"}], "max_tokens": 8}


@pytest.fixture()
def ab(tmp_path, state_home):
    from rcatune.deploy.smoke import wait_ready
    from rcatune.processes import free_port, spawn, stop_group

    for arm in ("control", "treatment"):
        (tmp_path / arm).mkdir()
    control = start_server(model_path(TINY), tmp_path / "control")
    treatment = start_server(model_path(TINY), tmp_path / "treatment")
    store_url = f"sqlite:///{tmp_path / 'outcomes.db'}"
    target_file = tmp_path / "active.json"
    write_target(target_file, {"url": control.url, "version": "1", "model": "tiny", "experiment": {
        "id": "exp-test", "salt": "s", "treatment_share": 0.5, "started_at": time.time(),
        "treatment": {"url": treatment.url, "version": "2", "model": "tiny"}, "store_url": store_url}})
    port = free_port()
    router = spawn([sys.executable, "-m", "rcatune.deploy.router", "--port", str(port), "--target-file",
                    str(target_file)], tmp_path / "router.log", dict(os.environ, OMP_NUM_THREADS="1"))
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 120, alive=lambda: router.poll() is None, what="the A/B router")
    yield {"url": url, "store": OutcomeStore(store_url), "target": target_file, "treatment": treatment,
           "log": tmp_path / "router.log"}
    for process in (router, control.process, treatment.process):
        stop_group(process.pid)


def test_sticky_arms_recorded_answers_feedback_and_the_kill_switch(ab):
    url, store = ab["url"], ab["store"]
    arms, ids = {}, {}
    with httpx.Client(timeout=60) as client:
        for i in range(24):
            reply = client.post(f"{url}/v1/chat/completions", json=ASK, headers={**AUTH, "x-rcatune-unit": f"inc-{i}"})
            assert reply.status_code == 200, reply.text
            arms[f"inc-{i}"], ids[f"inc-{i}"] = reply.headers["x-rcatune-arm"], reply.headers["x-rcatune-request-id"]
            assert reply.headers["x-rcatune-version"] == {"control": "1", "treatment": "2"}[arms[f"inc-{i}"]]
        assert set(arms.values()) == {"control", "treatment"}
        again = client.post(f"{url}/v1/chat/completions", json={**ASK, "user": "inc-3"}, headers=AUTH)
        assert again.headers["x-rcatune-arm"] == arms["inc-3"]  # the unit from the body: the same arm
        plain = client.post(f"{url}/v1/chat/completions", json=ASK, headers=AUTH)
        assert plain.status_code == 200 and "x-rcatune-arm" not in plain.headers  # no unit: not in the test
        with client.stream("POST", f"{url}/v1/chat/completions", headers={**AUTH, "x-rcatune-unit": "inc-5"},
                           json={**ASK, "stream": True, "stream_options": {"include_usage": True}}) as streamed:
            assert streamed.headers["x-rcatune-arm"] == arms["inc-5"]
            streamed_id = streamed.headers["x-rcatune-request-id"]
            assert "[DONE]" in "".join(streamed.iter_text())

        rows = {r["request_id"]: r for r in store.rows("exp-test")}
        assert len(rows) == 26 and all(rows[ids[u]]["arm"] == arms[u] for u in ids)
        assert rows[streamed_id]["completion_tokens"] and rows[streamed_id]["latency_ms"] > 0
        assert all(r["status"] == 200 and r["prompt_tokens"] for r in rows.values())

        first = client.post(f"{url}/v1/feedback", headers=AUTH,
                            json={"request_id": ids["inc-0"], "root_cause_correct": True, "human_prompts": 2})
        assert first.status_code == 200 and first.json()["status"] == "stored"
        retry = client.post(f"{url}/v1/feedback", headers=AUTH,
                            json={"request_id": ids["inc-0"], "root_cause_correct": True, "human_prompts": 2})
        assert retry.status_code == 200 and retry.json()["status"] == "duplicate"
        differs = client.post(f"{url}/v1/feedback", headers=AUTH,
                              json={"request_id": ids["inc-0"], "root_cause_correct": False})
        assert differs.status_code == 409 and differs.json()["error"]["code"] == "feedback_conflict"
        unknown = client.post(f"{url}/v1/feedback", headers=AUTH, json={"request_id": "nope", "human_prompts": 1})
        assert unknown.status_code == 404
        bad = client.post(f"{url}/v1/feedback", headers=AUTH, json={"request_id": ids["inc-1"],
                                                                   "root_cause_correct": "yes"})
        assert bad.status_code == 400 and "root_cause_correct" in bad.json()["error"]["message"]
        assert client.post(f"{url}/v1/feedback", json={"request_id": ids["inc-1"], "human_prompts": 1},
                           headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert store.counts("exp-test")["feedback"] == 1

        os.kill(ab["treatment"].process.pid, signal.SIGKILL)  # the treatment dies
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not json.loads(ab["target"].read_text())["experiment"].get("killed"):
            time.sleep(0.2)
        experiment = json.loads(ab["target"].read_text())["experiment"]
        assert experiment["killed"] and "stopped answering" in experiment["killed_reason"]
        on_treatment = next(u for u, arm in arms.items() if arm == "treatment")
        after = client.post(f"{url}/v1/chat/completions", json=ASK, headers={**AUTH, "x-rcatune-unit": on_treatment})
        assert after.status_code == 200 and after.headers["x-rcatune-arm"] == "control"
    assert "switched off" in ab["log"].read_text()


def test_a_router_that_cannot_write_its_target_takes_a_switch_off_from_the_store(ab, tmp_path):
    """On Kubernetes the router's target is a ConfigMap mounted read-only, and several routers share one store:
    a switch-off recorded there (by another router, or the analysis) reaches this router within seconds."""
    from rcatune.deploy.router import STORE_CHECK_S
    from rcatune.deploy.smoke import wait_ready
    from rcatune.processes import free_port, spawn, stop_group

    mounted = tmp_path / "mounted"
    mounted.mkdir()
    target = mounted / "target.json"
    target.write_text(ab["target"].read_text())
    (mounted / "target.tmp").mkdir()  # where write_target stages: unwritable even for root, as EROFS is
    target.chmod(0o444)
    mounted.chmod(0o555)
    port = free_port()
    router = spawn([sys.executable, "-m", "rcatune.deploy.router", "--port", str(port), "--target-file",
                    str(target)], tmp_path / "router2.log", dict(os.environ, OMP_NUM_THREADS="1"))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, 120, alive=lambda: router.poll() is None, what="the second router")
        with httpx.Client(timeout=60) as client:
            units = {f"inc-{i}": client.post(f"{url}/v1/chat/completions", json=ASK, headers={
                **AUTH, "x-rcatune-unit": f"inc-{i}"}).headers["x-rcatune-arm"] for i in range(12)}
            on_treatment = next(u for u, arm in units.items() if arm == "treatment")
            store = ab["store"]
            store.start("exp-test", "1", "2", {})
            store.finish("exp-test", "switched_off", "keep_control", "latency p95 +40% beyond its margin")
            deadline = time.monotonic() + STORE_CHECK_S + 10
            arm = "treatment"
            while time.monotonic() < deadline and arm == "treatment":
                time.sleep(0.5)
                arm = client.post(f"{url}/v1/chat/completions", json=ASK, headers={
                    **AUTH, "x-rcatune-unit": on_treatment}).headers["x-rcatune-arm"]
            assert arm == "control"
            shown = client.get(f"{url}/router/status").json()["target"]["experiment"]
            assert shown["killed"] and shown["killed_reason"] == "latency p95 +40% beyond its margin"
        assert json.loads(target.read_text())["experiment"].get("killed") is None  # the file was never written
    finally:
        stop_group(router.pid)
        mounted.chmod(0o755)
