"""An OpenAI-compatible server over the inference layer.

One process serves several models (`ServedModel`s: full models, or adapters over one shared base,
each listed in `/v1/models` with its parent), picked by the request's `model`. Generation runs on the
engine's one worker (`rcatune.serving.engine`): concurrent plain requests are batched, streams run in
turn, and beyond `max_queue` waiting requests a new one gets 429. Before it reports ready, every model
is checked against the prompt signature saved at training (a mismatch refuses to serve, naming what
differs) and warmed up with one generation.

Nothing a client sends reaches the worker unchecked (`rcatune.serving.requests`): every field's type and
range, the byte cap as the body streams in, and the rendered prompt against the model's context. A
client that leaves takes its work with it, and `/health` and `/ready` turn 503 when the worker has died
or a generation runs past `max_generation_s`, so an orchestrator replaces a server that cannot answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
import uuid
from typing import AsyncIterator, Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rcatune.config.serving import TOKEN_ENV, ServingConfig
from rcatune.inference import ContextTooLong, Messages
from rcatune.serving.engine import Busy, Engine, ServedModel, Stream
from rcatune.serving.requests import ApiError, ChatRequest, generation_settings, model_name, parse_chat, read_json

VERSION_HEADER = "x-rcatune-model"  # which served model answered (the router and the deployers read it)
log = logging.getLogger("rcatune.serving")


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
        self.abandoned = Gauge("rcatune_abandoned_requests", "Requests whose client left before the end",
                               registry=self.registry)
        self.threads = Gauge("rcatune_threads", "Threads the server computes with (serving.threads)",
                             registry=self.registry)

    def count(self, model: str, prompt: int, completion: int) -> None:
        self.tokens.labels(model, "in").inc(prompt)
        self.tokens.labels(model, "out").inc(completion)


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


def create_app(models: list[ServedModel], config: Optional[ServingConfig] = None,
               system_prompt: Optional[str] = None, aliases: Optional[dict[str, str]] = None,
               token: Optional[str] = None, threads: Optional[int] = None):
    """The app over `models` (the first is the default when a request names none). `aliases` maps other names
    to served ones (a deployment answers to the registry name whatever version it serves); `token`, or
    $RCATUNE_SERVE_TOKEN, guards everything but the probes. `threads`: what it computes with (shown by /health
    and /metrics; torch's own setting when not given)."""
    from contextlib import asynccontextmanager

    import torch

    config = config or ServingConfig()
    by_name = {m.name: m for m in models}
    aliases = dict(aliases or {})
    metrics = Metrics()
    state = {"ready": False}
    token = token or os.environ.get(TOKEN_ENV)
    engine = Engine(models, config.max_queue, config.max_batch, on_depth=metrics.queue.set)
    metrics.abandoned.set_function(lambda: engine.abandoned)
    threads = threads or torch.get_num_threads()
    metrics.threads.set(threads)

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

    def _error(error: ApiError) -> JSONResponse:
        metrics.errors.labels(error.type, str(error.status)).inc()
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError):
        return _error(error)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception):  # a bug: still the documented shape, and logged once
        log.error("unexpected %s: %s", type(error).__name__, error, exc_info=error)
        return _error(ApiError(500, f"the server failed on this request ({type(error).__name__})", "server_error"))

    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, error: HTTPException):  # unknown paths and methods
        return _error(ApiError(error.status_code, str(error.detail), "invalid_request_error"))

    def _guard(request: Request) -> None:
        if not token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong bearer token", "authentication_error", code="invalid_api_key")

    def _model(name: Optional[str]) -> str:
        name = name or models[0].name
        name = aliases.get(name, name)
        if name not in by_name:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists them", param="model",
                           code="model_not_found")
        return name

    async def _fit(name: str, messages: Messages, settings, asked: bool):
        """`settings` with max_new_tokens within what the model's context leaves after the prompt (400 when
        the prompt leaves no room, or when the client asked for more than there is)."""
        from dataclasses import replace

        generator = engine.generators[name]
        context = generator.context
        fewest = generator.fewest_tokens("".join(m["content"] for m in messages))
        if fewest >= context:  # certain without tokenizing (a prompt many times the context costs nothing)
            raise _too_long(ContextTooLong(fewest, context, at_least=True), more=False)

        prompt = await asyncio.to_thread(generator.prompt_tokens, messages)
        room = context - prompt
        if room < 1 or (asked and settings.max_new_tokens > room):
            raise _too_long(ContextTooLong(prompt, context, settings.max_new_tokens if asked else 0), more=asked)
        return replace(settings, max_new_tokens=min(settings.max_new_tokens, room))

    async def _unless_gone(request: Request, call):
        """Await `call` (an engine request) unless the client leaves first; then the work is dropped."""
        work = asyncio.ensure_future(call)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if work.done():
            try:
                return work.result()
            except Busy as error:
                raise ApiError(429, str(error), "rate_limit_error") from None
            except ContextTooLong as error:
                raise _too_long(error, more=False) from None
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise ClientGone()

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, __: ClientGone):  # nobody reads it; counted as nginx's 499
        metrics.errors.labels("client_closed_request", "499").inc()
        return JSONResponse({}, status_code=499)

    @app.get("/health")
    async def health():
        trouble = _trouble()
        if trouble:
            return JSONResponse({"status": "unhealthy", "reason": trouble, "threads": threads}, status_code=503)
        return {"status": "ok", "threads": threads, "auth": "on" if token else "off"}

    @app.get("/ready")
    async def ready():
        trouble = _trouble()
        if not state["ready"] or trouble:
            return JSONResponse({"ready": False, "reason": trouble or "loading"}, status_code=503)
        return {"ready": True, "models": list(by_name), "aliases": aliases}

    def _trouble() -> Optional[str]:
        """Why this server cannot answer now (its worker died, or a generation runs past its bound), or None."""
        if not engine.alive:
            return "the generation worker has stopped"
        stuck = engine.stuck_for(stuck_after(config))
        if stuck is not None:
            return f"a generation has run {stuck:.0f} s (the bound is {config.max_generation_s:g} s)"
        return None

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
        body = await read_json(request, config)
        name = _model(model_name(body))
        chat = parse_chat(body, config)
        settings = await _fit(name, chat.messages, chat.settings, _asked_tokens(body))
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {VERSION_HEADER: name}
        if chat.stream:
            try:  # the place in the queue is taken before the 200: a full queue is a plain 429
                stream = engine.open_stream(name, chat.messages, settings)
            except Busy as error:
                raise ApiError(429, str(error), "rate_limit_error") from None
            return StreamingResponse(_sse(stream, chat, name, rid, created, started),
                                     media_type="text/event-stream", headers=headers)
        completions = await _unless_gone(request, engine.complete(name, [chat.messages] * chat.n, settings))
        choices = []
        for i, c in enumerate(completions):
            text = _as_json(c.text) if chat.json_mode else c.text
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": c.finish_reason, "logprobs": None})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        metrics.count(name, prompt, out)
        metrics.latency.labels("chat", name).observe(time.perf_counter() - started)
        return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": name,
                             "choices": choices, "usage": {"prompt_tokens": prompt, "completion_tokens": out,
                                                           "total_tokens": prompt + out}}, headers=headers)

    async def _sse(stream: Stream, chat: ChatRequest, name, rid, created, started) -> AsyncIterator[str]:
        from rcatune.inference import Completion

        def chunk(delta: dict, finish: Optional[str] = None) -> str:
            return "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                                          "model": name, "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}) + "\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            pending, last = None, None
            try:
                async for item in stream:
                    if isinstance(item, Completion):
                        last = item
                        break
                    if pending is None:
                        metrics.ttft.labels(name).observe(time.perf_counter() - started)
                    else:
                        yield chunk({"content": pending})
                    pending = item
            except Exception as failure:  # the 200 is sent: the error is the stream's last event
                error = ApiError(500, f"the generation failed: {failure}", "server_error")
                metrics.errors.labels(error.type, "500").inc()
                log.error("a streamed generation failed: %s", failure)
                yield "data: " + json.dumps(error.body()) + "\n\n"
                return
            metrics.count(name, last.prompt_tokens, last.completion_tokens)
            metrics.latency.labels("chat_stream", name).observe(time.perf_counter() - started)
            yield chunk({"content": pending or ""}, last.finish_reason)
            if chat.include_usage:
                yield "data: " + json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created,
                                             "model": name, "choices": [], "usage": {
                                                 "prompt_tokens": last.prompt_tokens,
                                                 "completion_tokens": last.completion_tokens,
                                                 "total_tokens": last.prompt_tokens + last.completion_tokens}}) \
                    + "\n\n"
            yield "data: [DONE]\n\n"
        finally:  # a client that left (or never read) frees the place or stops the generation
            stream.close()

    @app.post("/v1/diagnose")
    async def diagnose_session(request: Request):
        started = time.perf_counter()
        from rcatune.inference import parse_answer, session_messages
        from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
        from rcatune.sql import query_parses

        _guard(request)
        body = await read_json(request, config)
        name = _model(model_name(body))
        example = _session(body.get("session"))
        settings = generation_settings(body, config)
        loaded = by_name[name].loaded
        messages = session_messages(example, system_prompt or loaded.system_prompt or DEFAULT_SYSTEM_PROMPT)
        settings = await _fit(name, messages, settings, _asked_tokens(body))
        [completion] = await _unless_gone(request, engine.complete(name, [messages], settings))
        answer = vars(parse_answer(completion.text))
        metrics.count(name, completion.prompt_tokens, completion.completion_tokens)
        metrics.latency.labels("diagnose", name).observe(time.perf_counter() - started)
        answer["query_parses"] = query_parses(answer["diagnostic_query"])
        return JSONResponse({"model": name, "answer": answer, "raw": completion.text,
                             "finish_reason": completion.finish_reason, "seconds": round(completion.seconds, 4)},
                            headers={VERSION_HEADER: name})

    return app


def stuck_after(config: ServingConfig) -> float:
    """Seconds after which a generation counts as stuck: past its own bound, with room for one slow step."""
    return 1.25 * config.max_generation_s + 1.0


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed its connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _asked_tokens(body: dict) -> bool:
    return body.get("max_completion_tokens") is not None or body.get("max_tokens") is not None


def _too_long(error: ContextTooLong, more: bool) -> ApiError:
    return ApiError(400, str(error), param="max_tokens" if more else "messages", code="context_length_exceeded")


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
PLACEHOLDER_TIME = "2000-01-01T00:00:00Z"  # when the session has no usable time_range (its own error says so)


def _placeholders(inputs: dict) -> dict:
    """The output fields a request does not carry (TrainingExample requires them; the prompt never shows them)."""
    time_range = inputs.get("time_range")
    start = time_range[0] if isinstance(time_range, list) and time_range else None
    start = start if isinstance(start, str) else PLACEHOLDER_TIME
    return {"id": "request", "timestamp": start, "root_cause": "unknown", "diagnostic_query": "SELECT 1",
            "confidence_score": 0.0, "time_to_identification": 0.0, "human_prompts_required": 0}
