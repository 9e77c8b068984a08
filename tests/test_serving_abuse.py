"""The model server under hostile clients (issue 24, section 3), against the real server process on 127.0.0.1:
every case gets a clear 4xx (or a closed connection for a slow client), the server stays up, and the next
ordinary request is answered within a second. The cases and the figures come from bench/serving_abuse.py."""

from __future__ import annotations

import json

import pytest

from bench.serving_abuse import CASES, HEADER_TIMEOUT_S, ORDINARY, OUT_OF_RANGE, WRONG_TYPES, run_case, start_server
from rcatune.config.model import TinyModelConfig
from rcatune.models import model_path

pytestmark = pytest.mark.slow
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)


@pytest.fixture(scope="module")
def server(tmp_path_factory, state_home):
    from rcatune.processes import stop_group

    folder = tmp_path_factory.mktemp("abuse")
    started = start_server(model_path(TINY), folder)
    yield started
    stop_group(started.process.pid)
    assert "Traceback" not in (folder / "server.log").read_text()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_abuse_gets_a_clear_answer_and_the_next_ordinary_request_is_served(server, case):
    row = run_case(server, case)
    assert row["as_expected"], row
    assert row["server_alive"] and row["next_ordinary"] == "200", row
    assert row["next_ordinary_ms"] < 1000, row
    if case.name in ("slowloris_50", "never_speaks"):
        assert row["seconds"] < HEADER_TIMEOUT_S + 5, row  # closed at the head bound, not held
    if case.name == "burst_10x_queue":
        assert row["answers"].get("200") and row["answers"].get("429"), row


def test_refusals_are_openai_shaped_and_name_the_field(server):
    for extra in WRONG_TYPES + OUT_OF_RANGE:
        reply = server.post({**ORDINARY, **extra})
        error = reply.json()["error"]
        assert reply.status_code == 400 and set(error) == {"message", "type", "param", "code"}, extra
        assert error["type"] == "invalid_request_error" and error["param"], (extra, error)
        assert error["param"].split(".")[0].split("[")[0] in {*extra, "messages"}, (extra, error)
    long = server.post({**ORDINARY, "messages": [{"role": "user", "content": "x " * 5000}]}).json()["error"]
    assert long["code"] == "context_length_exceeded" and "context is 1024 tokens" in long["message"]
    nested = server.post('{"messages": ' + "[" * 5000 + "]" * 5000 + "}").json()["error"]
    assert "nests deeper" in nested["message"]


def test_clients_that_leave_take_their_work_with_them(server):
    before = server.metric("rcatune_abandoned_requests")
    for case in CASES:
        if case.name in ("left_plain", "left_mid_stream"):
            assert run_case(server, case)["as_expected"]
    assert server.metric("rcatune_abandoned_requests") - before == 6  # 3 plain, 3 streams


def test_unknown_paths_and_methods_answer_in_the_error_shape(server):
    import requests

    missing = requests.get(server.url + "/v1/nothing", timeout=10)
    wrong = requests.get(server.url + "/v1/chat/completions", timeout=10)
    assert missing.status_code == 404 and wrong.status_code == 405
    assert set(missing.json()["error"]) == set(wrong.json()["error"]) == {"message", "type", "param", "code"}


def test_a_stuck_worker_turns_the_probes_to_503(tmp_path):
    """A generation that cannot be stopped (a model selection that blocks: a failure that cannot be caused for
    real on purpose) makes /health and /ready say so once it runs past its bound; both recover after it."""
    import threading
    import time
    from contextlib import contextmanager

    from fastapi.testclient import TestClient

    from rcatune.config.serving import ServingConfig
    from rcatune.inference import load_base
    from rcatune.runtime import Runtime
    from rcatune.serving.app import create_app
    from rcatune.serving.engine import ServedModel

    release, blocking = threading.Event(), threading.Event()

    @contextmanager
    def use():
        if blocking.is_set():
            release.wait(60)
        yield
        time.sleep(0.5)  # the model handed back after the answer is out: the probes must not wait for that

    loaded = load_base(TINY, Runtime(device="cpu", progress=False))
    app = create_app([ServedModel("tiny", loaded, use=use)], ServingConfig(max_generation_s=0.4))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        blocking.set()
        worker = threading.Thread(target=lambda: client.post("/v1/chat/completions", json=ORDINARY))
        worker.start()
        time.sleep(2.0)
        health, ready = client.get("/health"), client.get("/ready")
        assert health.status_code == ready.status_code == 503, (health.text, ready.text)
        assert "a generation has run" in ready.json()["reason"]
        blocking.clear()
        release.set()
        worker.join(30)
        assert client.get("/ready").status_code == 200
    assert json.dumps(health.json())
