"""The router's side of an A/B test: which arm a request goes to, and the outcome it records.

The deployment's target file carries an `experiment` block beside the control (the active instance):
`{id, salt, treatment_share, ramp, started_at, killed, unit_fields, treatment: {url, version, model},
store_url | store_url_env}`. A generating request (`POST /v1/chat/completions`, `/v1/diagnose`) with a unit
id goes to its unit's arm and gets a request id; its outcome (latency, status, tokens, the parsed root cause,
whether the query parses) is stored when its answer is complete. A request without a unit goes to control and
is not part of the experiment.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from rcatune.abtest.assignment import DEFAULT_UNIT_FIELDS, Assignment, unit_of

ROUTED = ("v1/chat/completions", "v1/diagnose")
EXPERIMENT_HEADER = "x-rcatune-experiment"


@dataclass(frozen=True)
class Choice:
    experiment: str
    arm: str
    unit: str
    request_id: str
    upstream: dict  # {url, version, model}
    started: float
    stream: bool


def assignment(spec: dict) -> Assignment:
    return Assignment(spec["id"], spec.get("salt") or spec["id"], float(spec.get("treatment_share", 0.5)),
                      tuple(tuple(step) for step in spec.get("ramp") or ()), float(spec.get("started_at", 0.0)),
                      bool(spec.get("killed")), tuple(spec.get("unit_fields") or DEFAULT_UNIT_FIELDS))


def choose(active: dict, method: str, path: str, headers: dict[str, str], body: bytes) -> Optional[Choice]:
    """The arm of this request, or None when it is not part of an experiment."""
    spec = active.get("experiment")
    if not spec or method != "POST" or path not in ROUTED:
        return None
    try:
        parsed: Any = json.loads(body or b"{}")
    except ValueError:
        return None  # the server will say what is wrong with it
    plan = assignment(spec)
    unit = unit_of({k.lower(): v for k, v in headers.items()}, parsed, plan.unit_fields)
    if unit is None:
        return None
    arm = plan.arm(unit, time.time())
    upstream = spec["treatment"] if arm == "treatment" else {k: active[k] for k in ("url", "version", "model")
                                                             if k in active}
    stream = isinstance(parsed, dict) and parsed.get("stream") is True
    return Choice(spec["id"], arm, unit, f"req-{uuid.uuid4().hex}", upstream, time.perf_counter(), stream)


def outcome(choice: Choice, status: Optional[int], text: str) -> dict[str, Any]:
    """The row a request leaves: what the answer says (root cause, query parses, tokens) as far as it can be read."""
    from rcatune.prompts import parse_answer
    from rcatune.sql import query_parses

    root_cause, parses, prompt_tokens, completion_tokens = None, None, None, None
    content = _content(text, choice.stream)
    if isinstance(content, dict):  # /v1/diagnose: the server parsed it already
        answer = content.get("answer") or {}
        root_cause, parses = answer.get("root_cause"), answer.get("query_parses")
    elif content:
        answer = parse_answer(content)
        root_cause, parses = answer.root_cause, query_parses(answer.diagnostic_query)
    usage = _usage(text, choice.stream)
    if usage:
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return {"request_id": choice.request_id, "experiment": choice.experiment, "arm": choice.arm, "unit": choice.unit,
            "version": str(choice.upstream.get("version")), "at": time.time(),
            "latency_ms": round((time.perf_counter() - choice.started) * 1000, 2), "status": status,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "root_cause": (root_cause or None) and str(root_cause)[:2000], "query_parses": parses}


def _content(text: str, stream: bool):
    if stream:
        parts = []
        for event in _events(text):
            for choice in event.get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts)
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if "answer" in body:
        return body
    choices = body.get("choices") or []
    return (choices[0].get("message") or {}).get("content") if choices else None


def _usage(text: str, stream: bool) -> Optional[dict]:
    if stream:
        found = [e.get("usage") for e in _events(text) if e.get("usage")]
        return found[-1] if found else None
    try:
        return json.loads(text).get("usage")
    except (ValueError, AttributeError):
        return None


def _events(text: str) -> list[dict]:
    events = []
    for line in text.splitlines():
        if line.startswith("data: ") and line[6:].strip() != "[DONE]":
            try:
                events.append(json.loads(line[6:]))
            except ValueError:
                continue
    return events


def store_url(spec: dict) -> Optional[str]:
    """The experiment's store: the URL its variable holds (a team's PostgreSQL; never written to a file), else
    the SQLite URL in the spec, else the default under the state folder."""
    variable = spec.get("store_url_env")
    return (os.environ.get(variable) if variable else None) or spec.get("store_url")


FEEDBACK_FIELDS = {"root_cause_correct": bool, "human_prompts": (int, float), "time_to_identification": (int, float)}


def feedback_values(body: Any) -> tuple[str, dict[str, Any]]:
    """(request id, values) of a feedback body, or ValueError naming the field."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object: {request_id, root_cause_correct, human_prompts, "
                         "time_to_identification}")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValueError("request_id: the x-rcatune-request-id header of the answer this feedback is about")
    values = {}
    for name, kind in FEEDBACK_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ValueError(f"{name}: expected {'true or false' if kind is bool else 'a number'}, got {value!r}")
        if kind is not bool and value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
        values[name] = value
    unknown = sorted(set(body) - set(FEEDBACK_FIELDS) - {"request_id"})
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: request_id, {', '.join(FEEDBACK_FIELDS)}")
    if not values:
        raise ValueError(f"no feedback given: send at least one of {', '.join(FEEDBACK_FIELDS)}")
    return request_id.strip(), values
