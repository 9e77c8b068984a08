"""What the model server's OpenAPI document says of its routes: the request bodies they take and every status
they answer with, in the error shape they share. The routes read and check their bodies themselves (a byte cap
as the body arrives, OpenAI's types and ranges); this is the contract a client and a fuzzer hold them to."""

from __future__ import annotations

from typing import Any

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type"],
    "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                   "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]}}}}}
_WHY = {400: "a body it cannot take (not JSON, a field of the wrong type or range)",
        401: "no valid bearer token (when the server has one)", 404: "an unknown model",
        408: "the body did not arrive in time", 413: "a body or prompt over its cap",
        422: "a session that is not a diagnostic session, or a prompt over the model's context",
        429: "the queue is full", 499: "the client left", 500: "an internal error (never a bad request)",
        503: "the worker cannot answer"}

MESSAGE = {"type": "object", "required": ["role", "content"], "properties": {
    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant"]},
    "content": {"type": "string", "maxLength": 20000}}}
GENERATION = {
    "model": {"type": "string", "maxLength": 200}, "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2}, "top_p": {"type": "number", "minimum": 0,
                                                                             "maximum": 1},
    "seed": {"type": "integer"}, "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                                                           "maxItems": 4}]},
    "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
    "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2}, "user": {"type": "string"}}
CHAT = {"type": "object", "required": ["messages"], "properties": {
    "messages": {"type": "array", "minItems": 1, "maxItems": 64, "items": MESSAGE},
    "stream": {"type": "boolean"}, "n": {"type": "integer", "minimum": 1, "maximum": 8},
    "response_format": {"type": "object", "properties": {"type": {"type": "string",
                                                                  "enum": ["text", "json_object"]}}},
    **GENERATION}}
DIAGNOSE = {"type": "object", "required": ["session"], "properties": {
    "session": {"type": "object", "description": "a diagnostic session (the TrainingExample fields the model sees)"},
    **GENERATION}}


def route(body: dict | None, ok: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
    """`openapi_extra` and `responses` for a route: its body, its 200 and its error statuses."""
    responses: dict[int | str, Any] = {200: {"description": "OK", "content": ok}}
    responses.update({s: {"description": _WHY[s], "content": {"application/json": {"schema": ERROR}}}
                      for s in statuses})
    extra = {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}} if body else {}
    return {"openapi_extra": extra, "responses": responses}


JSON_OK = {"application/json": {"schema": {"type": "object"}}}
GENERATING = (400, 401, 404, 408, 413, 422, 429, 499, 500, 503)
# one server-sent event (before OpenAPI 3.2 a stream's `schema` describes each event, not the whole stream)
EVENT = {"type": "object", "required": ["data"], "properties": {
    "data": {"type": "string", "description": "a chat.completion.chunk as JSON, an {\"error\": ...} object, or [DONE]"},
    "event": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}}}
CHAT_ROUTE = route(CHAT, {**JSON_OK, "text/event-stream": {"schema": EVENT}}, GENERATING)
DIAGNOSE_ROUTE = route(DIAGNOSE, JSON_OK, GENERATING)
MODELS_ROUTE = route(None, JSON_OK, (401,))
PROBE_ROUTE = route(None, JSON_OK, (503,))
