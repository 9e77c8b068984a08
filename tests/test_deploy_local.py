"""deployer=local through `python run.py pipeline=deployment`: deploy a registered version, query it with the
official openai client (plain and streamed), deploy a second, roll back to the first (a switch to the warm
instance), check the registry moved with it, stop; and every fault leaves the last good version serving."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

from tests.conftest import run_py

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _deploy(tmp_path, name: str, *args: str, check: bool = True):
    run_dir = tmp_path / name
    result = run_py("pipeline=deployment", "progress=false", f"hydra.run.dir={run_dir}", *args, check=check)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    return result, summary


def _ask(endpoint: str, stream: bool = False):
    from openai import OpenAI

    client = OpenAI(base_url=endpoint + "/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "checkout returns 500 since 14:02"}]
    if stream:
        chunks = list(client.chat.completions.create(model="rcatune-rca", messages=messages, max_tokens=16,
                                                     stream=True, stream_options={"include_usage": True}))
        return chunks[0].model, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks
    reply = client.chat.completions.create(model="rcatune-rca", messages=messages, max_tokens=16)
    return reply.model, reply.choices[0].message.content, reply


def test_deploy_query_deploy_again_roll_back_and_stop(servable_versions, tmp_path):
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from rcatune.deploy.records import history

    first, second = (v["number"] for v in servable_versions)
    where = [f"deployer.port={_free_port()}", "deployer.name=contract"]
    _, one = _deploy(tmp_path, "one", *where, f"deployment.version={first}")
    deployed = one["deployment"]
    assert (deployed["version"], deployed["previous"], deployed["action"]) == (first, None, "deploy")
    endpoint = deployed["endpoint"]
    model, text, _ = _ask(endpoint)
    assert model == f"rcatune-rca-v{first}" and text
    streamed_model, streamed, chunks = _ask(endpoint, stream=True)
    assert streamed_model == model and streamed == text and chunks[-1].usage.completion_tokens > 0

    _, two = _deploy(tmp_path, "two", *where, f"deployment.version={second}")
    assert (two["deployment"]["version"], two["deployment"]["previous"]) == (second, first)
    assert two["deployment"]["endpoint"] == endpoint and _ask(endpoint)[0] == f"rcatune-rca-v{second}"

    _, back = _deploy(tmp_path, "back", *where, "deployment.action=rollback")
    rolled = back["deployment"]
    assert (rolled["action"], rolled["version"], rolled["previous"]) == ("rollback", first, second)
    assert rolled["detail"]["warm"] is True and rolled["detail"]["switch_seconds"] < 5
    assert _ask(endpoint)[0] == f"rcatune-rca-v{first}"  # the first answers again

    assert Client().get_model_version("rcatune-rca", "production").number == int(first)
    client = MlflowClient()
    champion = client.get_model_version_by_alias("rcatune-rca", "champion")
    assert champion.tags["zenml_version"] == first and champion.tags["deployed.action"] == "rollback"
    assert [(r.action, r.version, r.previous) for r in history("local", "contract")] == [
        ("deploy", first, None), ("deploy", second, first), ("rollback", first, second)]

    _, status = _deploy(tmp_path, "status", *where, "deployment.action=status")
    assert status["deployment"]["version"] == first and status["deployment"]["active"]["answers"]
    assert status["deployment"]["previous"]["version"] == second  # kept warm: a rollback away

    _, stopped = _deploy(tmp_path, "stop", *where, "deployment.action=stop")
    assert stopped["deployment"]["previous"] == first and stopped["deployment"]["version"] is None
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint + "/ready", timeout=5)


def test_faults_leave_the_last_good_version_serving(servable_versions, tmp_path, state_home):
    from rcatune.config.deployer import LocalDeployerConfig
    from rcatune.config.model import TinyModelConfig
    from rcatune.config.serving import ServingConfig
    from rcatune.deploy import DeploymentError, release
    from rcatune.deploy.local import LocalDeployer
    from rcatune.deploy.records import Release
    from rcatune.models import model_path

    first = servable_versions[0]["number"]
    port = _free_port()
    deployer = LocalDeployer(LocalDeployerConfig(name="faults", port=port), ServingConfig(ready_timeout_s=120))
    with pytest.raises(DeploymentError, match="nothing to roll back to: nothing is deployed"):
        deployer.rollback()
    # an untrained model answers with no root cause: it fails its smoke test
    untrained = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, vocab_size=1024)
    broken = Release(registry_name="rcatune-rca", version="900", served_name="rcatune-rca-v900",
                     folder=model_path(untrained))
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.raises(DeploymentError, match="v900 failed its smoke test: .*nothing serves"):
        deployer.deploy(broken)  # a failed first deploy leaves no router listening with nothing behind it
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint + "/ready", timeout=5)
    good = release("rcatune-rca", first)
    deployer.deploy(good)
    try:
        # v{first} keeps serving when the next one fails its smoke test
        with pytest.raises(DeploymentError, match=rf"v900 failed its smoke test: .*still serving v{first}") as why:
            deployer.deploy(broken)
        began = str(why.value).split("it began ", 1)[1].split("); is this")[0]
        assert len(began) < 200, began  # a quote of the answer, not all of it
        assert requests.get(endpoint + "/ready", timeout=10).headers["x-rcatune-version"] == first
        missing = broken.model_copy(update={"folder": str(tmp_path / "gone")})
        with pytest.raises(DeploymentError, match="missing or holds no model"):
            deployer.deploy(missing)
        with pytest.raises(DeploymentError, match=rf"nothing to roll back to: only v{first} was deployed"):
            deployer.rollback()

        # requests the server refuses come back through the router in OpenAI's shape
        chat = endpoint + "/v1/chat/completions"
        malformed = requests.post(chat, json={"messages": "not a list"}, timeout=30)
        capped = requests.post(chat, json={"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6},
                               timeout=30)
        large = requests.post(chat, data=b"{" + b" " * 300_000 + b"}", timeout=30)
        assert [r.status_code for r in (malformed, capped, large)] == [400, 400, 413]
        assert malformed.json()["error"]["param"] == "messages" and capped.json()["error"]["param"] == "max_tokens"

        # the same through run.py: one line each, no traceback, the deployment untouched
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        try:
            taken, _ = _deploy(tmp_path, "taken", f"deployer.port={busy.getsockname()[1]}", "deployer.name=other",
                               f"deployment.version={first}", check=False)
        finally:
            busy.close()
        assert taken.returncode == 2 and "in use by another program" in taken.stderr
        unknown, _ = _deploy(tmp_path, "unknown", f"deployer.port={port}", "deployer.name=faults",
                             "deployment.version=999", check=False)
        assert unknown.returncode == 2 and "model version '999' of 'rcatune-rca' does not exist" in unknown.stderr
        for result in (taken, unknown):
            assert "Traceback" not in result.stderr and result.stderr.count("rcatune: error:") == 1
        assert requests.get(endpoint + "/ready", timeout=10).headers["x-rcatune-version"] == first
    finally:
        deployer.stop()
    assert Path(state_home / "deployments" / "records.jsonl").exists()


def test_no_secret_or_request_content_reaches_the_deployment_files_or_the_serving_logs(servable_versions, tmp_path,
                                                                                    state_home, monkeypatch):
    """The serve token (and every other secret the project reads) and what clients send (planted personal data,
    a wrong token, refused and failing requests) reach none of the files a deployment writes: its state, the
    router's target, the records, the instances' and the router's logs, the run folders, MLflow and ZenML."""
    from tests.test_annotation_server import _forms, _scan

    secrets = {"RCATUNE_SERVE_TOKEN": "LeakScanServeToken-9xQ2", "HF_TOKEN": "hf_LeakScanDeployToken4Zr",
               "RCATUNE_SCRUB_KEY": "leakscan-deploy-scrub-7Lw"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    first = servable_versions[0]["number"]
    where = [f"deployer.port={_free_port()}", "deployer.name=leaks"]
    _, deployed = _deploy(tmp_path, "deploy", *where, f"deployment.version={first}")
    chat = deployed["deployment"]["endpoint"] + "/v1/chat/completions"
    planted = {"email": "leak.scan.person@example.org", "card": "4000 0566 5566 5556",
               "wrong token": "LeakScanWrongToken-3pV7"}
    auth = {"Authorization": f"Bearer {secrets['RCATUNE_SERVE_TOKEN']}"}
    asked = [{"role": "user", "content": f"checkout fails for {planted['email']} paying with {planted['card']}"}]
    replies = [requests.post(chat, json={"messages": asked, "max_tokens": 8}, headers=auth, timeout=60),
               requests.post(chat, json={"messages": asked, "max_tokens": 8, "stream": True}, headers=auth,
                             timeout=60),
               requests.post(chat, json={"messages": asked}, timeout=60,
                             headers={"Authorization": f"Bearer {planted['wrong token']}"}),
               requests.post(chat, json={"messages": asked, "temperature": planted["email"]}, headers=auth,
                             timeout=60)]
    assert [r.status_code for r in replies] == [200, 200, 401, 400]
    _deploy(tmp_path, "status", *where, "deployment.action=status")
    _deploy(tmp_path, "stop", *where, "deployment.action=stop")

    needles = {f"${name}": _forms(value) for name, value in secrets.items()}
    needles.update({f"planted {name}": _forms(value) for name, value in planted.items()})
    sent = tmp_path.parent / f"{tmp_path.name}-sent" / "request.json"  # what the client sent: the scan finds it
    sent.parent.mkdir(exist_ok=True)
    sent.write_text(json.dumps({"messages": asked, "headers": auth}))
    assert len(_scan([sent.parent], needles)[1]) == 3
    roots = [state_home / "deployments", state_home / "mlflow", state_home / "zenml", tmp_path]
    files, hits = _scan(roots, needles)
    logs = list((state_home / "deployments" / "local" / "leaks").rglob("*.log"))
    print(f"\nleak scan (deployment): {files} files, {len(logs)} logs, {len(needles)} needles, {len(hits)} hits")
    assert logs and files > 20 and not hits, hits


def _serving_version(endpoint: str, token: str | None = None) -> str | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = requests.post(endpoint + "/v1/chat/completions", headers=headers, timeout=10, json={
            "messages": [{"role": "user", "content": "checkout fails"}], "max_tokens": 4})
    except requests.RequestException:
        return None
    return reply.headers.get("x-rcatune-version") if reply.status_code == 200 else str(reply.status_code)


def test_failover_auth_threads_and_status_fail_safe(servable_versions, tmp_path, monkeypatch):
    """kill -9 of the serving instance: the router fails over to the warm previous within 5 s and it is recorded
    as an automatic rollback; a rollback from a shell without the token keeps the token required; a deploy that
    would drop it is refused; the servers run auto threads (the cores over the two a deployment keeps); status
    names pids, ports and auth, and exits non-zero when nothing answers."""
    import os
    import signal
    import time

    from zenml.client import Client

    from rcatune.deploy.records import deployments_dir, history
    from rcatune.serving.threads import available_cores

    token = "failover-test-token-42"
    monkeypatch.setenv("RCATUNE_SERVE_TOKEN", token)
    first, second = (v["number"] for v in servable_versions)
    where = [f"deployer.port={_free_port()}", "deployer.name=failsafe"]
    _, one = _deploy(tmp_path, "one", *where, f"deployment.version={first}")
    endpoint = one["deployment"]["endpoint"]
    _deploy(tmp_path, "two", *where, f"deployment.version={second}")
    assert _serving_version(endpoint, token) == second
    health = requests.get(endpoint + "/health", timeout=10).json()
    assert health["threads"] == max(1, available_cores() // 2) and health["auth"] == "on"

    state = json.loads((deployments_dir() / "local" / "failsafe" / "state.json").read_text())
    os.killpg(state["active"]["pid"], signal.SIGKILL)
    killed = time.monotonic()
    while _serving_version(endpoint, token) != first:
        assert time.monotonic() - killed < 5, "no failover to the warm previous within 5 s"
        time.sleep(0.1)
    failover_s = time.monotonic() - killed
    print(f"\nfailover: v{first} answered {failover_s:.2f} s after v{second} was killed")
    deadline = time.monotonic() + 120
    while not (history("local", "failsafe")[-1].action == "rollback"
               and Client().get_model_version("rcatune-rca", "production").number == int(first)):
        assert time.monotonic() < deadline, "the failover was not recorded in the records and the registry"
        time.sleep(0.5)
    record = history("local", "failsafe")[-1]
    assert (record.version, record.previous) == (first, second) and "failover" in record.detail["automatic"]

    # a deploy over the crashed one keeps nothing dead as its previous; auth stays the deployment's
    _deploy(tmp_path, "again", *where, f"deployment.version={second}")
    monkeypatch.delenv("RCATUNE_SERVE_TOKEN")
    _, back = _deploy(tmp_path, "back", *where, "deployment.action=rollback")  # a shell without the token
    assert back["deployment"]["version"] == first
    assert _serving_version(endpoint) == "401" and _serving_version(endpoint, "wrong") == "401"
    assert _serving_version(endpoint, token) == first
    refused, _ = _deploy(tmp_path, "open", *where, f"deployment.version={second}", check=False)
    assert refused.returncode == 2 and "would change deployment failsafe's auth" in refused.stderr
    assert "deployer.change_auth=true" in refused.stderr and refused.stderr.count("\n") == 1

    monkeypatch.setenv("RCATUNE_SERVE_TOKEN", token)
    result, status = _deploy(tmp_path, "status", *where, "deployment.action=status")
    shown = status["deployment"]
    assert shown["answers"] and shown["auth"] == "on" and shown["router"]["pid"] and shown["active"]["port"]
    assert f"pid {shown['active']['pid']} port {shown['active']['port']}" in result.stdout
    for role in ("active", "previous"):
        if shown.get(role):
            os.killpg(shown[role]["pid"], signal.SIGKILL)
    dead, _ = _deploy(tmp_path, "dead", *where, "deployment.action=status", check=False)
    assert dead.returncode == 2 and "does not answer" in dead.stderr
    _deploy(tmp_path, "stop", *where, "deployment.action=stop")


def test_a_gate_failed_version_is_refused_and_a_forced_one_recorded(tmp_path):
    from rcatune.deploy.records import history
    from tests.conftest import SERVABLE_OVERRIDES

    failing = [o for o in SERVABLE_OVERRIDES if not o.startswith(("evaluation.min", "evaluation.max_p",
                                                                   "evaluation.require"))]
    run_dir = tmp_path / "trained"
    run_py(*failing, "seed=5", f"hydra.run.dir={run_dir}")  # answers in format (a smoke test passes), gate fails
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["decisions"]["stage"] == "none"
    number = summary["decisions"]["zenml_model_version"].rsplit(" v", 1)[1]
    where = [f"deployer.port={_free_port()}", "deployer.name=gated", f"deployment.version={number}"]
    refused, _ = _deploy(tmp_path, "refused", *where, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"v{number} (no stage) is refused: it failed its gate (rca_accuracy" in refused.stderr
    assert "deployment.force=true" in refused.stderr
    unreasoned = run_py("pipeline=deployment", *where, "deployment.force=true", check=False)  # refused at composition
    assert unreasoned.returncode == 2 and "deployment.reason: a forced deploy needs a reason" in unreasoned.stderr
    _, forced = _deploy(tmp_path, "forced", *where, "deployment.force=true",
                        "deployment.reason=hotfix drill approved by on-call")
    detail = history("local", "gated")[-1].detail["forced"]
    assert detail["reason"] == "hotfix drill approved by on-call" and "@" in detail["by"]
    assert "failed its gate" in detail["refused_because"] and forced["deployment"]["detail"]["forced"] == detail
    _deploy(tmp_path, "stop", *where[:2], "deployment.action=stop")
