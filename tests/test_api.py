"""The control API: tokens stored hashed with scopes (401 and 403 as the standards say), every change audited,
job requests composed and checked before anything queues; and, with real processes, a fine-tuning job started
over HTTP that outlives a kill -9 of the API, the new version listed, deployed, queried with the openai client,
rolled back, and a job cancelled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from rcatune.config.api import ApiConfig
from tests.conftest import ROOT, SERVABLE_OVERRIDES


@pytest.fixture(scope="module")
def api(state_home):
    from fastapi.testclient import TestClient

    from rcatune.api.app import create_app

    app = create_app(ApiConfig(max_body_bytes=4096), run_jobs=False)  # jobs queue; nothing starts them here
    with TestClient(app) as client:
        tokens = {scope: app.state.tokens.create(f"t-{scope}", (scope,))[1] for scope in ("read", "train", "admin")}
        yield client, tokens, app


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_are_stored_hashed_scoped_and_revocable(api, state_home):
    from rcatune.api.tokens import TokenStore, parse_scopes
    from rcatune.errors import ConfigError

    _, _, app = api
    store: TokenStore = app.state.tokens
    token_id, token = store.create("ci", parse_scopes("read,train"))
    caller = store.verify(token)
    assert caller.name == "ci" and caller.may("train") and caller.may("read") and not caller.may("deploy")
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character off
    assert store.verify("rct_" + token_id + "_" + "x" * 43) is None and store.verify("Bearer nonsense") is None
    secret = token.rsplit("_", 1)[1]
    assert secret.encode() not in (state_home / "api" / "api.db").read_bytes()  # only its bcrypt hash is kept
    assert all("hash" not in row for row in store.list())
    assert store.revoke(token_id) and store.verify(token) is None and not store.revoke(token_id)
    with pytest.raises(ConfigError, match="read, train, deploy, admin"):
        parse_scopes("read,root")


def test_no_token_is_401_a_missing_scope_403_and_every_error_has_one_shape(api, state_home):
    client, tokens, _ = api
    bare = client.get("/api/v1/jobs")
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="rcatune"'
    assert bare.json()["error"]["code"] == "missing_token"
    wrong = client.get("/api/v1/jobs", headers=_auth("rct_000000000000_" + "a" * 43))
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    refused = client.post("/api/v1/deployments", json={"version": "1"}, headers=_auth(tokens["read"]))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert 'scope="deploy"' in refused.headers["www-authenticate"]
    audit = [json.loads(line) for line in (state_home / "api" / "audit.jsonl").read_text().splitlines()]
    assert any(e["status"] == 403 and e["who"].startswith("t-read") and e["action"] == "POST /api/v1/deployments"
               for e in audit)
    assert client.get("/api/v1/jobs/job-000000000000", headers=_auth(tokens["read"])).status_code == 404
    bad_id = client.get("/api/v1/jobs/..%2Fetc", headers=_auth(tokens["read"]))
    assert bad_id.status_code in (404, 422) and "error" in bad_id.json()
    big = client.post("/api/v1/jobs", content=b'{"overrides": ["' + b"x" * 5000 + b'"]}',
                      headers={**_auth(tokens["train"]), "content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    shape = client.post("/api/v1/jobs", json={"pipeline": "nope"}, headers=_auth(tokens["train"]))
    assert shape.status_code == 422 and shape.json()["error"]["param"] == "pipeline"
    assert client.get("/health").json() == {"status": "ok"} and client.get("/ready").status_code == 200
    metrics = client.get("/metrics").text
    assert 'rcatune_api_requests_total{method="GET",route="/api/v1/jobs",status="401"}' in metrics


def test_a_job_request_is_composed_and_checked_before_it_queues(api):
    client, tokens, _ = api
    train = _auth(tokens["train"])

    def refused(*overrides: str) -> dict:
        reply = client.post("/api/v1/jobs", json={"pipeline": "prepare", "overrides": list(overrides)}, headers=train)
        assert reply.status_code == 422, reply.text
        return reply.json()["error"]

    group = refused("data=nope")
    assert group["param"] == "data" and "available options in 'data': annotated, clickhouse, csv" in group["message"]
    assert refused("data.size=many")["param"] == "data.size"
    assert "outside the folders" in refused("data=jsonl", "data.path=/etc/passwd")["message"]
    assert "outside the folders" in refused("data=jsonl", "data.path=../../etc/passwd")["message"]
    assert "outside the folders" in refused("data=jsonl", "data.path=run.py")["message"]  # a file of the checkout
    assert "set by the control API" in refused("hydra.run.dir=/tmp/elsewhere")["message"]
    assert "interpolations" in refused("data.size=${oc.env:HOME}")["message"]
    assert "a sweep runs from the command line" in refused("hparams_search=optuna")["message"]
    assert refused("--multirun")["param"] == "overrides.0"  # the schema says KEY=VALUE

    queued = client.post("/api/v1/jobs", json={"pipeline": "prepare", "overrides": ["data.size=20"]}, headers=train)
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    job = queued.json()["id"]
    assert json.loads((ROOT / queued.json()["run_dir"] / "job.json").read_text())["overrides"] == [
        "pipeline=prepare", "data.size=20"]
    listed = client.get("/api/v1/jobs", params={"state": "queued"}, headers=_auth(tokens["read"])).json()["jobs"]
    assert job in [j["id"] for j in listed]
    cancelled = client.post(f"/api/v1/jobs/{job}/cancel", headers=train)
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["cancelled_by"].startswith("t-train")
    again = client.post(f"/api/v1/jobs/{job}/cancel", headers=train)
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_ended"
    assert 'rcatune_api_jobs{state="cancelled"}' in client.get("/metrics").text


def test_a_job_that_cannot_start_fails_with_why_and_is_not_retried(api, tmp_path):
    import shutil

    from rcatune.api.jobs import JobRunner

    client, tokens, app = api
    queued = client.post("/api/v1/jobs", json={"pipeline": "prepare", "overrides": ["data.size=20"]},
                         headers=_auth(tokens["train"])).json()
    for job in app.state.table.list("queued"):  # only this one may start here
        if job["id"] != queued["id"]:
            app.state.table.update(job["id"], state="cancelled")
    shutil.rmtree(queued["run_dir"])  # its job.json is gone
    JobRunner(app.state.table, ApiConfig()).tick()
    failed = app.state.table.get(queued["id"])
    assert failed["state"] == "failed" and failed["error"].startswith("could not start: ")


# ------------------------------------------------------------------------------------------ real processes
def _start_api(port: int, log) -> subprocess.Popen:
    from rcatune.deploy.smoke import wait_ready

    settings = [f"deployers={{local:[deployer.port={_free()}]}}", "poll_s=0.3", "cancel_grace_s=20"]
    process = subprocess.Popen([sys.executable, "-m", "rcatune.api", "--port", str(port), *settings], cwd=ROOT,
                               env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    wait_ready(f"http://127.0.0.1:{port}", 120, alive=lambda: process.poll() is None, what="the control API")
    return process


def _free() -> int:
    from rcatune.processes import free_port

    return free_port()


def _token(scope: str) -> str:
    made = subprocess.run([sys.executable, "-m", "rcatune.api.cli", "token", "create", "--name", f"it-{scope}",
                           "--scope", scope], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "shown once" in made.stderr
    return made.stdout.strip()


def _wait(client: httpx.Client, job: str, until, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = client.get(f"/api/v1/jobs/{job}").json()
        if until(seen):
            return seen
        time.sleep(0.5)
    raise AssertionError(f"job {job} never got there: {seen}")


@pytest.mark.integration
@pytest.mark.slow
def test_a_job_over_http_outlives_a_killed_api_and_its_version_ships_and_rolls_back(servable_versions, tmp_path):
    from openai import OpenAI

    from rcatune.processes import stop_group

    port, log = _free(), open(tmp_path / "api.log", "ab")
    admin, reader = _token("admin"), _token("read")
    api = _start_api(port, log)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers=_auth(admin), timeout=120)
    try:
        started = client.post("/api/v1/jobs", json={"pipeline": "fine_tuning",
                                                    "overrides": [*SERVABLE_OVERRIDES, "seed=5"]})
        assert started.status_code == 202, started.text
        job = started.json()["id"]
        training = _wait(client, job, lambda j: (j.get("progress") or {}).get("current") == "train_model")
        assert training["state"] == "running" and training["progress"]["steps"] >= 6
        os.kill(api.pid, signal.SIGKILL)  # the API dies mid-job; the job's process is in a session of its own
        api.wait()
        pid = training["pid"]
        os.kill(pid, 0)  # the job runs on without the API
        api = _start_api(port, log)
        assert client.get(f"/api/v1/jobs/{job}").json()["state"] == "running"  # found again, not lost
        done = _wait(client, job, lambda j: j["state"] not in ("queued", "running"))
        assert done["state"] == "succeeded", done
        assert done["summary"]["status"] == "succeeded" and done["log_tail"]
        from rcatune.api.jobs import process_started

        assert process_started(pid) is None  # ended (a zombie at most, where the container's init does not reap)
        number = done["summary"]["decisions"]["zenml_model_version"].rsplit(" v", 1)[1]
        versions = {v["number"]: v for v in client.get("/api/v1/models").json()["versions"]}
        assert number in versions and versions[number]["metrics"]["perplexity"] > 0
        assert versions[number]["data_hash"] != "unknown"
        promoted = client.post(f"/api/v1/models/{number}/promote", json={"stage": "staging",
                                                                          "reason": "the API test's own"})
        assert promoted.status_code == 200 and promoted.json()["stage"] == "staging"
        assert promoted.json()["stage_history"][-1]["by"].startswith("it-admin")

        refused = httpx.post(f"{base}/api/v1/deployments", json={"version": number}, headers=_auth(reader))
        assert refused.status_code == 403
        first = servable_versions[0]["number"]
        one = client.post("/api/v1/deployments", json={"version": first, "name": "viaapi"})
        assert one.status_code == 200, one.text
        two = client.post("/api/v1/deployments", json={"version": number, "name": "viaapi", "force": True,
                                                        "reason": "the API test ships what it trained"})
        assert two.status_code == 200, two.text
        endpoint = two.json()["record"]["endpoint"]
        answer = OpenAI(base_url=f"{endpoint}/v1", api_key="unused", max_retries=0).chat.completions.create(
            model="rcatune-rca", max_tokens=8, messages=[{"role": "user", "content": "cart errors since 14:02"}])
        assert answer.model == f"rcatune-rca-v{number}"
        back = client.post("/api/v1/deployments/local/viaapi/rollback")
        assert back.status_code == 200 and back.json()["record"]["version"] == first
        status = client.get("/api/v1/deployments/local/viaapi").json()
        assert status["status"]["version"] == first and [r["action"] for r in status["history"]][-3:] == [
            "deploy", "deploy", "rollback"]
        nothing = client.get("/api/v1/abtests/local/viaapi")
        assert nothing.status_code == 409 and "no A/B test" in nothing.json()["error"]["message"]
        assert client.post("/api/v1/deployments/local/viaapi/stop").status_code == 200

        cancelled = client.post("/api/v1/jobs", json={"pipeline": "fine_tuning",
                                                      "overrides": [*SERVABLE_OVERRIDES, "seed=6"]}).json()["id"]
        _wait(client, cancelled, lambda j: (j.get("progress") or {}).get("current") == "train_model")
        assert client.post(f"/api/v1/jobs/{cancelled}/cancel").status_code == 200
        ended = _wait(client, cancelled, lambda j: j["state"] != "running", timeout=60)
        assert ended["state"] == "cancelled" and ended["error"].startswith("cancelled by it-admin")
        audit = [json.loads(line) for line in (_state() / "api" / "audit.jsonl").read_text().splitlines()]
        actions = [(e["action"], e["status"]) for e in audit if e["who"].startswith("it-")]
        assert ("POST /deployments", 200) in actions and ("POST /deployments/rollback", 200) in actions
        assert ("POST /api/v1/deployments", 403) in actions and ("POST /jobs/cancel", 200) in actions
    finally:
        client.close()
        stop_group(api.pid)
        log.close()


def _state():
    from rcatune.state import state_dir

    return state_dir()
