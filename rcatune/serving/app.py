"""An OpenAI-compatible server over the inference layer (first slice of issue 11).

One process serves several models (`ServedModel`s, each a loaded model under a name, with its parent).
Plain generations run on one worker thread; beyond `max_queue` waiting requests, 429. Not yet here:
streams bypass that queue, no batching across requests, no CLI or deployer (issue 11).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

TOKEN_ENV = "RCATUNE_SERVE_TOKEN"


@dataclass
class ServedModel:
    name: str
    loaded: Any  # rcatune.inference.LoadedModel
    parent: Optional[str] = None
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass(frozen=True)
class ServeLimits:
    max_queue: int = 16
    max_tokens: int = 512
    max_request_bytes: int = 262_144
    max_n: int = 4


class Metrics:
    """Prometheus figures of one app, in a registry of its own (several apps may live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        buckets = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
        self.latency = Histogram("rcatune_request_seconds", "Request latency", ["endpoint", "model"],
                                 buckets=buckets, registry=self.registry)
        self.ttft = Histogram("rcatune_time_to_first_token_seconds", "Time to the first streamed token", ["model"],
                              buckets=buckets, registry=self.registry)
        self.tokens = Counter("rcatune_tokens", "Tokens in (prompt) and out (completion)", ["model", "direction"],
                              registry=self.registry)
        self.queue = Gauge("rcatune_queue_depth", "Requests waiting to generate", registry=self.registry)
        self.errors = Counter("rcatune_errors", "Errors returned, by type and status", ["type", "status"],
                              registry=self.registry)

    def count(self, model: str, prompt: int, completion: int) -> None:
        self.tokens.labels(model, "in").inc(prompt)
        self.tokens.labels(model, "out").inc(completion)


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _settings(body: dict, limits: ServeLimits):
    from rcatune.inference import GenerationSettings

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens")) or limits.max_tokens
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "max_tokens must be a positive integer", param="max_tokens")
    if max_tokens > limits.max_tokens:
        raise ApiError(400, f"max_tokens {max_tokens} is over this server's cap of {limits.max_tokens}",
                       param="max_tokens")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    temperature = float(body.get("temperature", 0.0) or 0.0)
    return GenerationSettings(max_new_tokens=max_tokens, temperature=temperature,
                              top_p=float(body.get("top_p", 1.0) or 1.0), stop=stop, seed=body.get("seed"))


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise ApiError(400, f"messages[{i}] needs a role (system, user, assistant) and string content",
                           param=f"messages[{i}]")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def create_app(models: list[ServedModel], limits: ServeLimits = ServeLimits(), system_prompt: Optional[str] = None):
    from rcatune.inference import Generator

    app = FastAPI(title="rcatune serve")
    by_name = {m.name: m for m in models}
    generators = {m.name: Generator(m.loaded) for m in models}
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
    state = {"waiting": 0, "ready": False}
    metrics = Metrics()
    app.state.metrics = metrics
    token = os.environ.get(TOKEN_ENV)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError):
        metrics.errors.labels(error.type, str(error.status)).inc()
        return JSONResponse(error.body(), status_code=error.status)

    def _guard(request: Request) -> None:
        if token and request.headers.get("authorization") != f"Bearer {token}":
            raise ApiError(401, "missing or wrong bearer token", "authentication_error", code="invalid_api_key")

    async def _body(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > limits.max_request_bytes:
            raise ApiError(413, f"request of {len(raw)} bytes is over the cap of {limits.max_request_bytes}")
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def _model(body: dict) -> str:
        name = body.get("model") or models[0].name
        if name not in by_name:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists them", param="model",
                           code="model_not_found")
        return name

    async def _run(call):
        if state["waiting"] >= limits.max_queue:
            raise ApiError(429, f"{state['waiting']} requests are waiting (the cap); retry later",
                           "rate_limit_error")
        state["waiting"] += 1
        metrics.queue.set(state["waiting"])
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        finally:
            state["waiting"] -= 1
            metrics.queue.set(state["waiting"])

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if not state["ready"]:
            return JSONResponse({"ready": False}, status_code=503)
        return {"ready": True, "models": list(by_name)}

    @app.get("/metrics")
    async def prometheus():
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models(request: Request):
        _guard(request)
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created,
                                            "owned_by": "rcatune", "root": m.name, "parent": m.parent}
                                           for m in models]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        started = time.perf_counter()
        _guard(request)
        body = await _body(request)
        name, messages, settings = _model(body), _messages(body), _settings(body, limits)
        n = body.get("n", 1) or 1
        if not isinstance(n, int) or not 1 <= n <= limits.max_n:
            raise ApiError(400, f"n must be 1 to {limits.max_n}", param="n")
        json_mode = (body.get("response_format") or {}).get("type") == "json_object"
        generator, created, rid = generators[name], int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            if n != 1:
                raise ApiError(400, "stream supports n=1 only", param="n")
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(generator, messages, settings, name, rid, created, usage, started),
                                     media_type="text/event-stream")
        completions = await _run(lambda: generator.complete([messages] * n, settings))
        choices = []
        for i, c in enumerate(completions):
            text = _as_json(c.text) if json_mode else c.text
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": c.finish_reason, "logprobs": None})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        metrics.count(name, prompt, out)
        metrics.latency.labels("chat", name).observe(time.perf_counter() - started)
        return {"id": rid, "object": "chat.completion", "created": created, "model": name, "choices": choices,
                "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}}

    def _sse(generator, messages, settings, name, rid, created, usage, started) -> Iterator[str]:
        def chunk(delta: dict, finish: Optional[str] = None, **extra) -> str:
            return "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                                          "model": name, "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}], **extra}) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        pending = None
        for delta in generator.stream(messages, settings):
            if pending is None:
                metrics.ttft.labels(name).observe(time.perf_counter() - started)
            else:
                yield chunk({"content": pending})
            pending = delta
        last = generator.last
        metrics.count(name, last.prompt_tokens, last.completion_tokens)
        metrics.latency.labels("chat_stream", name).observe(time.perf_counter() - started)
        yield chunk({"content": pending or ""}, last.finish_reason)
        if usage:
            yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                                         "model": name, "choices": [], "usage": {
                                             "prompt_tokens": last.prompt_tokens,
                                             "completion_tokens": last.completion_tokens,
                                             "total_tokens": last.prompt_tokens + last.completion_tokens}}) + "\n\n"
        yield "data: [DONE]\n\n"

    @app.post("/v1/diagnose")
    async def diagnose_session(request: Request):
        started = time.perf_counter()
        import sqlglot
        from pydantic import ValidationError

        from rcatune.inference import parse_answer, session_messages
        from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
        from rcatune.schema import TrainingExample

        _guard(request)
        body = await _body(request)
        name = _model(body)
        session = body.get("session")
        try:
            inputs = {k: v for k, v in (session or {}).items() if k in INPUT_FIELDS}
            example = TrainingExample.model_validate({**_placeholders(inputs), **inputs})
        except ValidationError as error:
            raise ApiError(422, f"session is not a diagnostic session: {error.errors()[0]['msg']}",
                           param="session") from None
        loaded = by_name[name].loaded
        prompt = system_prompt or loaded.system_prompt or DEFAULT_SYSTEM_PROMPT
        settings = _settings(body, limits)
        [completion] = await _run(lambda: generators[name].complete([session_messages(example, prompt)], settings))
        answer = vars(parse_answer(completion.text))
        metrics.count(name, completion.prompt_tokens, completion.completion_tokens)
        metrics.latency.labels("diagnose", name).observe(time.perf_counter() - started)
        try:
            parsed = isinstance(sqlglot.parse_one(answer["diagnostic_query"], read="clickhouse"), sqlglot.exp.Query)
        except Exception:  # sqlglot raises several error types for bad SQL
            parsed = False
        return {"model": name, "answer": {**answer, "query_parses": parsed},
                "finish_reason": completion.finish_reason, "seconds": round(completion.seconds, 4)}

    @app.on_event("startup")
    async def warm_up():
        from rcatune.inference import GenerationSettings

        for m in models:
            m.loaded.check_signature(system_prompt)
            await _run(lambda m=m: generators[m.name].complete([[{"role": "user", "content": "warm up"}]],
                                                                GenerationSettings(max_new_tokens=2)))
        state["ready"] = True

    return app


def _as_json(text: str) -> str:
    """response_format json_object: the structured answer as a JSON object (the model writes sections)."""
    from rcatune.inference import parse_answer

    try:
        json.loads(text)
        return text
    except ValueError:
        answer = parse_answer(text)
        return json.dumps(vars(answer))


INPUT_FIELDS = ("telemetry_context", "service_topology", "time_range", "symptoms", "affected_services",
                "error_signatures", "id", "timestamp")


def _placeholders(inputs: dict) -> dict:
    """The output fields a request does not carry (TrainingExample requires them; the prompt never shows them)."""
    start = (inputs.get("time_range") or [None])[0]
    return {"id": "request", "timestamp": start, "root_cause": "unknown", "diagnostic_query": "SELECT 1",
            "confidence_score": 0.0, "time_to_identification": 0.0, "human_prompts_required": 0}
