"""The smoke test every deployer runs before traffic moves: ready, then one real diagnosis that parses."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from rcatune.errors import RcatuneError


class SmokeTestFailed(RcatuneError):
    """A new instance did not pass: traffic stays where it was."""


def wait_ready(url: str, timeout_s: float, token: Optional[str] = None,
               alive: Callable[[], bool] = lambda: True, what: str = "the new instance", path: str = "/ready") -> float:
    """Seconds until `url` + `path` answers 200; raises SmokeTestFailed on timeout or when `alive()` turns False."""
    import requests

    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if not alive():
            raise SmokeTestFailed(f"{what} exited before it was ready")
        try:
            if requests.get(f"{url}{path}", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SmokeTestFailed(f"{what} was not ready within {timeout_s:.0f} s (serving.ready_timeout_s)")


def diagnose_probe(url: str, model: Optional[str] = None, token: Optional[str] = None,
                   max_tokens: int = 256) -> dict[str, Any]:
    """One diagnosis of the probe session through the API: the reply's answer, or SmokeTestFailed."""
    import requests

    from rcatune.inference.signature import probe_example

    session = probe_example().model_dump(mode="json", include={"telemetry_context", "service_topology", "time_range",
                                                               "symptoms", "affected_services", "error_signatures"})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"session": session, "max_tokens": max_tokens}
    if model:
        body["model"] = model
    try:
        reply = requests.post(f"{url}/v1/diagnose", json=body, headers=headers, timeout=300)
    except requests.RequestException as error:
        raise SmokeTestFailed(f"the smoke diagnosis did not get an answer: {error}") from None
    if reply.status_code != 200:
        raise SmokeTestFailed(f"the smoke diagnosis failed with HTTP {reply.status_code}: {reply.text[:300]}")
    return reply.json()


def smoke_test(url: str, timeout_s: float, token: Optional[str] = None, model: Optional[str] = None,
               alive: Callable[[], bool] = lambda: True) -> dict[str, Any]:
    """Ready, then a diagnosis whose answer parses into a root cause: what passed, or SmokeTestFailed."""
    ready_s = wait_ready(url, timeout_s, token, alive)
    started = time.monotonic()
    reply = diagnose_probe(url, model, token)
    answer = reply["answer"]
    if not answer.get("root_cause", "").strip():
        raw = " ".join(reply.get("raw", "").split())
        shown = raw if len(raw) <= 120 else f"{raw[:120]}... ({len(raw)} characters)"
        raise SmokeTestFailed("the smoke diagnosis does not parse: the answer has no 'Root Cause:' section "
                              f"(it began {shown!r}); is this a model rcatune trained?")
    return {"ready_seconds": round(ready_s, 2), "diagnosis_seconds": round(time.monotonic() - started, 2),
            "model": reply["model"], "root_cause": answer["root_cause"][:160],
            "query_parses": answer["query_parses"]}
