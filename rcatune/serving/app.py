"""An OpenAI-compatible server over the inference layer.

One process serves several models (`ServedModel`s: full models, or adapters over one shared base,
each listed in `/v1/models` with its parent), picked by the request's `model`. Generation runs on the
engine's one worker (`rcatune.serving.engine`): concurrent plain requests are batched, streams run in
turn, and beyond `max_queue` waiting requests a new one gets 429. Before it reports ready, every model
is checked against the prompt signature saved at training (a mismatch refuses to serve, naming what
differs) and warmed up with one generation.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rcatune.serving.engine import Busy, Engine, ServedModel

TOKEN_ENV = "RCATUNE_SERVE_TOKEN"
VERSION_HEADER = "x-rcatune-model"  # which served model answered (the router and the deployers read it)


@dataclass(frozen=True)
class ServeLimits:
    max_queue: int = 16  # requests waiting to generate; beyond: 429
    max_batch: int = 8  # rows generated together
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


def create_app(models: list[ServedModel], limits: ServeLimits = ServeLimits(), system_prompt: Optional[str] = None,
               aliases: Optional[dict[str, str]] = None, token: Optional[str] = None):
    """The app over `models` (the first is the default when a request names none). `aliases` maps other names
    to served ones (a deployment answers to the registry name whatever version it serves); `token`, or
    $RCATUNE_SERVE_TOKEN, guards everything but the probes."""
    from contextlib import asynccontextmanager

    by_name = {m.name: m for m in models}
    aliases = dict(aliases or {})
    metrics = Metrics()
    state = {"ready": False}
    token = token or os.environ.get(TOKEN_ENV)
    engine = Engine(models, limits.max_queue, limits.max_batch, on_depth=metrics.queue.set)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await _warm_up()
        yield
        engine.close()

    app = FastAPI(title="rcatune serve", lifespan=lifespan)
    app.state.metrics, app.state.engine = metrics, engine

    async def _warm_up() -> None:
        """The signature check, then one generation per model: only then ready."""
        from rcatune.inference import GenerationSettings

        for m in models:
            m.loaded.check_signature(system_prompt)
            await engine.complete(m.name, [[{"role": "user", "content": "warm up"}]],
                                  GenerationSettings(max_new_tokens=2))
        state["ready"] = True

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
        name = aliases.get(name, name)
        if name not in by_name:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists them", param="model",
                           code="model_not_found")
        return name

    async def _complete(name, conversations, settings):
        try:
            return await engine.complete(name, conversations, settings)
        except Busy as error:
            raise ApiError(429, str(error), "rate_limit_error") from None

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if not state["ready"]:
            return JSONResponse({"ready": False}, status_code=503)
        return {"ready": True, "models": list(by_name), "aliases": aliases}

    @app.get("/metrics")
    async def prometheus():
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models(request: Request):
        _guard(request)
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created,
                                            "owned_by": "rcatune", "root": m.parent or m.name, "parent": m.parent}
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
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {VERSION_HEADER: name}
        if body.get("stream"):
            if n != 1:
                raise ApiError(400, "stream supports n=1 only", param="n")
            if engine.waiting >= limits.max_queue:  # refuse before the 200 of a stream is sent
                raise ApiError(429, f"{engine.waiting} requests are waiting (the cap); retry later",
                               "rate_limit_error")
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(messages, settings, name, rid, created, usage, started),
                                     media_type="text/event-stream", headers=headers)
        completions = await _complete(name, [messages] * n, settings)
        choices = []
        for i, c in enumerate(completions):
            text = _as_json(c.text) if json_mode else c.text
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": c.finish_reason, "logprobs": None})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        metrics.count(name, prompt, out)
        metrics.latency.labels("chat", name).observe(time.perf_counter() - started)
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": name,
                             "choices": choices, "usage": {"prompt_tokens": prompt, "completion_tokens": out,
                                                           "total_tokens": prompt + out}}, headers=headers)

    async def _sse(messages, settings, name, rid, created, usage, started) -> AsyncIterator[str]:
        from rcatune.inference import Completion

        def chunk(delta: dict, finish: Optional[str] = None) -> str:
            return "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                                          "model": name, "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        pending, last = None, None
        try:
            async for item in engine.stream(name, messages, settings):
                if isinstance(item, Completion):
                    last = item
                    break
                if pending is None:
                    metrics.ttft.labels(name).observe(time.perf_counter() - started)
                else:
                    yield chunk({"content": pending})
                pending = item
        except Busy as error:
            metrics.errors.labels("rate_limit_error", "429").inc()
            yield "data: " + json.dumps(ApiError(429, str(error), "rate_limit_error").body()) + "\n\n"
            return
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
        from rcatune.inference import parse_answer, session_messages
        from rcatune.prompts import DEFAULT_SYSTEM_PROMPT

        _guard(request)
        body = await _body(request)
        name = _model(body)
        example = _session(body.get("session"))
        loaded = by_name[name].loaded
        prompt = system_prompt or loaded.system_prompt or DEFAULT_SYSTEM_PROMPT
        [completion] = await _complete(name, [session_messages(example, prompt)], _settings(body, limits))
        answer = vars(parse_answer(completion.text))
        metrics.count(name, completion.prompt_tokens, completion.completion_tokens)
        metrics.latency.labels("diagnose", name).observe(time.perf_counter() - started)
        answer["query_parses"] = query_parses(answer["diagnostic_query"])
        return JSONResponse({"model": name, "answer": answer, "raw": completion.text,
                             "finish_reason": completion.finish_reason, "seconds": round(completion.seconds, 4)},
                            headers={VERSION_HEADER: name})

    return app


def query_parses(query: str) -> bool:
    """Whether a diagnostic query parses as a ClickHouse query."""
    import sqlglot

    try:
        return isinstance(sqlglot.parse_one(query, read="clickhouse"), sqlglot.exp.Query)
    except Exception:  # sqlglot raises several error types for bad SQL
        return False


def _session(session):
    """The request's session as a `TrainingExample` (its output fields filled with placeholders), or 422."""
    from pydantic import ValidationError

    from rcatune.schema import TrainingExample

    if not isinstance(session, dict):
        raise ApiError(422, "session must be a diagnostic session object (TrainingExample input fields)",
                       param="session")
    try:
        inputs = {k: v for k, v in session.items() if k in INPUT_FIELDS}
        return TrainingExample.model_validate({**_placeholders(inputs), **inputs})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, f"session is not a diagnostic session: {where}: {first['msg']}",
                       param="session") from None


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
