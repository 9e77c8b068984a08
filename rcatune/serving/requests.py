"""What a request may carry, checked before anything waits for the model: a body read against its byte cap as it
streams in, JSON that is UTF-8, finite and shallow, and every field of a chat completion with the type and range
the OpenAI API gives it. A request outside them is an `ApiError` (400, 408 or 413 in OpenAI's error shape),
never a 500 and never work for the generation worker.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any, Optional

from rcatune.config.serving import ServingConfig
from rcatune.inference import GenerationSettings, Messages

MAX_DEPTH = 32  # nesting of a request's JSON (a chat request needs 4)
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logit_bias", "audio", "modalities",
               "prediction")  # refused when set: answering without them would be a silent lie


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: Optional[str] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _bad(message: str, param: Optional[str] = None, code: Optional[str] = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


async def read_json(request, config: ServingConfig) -> dict:
    """The request's JSON object, read against `max_request_bytes` as it arrives and within `body_timeout_s`."""
    cap = config.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise ApiError(413, f"a body of {declared} bytes is over this server's cap of {cap}",
                       code="request_too_large")

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise ApiError(413, f"the body is over this server's cap of {cap} bytes", code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), config.body_timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the body did not arrive within {config.body_timeout_s:g} s",
                       code="request_timeout") from None
    return parse_json(raw)


def parse_json(raw: bytes) -> dict:
    """A JSON object from `raw`, or a 400 that says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _bad(f"the body is not valid UTF-8 (byte {error.start})", code="invalid_encoding") from None

    def no_constants(name: str):
        raise ValueError(f"{name} is not JSON")

    try:
        body = json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise _bad(f"the body nests deeper than {MAX_DEPTH} levels", code="invalid_json") from None
    except ValueError as error:
        raise _bad(f"the body is not JSON: {error}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object", code="invalid_json")
    _check_tree(body)
    return body


def _check_tree(body: dict) -> None:
    """No nesting beyond MAX_DEPTH and no string that cannot be UTF-8 (a lone surrogate from a \\ud800 escape)."""
    stack: list[tuple[Any, int, str]] = [(body, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"the body nests deeper than {MAX_DEPTH} levels", code="invalid_json")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad(f"{where or 'a string'} holds a lone surrogate (not Unicode text)", param=where or None,
                           code="invalid_encoding") from None
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, depth + 1, where))
                stack.append((item, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value))


@dataclass(frozen=True)
class ChatRequest:
    model: Optional[str]
    messages: Messages
    settings: GenerationSettings
    n: int
    stream: bool
    include_usage: bool
    json_mode: bool


def parse_chat(body: dict, config: ServingConfig) -> ChatRequest:
    """A chat completion request, every field checked (unknown fields are ignored, as vLLM does)."""
    stream = _optional(body, "stream", bool) or False
    options = _optional(body, "stream_options", dict)
    if options is not None and not stream:
        raise _bad("stream_options is only allowed with stream: true", "stream_options")
    include_usage = _optional(options or {}, "include_usage", bool, "stream_options.include_usage") or False
    n = _integer(body, "n", 1, config.max_n, default=1)
    if stream and n != 1:
        raise _bad("stream supports n=1 only", "n")
    return ChatRequest(model=model_name(body), messages=parse_messages(body.get("messages")),
                       settings=generation_settings(body, config), n=n, stream=stream, include_usage=include_usage,
                       json_mode=_response_format(body) == "json_object")


def model_name(body: dict) -> Optional[str]:
    name = _optional(body, "model", str)
    return name or None


def parse_messages(messages: Any) -> Messages:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object with a role and content", where)
        role = message.get("role")
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(ROLES)} (got {_shown(role)})", f"{where}.role")
        out.append({"role": ROLES[role], "content": _content(message.get("content"), f"{where}.content")})
    return out


def _content(content: Any, where: str) -> str:
    """String content, or a list of text parts joined (as OpenAI clients may send)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"{where}[{i}] must be a text part ({{\"type\": \"text\", \"text\": ...}}); this server "
                           "reads text only", f"{where}[{i}]")
            texts.append(part["text"])
        return "".join(texts)
    raise _bad(f"{where} must be a string or a list of text parts", where)


def generation_settings(body: dict, config: ServingConfig) -> GenerationSettings:
    """max_tokens, temperature, top_p, stop and seed, each checked against its type, range and this server's caps."""
    for key in UNSUPPORTED:
        if body.get(key) not in (None, [], {}):
            raise _bad(f"{key} is not supported by this server", key, code="unsupported_parameter")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") not in (None, 0):
        raise _bad("logprobs are not supported by this server", "logprobs", code="unsupported_parameter")
    for key in ("presence_penalty", "frequency_penalty"):
        if _number(body, key, -2.0, 2.0, default=0.0) != 0.0:
            raise _bad(f"{key} is not supported by this server (only 0)", key, code="unsupported_parameter")
    key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(body, key, 1, None, default=config.max_tokens)
    if max_tokens > config.max_tokens:
        raise _bad(f"{key} {max_tokens} is over this server's cap of {config.max_tokens}", key)
    temperature = _number(body, "temperature", 0.0, 2.0, default=0.0)
    top_p = _number(body, "top_p", 0.0, 1.0, default=1.0)
    if top_p == 0.0 and temperature > 0.0:
        raise _bad("top_p must be above 0 when sampling", "top_p")
    seed = _optional(body, "seed", int)
    if seed is not None and not -2**63 <= seed < 2**63:
        raise _bad("seed must fit in 64 bits", "seed")
    return GenerationSettings(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              stop=_stop(body.get("stop"), config), seed=seed, max_seconds=config.max_generation_s)


def _stop(stop: Any, config: ServingConfig) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _bad("stop must be a string or a list of strings", "stop")
    if len(stops) > config.max_stop:
        raise _bad(f"stop holds {len(stops)} sequences; this server takes at most {config.max_stop}", "stop")
    for s in stops:
        if not s or len(s) > config.max_stop_chars:
            raise _bad(f"each stop sequence must be 1 to {config.max_stop_chars} characters", "stop")
    return tuple(stops)


def _response_format(body: dict) -> str:
    spec = _optional(body, "response_format", dict)
    if spec is None:
        return "text"
    kind = spec.get("type")
    if kind not in ("text", "json_object"):
        raise _bad(f"response_format.type must be text or json_object (got {_shown(kind)})", "response_format.type")
    return kind


def _optional(body: dict, key: str, kind: type, param: Optional[str] = None):
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _bad(f"{param or key} must be {_KIND[kind]} (got {_shown(value)})", param or key)
    return value


def _integer(body: dict, key: str, low: int, high: Optional[int], default: int) -> int:
    value = _optional(body, key, int)
    if value is None:
        return default
    if value < low or (high is not None and value > high):
        limits = f"{low} to {high}" if high is not None else f"at least {low}"
        raise _bad(f"{key} must be {limits} (got {value})", key)
    return value


def _number(body: dict, key: str, low: float, high: float, default: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(f"{key} must be a number (got {_shown(value)})", key)
    if not low <= value <= high:
        raise _bad(f"{key} must be {low:g} to {high:g} (got {value:g})", key)
    return float(value)


_KIND = {str: "a string", bool: "true or false", int: "an integer", dict: "an object", list: "a list"}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
