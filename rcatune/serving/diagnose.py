"""`POST /v1/diagnose`: a diagnostic session in, the structured answer out (root cause, query, whether it parses)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rcatune.serving.context import VERSION_HEADER, Served, asked_tokens
from rcatune.serving.requests import ApiError, generation_settings
from rcatune.serving.schema import DIAGNOSE_ROUTE


def diagnose_routes(served: Served) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/diagnose", **DIAGNOSE_ROUTE)
    async def diagnose_session(request: Request):
        started = time.perf_counter()
        from rcatune.inference import parse_answer, session_messages
        from rcatune.prompts import DEFAULT_SYSTEM_PROMPT
        from rcatune.sql import query_parses

        body, name = await served.admit(request)
        example = _session(body.get("session"))
        settings = generation_settings(body, served.config)
        loaded = served.by_name[name].loaded
        messages = session_messages(example, served.system_prompt or loaded.system_prompt or DEFAULT_SYSTEM_PROMPT)
        settings = await served.fit(name, messages, settings, asked_tokens(body))
        [completion] = await served.unless_gone(request, served.engine.complete(name, [messages], settings))
        answer = vars(parse_answer(completion.text))
        served.metrics.count(name, completion.prompt_tokens, completion.completion_tokens)
        served.metrics.latency.labels("diagnose", name).observe(time.perf_counter() - started)
        answer["query_parses"] = query_parses(answer["diagnostic_query"])
        return JSONResponse({"model": name, "answer": answer, "raw": completion.text,
                             "finish_reason": completion.finish_reason, "seconds": round(completion.seconds, 4)},
                            headers={VERSION_HEADER: name})

    return router


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
