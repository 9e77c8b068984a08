"""The OpenAI-compatible routes: `GET /v1/models` and `POST /v1/chat/completions` (plain and streamed)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import AsyncIterator, Optional

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rcatune.serving.context import VERSION_HEADER, Served, asked_tokens
from rcatune.serving.engine import Busy, Stream
from rcatune.serving.requests import ApiError, ChatRequest, parse_chat
from rcatune.serving.schema import CHAT_ROUTE, MODELS_ROUTE

log = logging.getLogger("rcatune.serving")


def openai_routes(served: Served) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/models", **MODELS_ROUTE)
    async def list_models(request: Request):
        served.guard(request)
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created,
                                            "owned_by": "rcatune", "root": m.parent or m.name, "parent": m.parent}
                                           for m in served.models]}

    @router.post("/v1/chat/completions", **CHAT_ROUTE)
    async def chat(request: Request):
        started = time.perf_counter()
        body, name = await served.admit(request)
        chat = parse_chat(body, served.config)
        settings = await served.fit(name, chat.messages, chat.settings, asked_tokens(body))
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex[:24]}"
        headers = {VERSION_HEADER: name}
        if chat.stream:
            try:  # the place in the queue is taken before the 200: a full queue is a plain 429
                stream = served.engine.open_stream(name, chat.messages, settings)
            except Busy as error:
                raise ApiError(429, str(error), "rate_limit_error") from None
            return StreamingResponse(_sse(stream, chat, name, rid, created, started),
                                     media_type="text/event-stream", headers=headers)
        work = served.engine.complete(name, [chat.messages] * chat.n, settings)
        completions = await served.unless_gone(request, work)
        choices = []
        for i, c in enumerate(completions):
            text = _as_json(c.text) if chat.json_mode else c.text
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": c.finish_reason, "logprobs": None})
        prompt = completions[0].prompt_tokens
        out = sum(c.completion_tokens for c in completions)
        served.metrics.count(name, prompt, out)
        served.metrics.latency.labels("chat", name).observe(time.perf_counter() - started)
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
                        served.metrics.ttft.labels(name).observe(time.perf_counter() - started)
                    else:
                        yield chunk({"content": pending})
                    pending = item
            except Exception as failure:  # the 200 is sent: the error is the stream's last event
                error = ApiError(500, f"the generation failed: {failure}", "server_error")
                served.metrics.errors.labels(error.type, "500").inc()
                log.error("a streamed generation failed: %s", failure)
                yield "data: " + json.dumps(error.body()) + "\n\n"
                return
            served.metrics.count(name, last.prompt_tokens, last.completion_tokens)
            served.metrics.latency.labels("chat_stream", name).observe(time.perf_counter() - started)
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

    return router


def _as_json(text: str) -> str:
    """response_format json_object: the structured answer as a JSON object (the model writes sections)."""
    from rcatune.inference import parse_answer

    try:
        json.loads(text)
        return text
    except ValueError:
        answer = parse_answer(text)
        return json.dumps(vars(answer))
