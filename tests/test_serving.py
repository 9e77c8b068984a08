"""The OpenAI-compatible server (first slice of issue 11) over a real uvicorn on 127.0.0.1: chat completions
plain, with n, streamed as server-sent events with usage; the model list; a diagnosis; errors in OpenAI's shape."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from rcatune.config.model import TinyModelConfig
from rcatune.demo.generator import generate_sessions
from rcatune.inference import load_base
from rcatune.runtime import Runtime

pytestmark = pytest.mark.slow
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)


def _serve(served=None, settings=None):
    """A real uvicorn on a free 127.0.0.1 port with `served` (ServedModel list; default: the tiny base model),
    once it is ready: (url, stop)."""
    import uvicorn

    from rcatune.config.serving import ServingConfig
    from rcatune.serving.app import create_app
    from rcatune.serving.engine import ServedModel

    if served is None:
        served = [ServedModel("tiny-base", load_base(TINY, Runtime(device="cpu", progress=False)))]
    app = create_app(served, settings or ServingConfig(max_tokens=64))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/ready", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    else:
        pytest.fail("the server never became ready")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return base, stop


@pytest.fixture(scope="module")
def url():
    base, stop = _serve()
    yield base
    stop()


def test_a_bearer_token_guards_the_api_but_not_the_probes(monkeypatch):
    from rcatune.config.serving import TOKEN_ENV

    monkeypatch.setenv(TOKEN_ENV, "s3cret-serve-token")
    base, stop = _serve()
    try:
        assert requests.get(base + "/v1/models", timeout=10).status_code == 401
        wrong = requests.get(base + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        right = requests.get(base + "/v1/models", headers={"Authorization": "Bearer s3cret-serve-token"}, timeout=10)
        assert right.status_code == 200 and requests.get(base + "/health", timeout=10).status_code == 200
    finally:
        stop()


def _chat(url, **body):
    return requests.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                             **body}, timeout=60)


def test_models_and_a_plain_completion_with_n(url):
    assert [m["id"] for m in requests.get(url + "/v1/models").json()["data"]] == ["tiny-base"]
    reply = _chat(url, model="tiny-base", max_tokens=8, n=2).json()
    assert reply["object"] == "chat.completion" and len(reply["choices"]) == 2
    assert all(c["finish_reason"] in ("stop", "length") for c in reply["choices"])
    cut = [c for c in reply["choices"] if c["finish_reason"] == "length"]  # ran out of max_tokens
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] >= 8 * len(cut)


def test_streaming_sends_the_role_first_the_finish_reason_last_then_usage_and_done(url):
    reply = _chat(url, max_tokens=8, stream=True, stream_options={"include_usage": True})
    events = [line.decode()[len("data: "):] for line in reply.iter_lines() if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"]]
    assert [c["choices"][0]["finish_reason"] for c in content][:-1] == [None] * (len(content) - 1)
    assert content[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    plain = _chat(url, max_tokens=8).json()  # greedy: the stream says what the plain call says
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in content) == \
        plain["choices"][0]["message"]["content"]


def test_errors_are_openai_shaped_with_the_right_status(url):
    cases = [({"messages": []}, 400, "messages"), ({"model": "nope"}, 404, "model"),
             ({"max_tokens": 1000}, 400, "max_tokens"), ({"n": 99}, 400, "n")]
    for body, status, param in cases:
        reply = requests.post(url + "/v1/chat/completions",
                              json={"messages": [{"role": "user", "content": "x"}], **body}, timeout=60)
        assert reply.status_code == status, body
        error = reply.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["param"] == param
    bad = requests.post(url + "/v1/chat/completions", data="not json", timeout=10)
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]["message"]


def test_diagnose_takes_a_session_and_returns_the_structured_answer(url):
    session = next(iter(generate_sessions(1, seed=3)))
    reply = requests.post(url + "/v1/diagnose", json={"session": session, "max_tokens": 16}, timeout=60)
    assert reply.status_code == 200
    answer = reply.json()["answer"]
    assert set(answer) == {"root_cause", "diagnostic_query", "critical_paths", "remediation_steps", "query_parses"}
    assert answer["query_parses"] is False  # an untrained model writes no query
    broken = requests.post(url + "/v1/diagnose", json={"session": {"symptoms": []}}, timeout=60)
    assert broken.status_code == 422 and broken.json()["error"]["param"] == "session"
    # without time_range the error names time_range (it used to name timestamp, a field nobody sends)
    timeless = {k: v for k, v in session.items() if k not in ("time_range", "timestamp")}
    missing = requests.post(url + "/v1/diagnose", json={"session": timeless}, timeout=60).json()["error"]
    assert "time_range" in missing["message"] and "timestamp" not in missing["message"], missing


def test_the_official_openai_client_plain_and_streaming(url):
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["tiny-base"]
    messages = [{"role": "user", "content": "the checkout service returns 503"}]
    plain = client.chat.completions.create(model="tiny-base", messages=messages, max_tokens=8, seed=1)
    assert plain.choices[0].finish_reason in ("stop", "length") and plain.usage.completion_tokens > 0
    stream = client.chat.completions.create(model="tiny-base", messages=messages, max_tokens=8, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(NotFoundError, match="is not served here"):
        client.chat.completions.create(model="nope", messages=messages, max_tokens=8)


def test_metrics_count_what_the_requests_did(url):
    def sample(text: str, name: str, **labels) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(text):
            for point in family.samples:
                if point.name == name and all(point.labels.get(k) == v for k, v in labels.items()):
                    return point.value
        return 0.0

    before = requests.get(url + "/metrics", timeout=10).text
    reply = _chat(url, max_tokens=8).json()
    assert _chat(url, max_tokens=8, stream=True).content.endswith(b"data: [DONE]\n\n")
    requests.post(url + "/v1/chat/completions", json={"model": "nope", "messages": []}, timeout=10)
    after = requests.get(url + "/metrics", timeout=10).text
    out = sample(after, "rcatune_tokens_total", model="tiny-base", direction="out") - \
        sample(before, "rcatune_tokens_total", model="tiny-base", direction="out")
    assert out >= reply["usage"]["completion_tokens"] + 1
    requests_counted = "rcatune_request_seconds_count"
    assert sample(after, requests_counted, endpoint="chat") > sample(before, requests_counted, endpoint="chat")
    assert sample(after, "rcatune_time_to_first_token_seconds_count") >= 1
    errors = "rcatune_errors_total"
    assert sample(after, errors, status="404") - sample(before, errors, status="404") == 1
    assert "rcatune_queue_depth 0.0" in after
