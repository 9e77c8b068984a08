"""What every route of the server shares: the served models and their engine, the config, the token, the
metrics, and the checks each request goes through (auth, model name, the context, a client that leaves)."""

from __future__ import annotations

import asyncio
import hmac
import os
from dataclasses import dataclass, field
from typing import Optional

from fastapi import Request

from rcatune.config.serving import TOKEN_ENV, ServingConfig
from rcatune.inference import ContextTooLong, Messages
from rcatune.serving.engine import Busy, Engine, ServedModel
from rcatune.serving.requests import ApiError

VERSION_HEADER = "x-rcatune-model"  # which served model answered (the router and the deployers read it)


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


@dataclass
class Served:
    """The server's shared state; each group of routes (OpenAI's, /v1/diagnose, the probes) reads it."""

    models: list[ServedModel]
    config: ServingConfig
    engine: Engine
    metrics: Metrics
    threads: int
    system_prompt: Optional[str] = None
    aliases: dict[str, str] = field(default_factory=dict)
    token: Optional[str] = None
    ready: bool = False

    @classmethod
    def create(cls, models: list[ServedModel], config: ServingConfig, system_prompt: Optional[str],
               aliases: Optional[dict[str, str]], token: Optional[str], threads: Optional[int]) -> "Served":
        import torch

        metrics = Metrics()
        engine = Engine(models, config.max_queue, config.max_batch, on_depth=metrics.queue.set)
        metrics.abandoned.set_function(lambda: engine.abandoned)
        threads = threads or torch.get_num_threads()
        metrics.threads.set(threads)
        return cls(models, config, engine, metrics, threads, system_prompt, dict(aliases or {}),
                   token or os.environ.get(TOKEN_ENV))

    @property
    def by_name(self) -> dict[str, ServedModel]:
        return {m.name: m for m in self.models}

    def guard(self, request: Request) -> None:
        """401 unless the request carries the bearer token (when there is one)."""
        if not self.token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "missing or wrong bearer token", "authentication_error", code="invalid_api_key")

    async def admit(self, request: Request) -> tuple[dict, str]:
        """What every generating route starts with: the token checked, the body read against the cap, the model
        it names found: (body, served model name)."""
        from rcatune.serving.requests import model_name, read_json

        self.guard(request)
        body = await read_json(request, self.config)
        return body, self.model(model_name(body))

    def model(self, name: Optional[str]) -> str:
        """The served model a request names (an alias, or none: the first), or 404."""
        name = name or self.models[0].name
        name = self.aliases.get(name, name)
        if name not in self.by_name:
            raise ApiError(404, f"model {name!r} is not served here; GET /v1/models lists them", param="model",
                           code="model_not_found")
        return name

    async def fit(self, name: str, messages: Messages, settings, asked: bool):
        """`settings` with max_new_tokens within what the model's context leaves after the prompt (400 when
        the prompt leaves no room, or when the client asked for more than there is)."""
        from dataclasses import replace

        generator = self.engine.generators[name]
        context = generator.context
        fewest = generator.fewest_tokens("".join(m["content"] for m in messages))
        if fewest >= context:  # certain without tokenizing (a prompt many times the context costs nothing)
            raise too_long(ContextTooLong(fewest, context, at_least=True), more=False)

        prompt = await asyncio.to_thread(generator.prompt_tokens, messages)
        room = context - prompt
        if room < 1 or (asked and settings.max_new_tokens > room):
            raise too_long(ContextTooLong(prompt, context, settings.max_new_tokens if asked else 0), more=asked)
        return replace(settings, max_new_tokens=min(settings.max_new_tokens, room))

    async def unless_gone(self, request: Request, call):
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
                raise too_long(error, more=False) from None
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        raise ClientGone()

    def trouble(self) -> Optional[str]:
        """Why this server cannot answer now (its worker died, or a generation runs past its bound), or None."""
        if not self.engine.alive:
            return "the generation worker has stopped"
        stuck = self.engine.stuck_for(stuck_after(self.config))
        if stuck is not None:
            return f"a generation has run {stuck:.0f} s (the bound is {self.config.max_generation_s:g} s)"
        return None


def stuck_after(config: ServingConfig) -> float:
    """Seconds after which a generation counts as stuck: past its own bound, with room for one slow step."""
    return 1.25 * config.max_generation_s + 1.0


async def _disconnected(request: Request) -> None:
    """Returns when the client has closed its connection (the body is already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def asked_tokens(body: dict) -> bool:
    return body.get("max_completion_tokens") is not None or body.get("max_tokens") is not None


def too_long(error: ContextTooLong, more: bool) -> ApiError:
    return ApiError(400, str(error), param="max_tokens" if more else "messages", code="context_length_exceeded")
