"""The generation engine behind the server: one worker thread owns the models and takes jobs in order.

Plain requests that wait together for the same model with the same settings are generated as one
batch (left-padded, as evaluation does), up to `max_batch` rows; a request with a seed, or sampled,
runs alone so its random stream is its own. Streams run one at a time on the same worker, so every
request, streamed or not, counts against the bound on waiting requests (`max_queue`), beyond which a
new one is refused (the app answers 429); a stream takes its place when it is opened, before the
server answers 200. A request whose client left is dropped from the queue, or stops generating at
its next token. The worker never waits without a bound, and `stuck_for` tells the probes when a
generation has run past its time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, ContextManager, Optional

from rcatune.inference import Completion, GenerationSettings, Generator, Messages


@dataclass
class ServedModel:
    """A model served under `name`; `parent` is what it was tuned from (as vLLM lists LoRA adapters).
    `use` selects it on a shared base (an adapter) for the duration of one generation."""

    name: str
    loaded: Any  # rcatune.inference.LoadedModel
    parent: Optional[str] = None
    use: Callable[[], ContextManager] = nullcontext
    created: int = field(default_factory=lambda: int(time.time()))
    version: Optional[str] = None  # the registry version it is, when it is one


class Busy(Exception):
    """More requests are waiting than the server takes."""


@dataclass(eq=False)
class _Job:
    model: str
    conversations: list[Messages]
    settings: GenerationSettings
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    stream: Optional[asyncio.Queue] = None  # deltas, then the finished Completion
    left: threading.Event = field(default_factory=threading.Event)  # nobody waits for it any more (a disconnect)

    @property
    def batchable(self) -> bool:
        return self.stream is None and self.settings.greedy and self.settings.seed is None

    @property
    def key(self) -> tuple:
        return (self.model, self.settings)


class Stream:
    """An opened stream: its place in the queue is taken; iterate for text deltas, then the `Completion`.
    Leaving early (or never reading) must end with `close()`, which frees its place or stops its generation."""

    def __init__(self, engine: "Engine", job: _Job) -> None:
        self.engine, self.job, self.finished = engine, job, False

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            while True:
                item = await self.job.stream.get()
                if isinstance(item, BaseException):
                    self.finished = True
                    raise item
                if isinstance(item, Completion):
                    self.finished = True
                    yield item
                    return
                yield item
        finally:
            self.close()

    def close(self) -> None:
        if not self.finished:
            self.engine._leave(self.job)


class Engine:
    """Schedules generations on one worker thread; batches what can be batched."""

    def __init__(self, models: list[ServedModel], max_queue: int = 16, max_batch: int = 8,
                 on_depth: Callable[[int], None] = lambda depth: None) -> None:
        self.models = {m.name: m for m in models}
        self.generators = {m.name: Generator(m.loaded) for m in models}
        self.max_queue, self.max_batch, self.on_depth = max_queue, max_batch, on_depth
        self.batches: list[int] = []  # rows of each batch run (for tests and the bench)
        self.abandoned = 0  # requests whose client left before the end (dropped, or stopped at the next token)
        self.busy_since: Optional[float] = None  # when the generation now running started (monotonic)
        self._pending: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._worker = threading.Thread(target=self._work, daemon=True, name="rcatune-generate")
        self._worker.start()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    def stuck_for(self, bound: float) -> Optional[float]:
        """Seconds the running generation has taken, when that is more than `bound`; else None."""
        since = self.busy_since
        if since is None:
            return None
        running = time.monotonic() - since
        return running if running > bound else None

    async def complete(self, model: str, conversations: list[Messages],
                       settings: GenerationSettings) -> list[Completion]:
        """One completion per conversation (generated with whatever else waits for the same model and settings).
        Cancelling the call (the client left) drops the request, or stops its rows at their next token."""
        loop = asyncio.get_running_loop()
        job = _Job(model, conversations, settings, loop, loop.create_future())
        self._submit(job)
        try:
            return await job.future
        except asyncio.CancelledError:
            self._leave(job)
            raise

    def open_stream(self, model: str, messages: Messages, settings: GenerationSettings) -> Stream:
        """Take a place in the queue for a stream now (Busy when there is none)."""
        loop = asyncio.get_running_loop()
        job = _Job(model, [messages], settings, loop, loop.create_future(), stream=asyncio.Queue())
        self._submit(job)
        return Stream(self, job)

    async def stream(self, model: str, messages: Messages, settings: GenerationSettings) -> AsyncIterator[Any]:
        """Text deltas as they are generated, then the finished `Completion`."""
        async for item in self.open_stream(model, messages, settings):
            yield item

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def _submit(self, job: _Job) -> None:
        with self._wake:
            if self._closed:
                raise Busy("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise Busy(f"{len(self._pending)} requests are waiting (the cap); retry later")
            self._pending.append(job)
            self.on_depth(len(self._pending))
            self._wake.notify()

    def _leave(self, job: _Job) -> None:
        """Nobody waits for `job` any more: out of the queue, or stopped at its next token."""
        if job.left.is_set():
            return
        job.left.set()
        self.abandoned += 1
        with self._wake:
            if job in self._pending:
                self._pending.remove(job)
                self.on_depth(len(self._pending))

    def _take(self) -> Optional[list[_Job]]:
        """The next job, with every waiting job it can share a batch with."""
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if self._closed:
                return None
            first = self._pending.popleft()
            batch, rows = [first], len(first.conversations)
            if first.batchable:
                for job in list(self._pending):
                    if job.batchable and job.key == first.key and rows + len(job.conversations) <= self.max_batch:
                        self._pending.remove(job)
                        batch.append(job)
                        rows += len(job.conversations)
            self.on_depth(len(self._pending))
            self.busy_since = time.monotonic()
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            first = batch[0]
            try:
                with self.models[first.model].use():
                    if first.stream is not None:
                        self._run_stream(first)
                    else:
                        self._run_batch(batch)
            except BaseException as error:  # the request fails, the worker goes on
                self.busy_since = None
                for job in batch:
                    _deliver(job, error)
            finally:
                self.busy_since = None

    def _run_batch(self, batch: list[_Job]) -> None:
        first = batch[0]
        conversations = [c for job in batch for c in job.conversations]
        rows = [job.left for job in batch for _ in job.conversations]
        completions = self.generators[first.model].complete(conversations, first.settings,
                                                            abandoned=lambda: [left.is_set() for left in rows])
        self.busy_since = None  # done before anyone hears so: a probe after the answer never sees it running
        self.batches.append(len(conversations))
        start = 0
        for job in batch:
            _deliver(job, completions[start:start + len(job.conversations)])
            start += len(job.conversations)

    def _run_stream(self, job: _Job) -> None:
        generator = self.generators[job.model]
        deltas = generator.stream(job.conversations[0], job.settings)
        try:
            for delta in deltas:
                if job.left.is_set():
                    break
                job.loop.call_soon_threadsafe(job.stream.put_nowait, delta)
        finally:
            deltas.close()  # stops the generation when the reader left
        self.busy_since = None
        self.batches.append(1)
        if not job.left.is_set():
            job.loop.call_soon_threadsafe(job.stream.put_nowait, generator.last)


def _deliver(job: _Job, result: Any) -> None:
    """Hand a result (or an error) to the request's event loop."""
    if job.stream is not None:
        job.loop.call_soon_threadsafe(job.stream.put_nowait, result)
        return

    def settle() -> None:
        if job.future.done():
            return
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)

    job.loop.call_soon_threadsafe(settle)
