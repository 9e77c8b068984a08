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

import logging
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from rcatune.config.serving import ServingConfig
from rcatune.serving.context import VERSION_HEADER, ClientGone, Metrics, Served, stuck_after
from rcatune.serving.diagnose import diagnose_routes
from rcatune.serving.engine import ServedModel
from rcatune.serving.openai_routes import openai_routes
from rcatune.serving.requests import ApiError
from rcatune.serving.schema import PROBE_ROUTE

log = logging.getLogger("rcatune.serving")


def create_app(models: list[ServedModel], config: Optional[ServingConfig] = None,
               system_prompt: Optional[str] = None, aliases: Optional[dict[str, str]] = None,
               token: Optional[str] = None, threads: Optional[int] = None):
    """The app over `models` (the first is the default when a request names none). `aliases` maps other names
    to served ones (a deployment answers to the registry name whatever version it serves); `token`, or
    $RCATUNE_SERVE_TOKEN, guards everything but the probes. `threads`: what it computes with (shown by /health
    and /metrics; torch's own setting when not given)."""
    from contextlib import asynccontextmanager

    served = Served.create(models, config or ServingConfig(), system_prompt, aliases, token, threads)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await _warm_up(served)
        yield
        served.engine.close()

    app = FastAPI(title="rcatune serve", lifespan=lifespan)
    app.state.metrics, app.state.engine, app.state.served = served.metrics, served.engine, served
    _errors(app, served)
    _probes(app, served)
    app.include_router(openai_routes(served))
    app.include_router(diagnose_routes(served))
    return app


async def _warm_up(served: Served) -> None:
    """The signature check, then one generation per model: only then ready."""
    from rcatune.inference import GenerationSettings

    for m in served.models:
        m.loaded.check_signature(served.system_prompt)
        await served.engine.complete(m.name, [[{"role": "user", "content": "warm up"}]],
                                     GenerationSettings(max_new_tokens=2))
    served.ready = True


def _errors(app: FastAPI, served: Served) -> None:
    """Every error in the documented shape, counted: the API's own, unknown paths and methods, and bugs."""
    from starlette.exceptions import HTTPException

    def error(failure: ApiError) -> JSONResponse:
        served.metrics.errors.labels(failure.type, str(failure.status)).inc()
        return JSONResponse(failure.body(), status_code=failure.status)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, failure: ApiError):
        return error(failure)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, failure: Exception):  # a bug: still the documented shape, and logged once
        log.error("unexpected %s: %s", type(failure).__name__, failure, exc_info=failure)
        return error(ApiError(500, f"the server failed on this request ({type(failure).__name__})", "server_error"))

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, failure: HTTPException):  # unknown paths and methods
        return error(ApiError(failure.status_code, str(failure.detail), "invalid_request_error"))

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, __: ClientGone):  # nobody reads it; counted as nginx's 499
        served.metrics.errors.labels("client_closed_request", "499").inc()
        return JSONResponse({}, status_code=499)


def _probes(app: FastAPI, served: Served) -> None:
    """/health and /ready (503 when the worker died or is stuck), and Prometheus /metrics; no token needed."""

    @app.get("/health", **PROBE_ROUTE)
    async def health():
        trouble = served.trouble()
        if trouble:
            return JSONResponse({"status": "unhealthy", "reason": trouble, "threads": served.threads},
                                status_code=503)
        return {"status": "ok", "threads": served.threads, "auth": "on" if served.token else "off"}

    @app.get("/ready", **PROBE_ROUTE)
    async def ready():
        trouble = served.trouble()
        if not served.ready or trouble:
            return JSONResponse({"ready": False, "reason": trouble or "loading"}, status_code=503)
        return {"ready": True, "models": list(served.by_name), "aliases": served.aliases}

    @app.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                          "description": "Prometheus text format"}})
    async def prometheus():
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(served.metrics.registry), media_type=CONTENT_TYPE_LATEST)


__all__ = ["VERSION_HEADER", "Metrics", "create_app", "stuck_after"]
