"""The stable endpoint of a local deployment: a reverse proxy to whichever instance is active.

The deployer writes the active instance to a small JSON file (atomically); the router re-reads it when it
changes, so switching traffic (a deploy after its smoke test, or a rollback to the warm previous
instance) takes effect on the next request, without a restart. Responses stream through unchanged
(server-sent events included), with `x-rcatune-version` naming the version that answered.

The router checks the active instance's `/ready` every `--check-interval` seconds. When it fails twice in a
row and the warm previous (the target's `standby`) answers, the router fails over to it at once and starts
`python -m rcatune.deploy reconcile` to record that as an automatic rollback (records, registry, state).
While nothing answers, the endpoint's `/health` and `/ready` say 503, like every other path.

With an A/B test in the target (`experiment`, see `rcatune.abtest.routing`), generating requests go to their
unit's arm (`x-rcatune-arm`, `x-rcatune-request-id` on the answer), each outcome is stored, `POST /v1/feedback`
takes feedback by request id, and a treatment that stops answering is switched off (the kill switch, with
its reason) while control keeps serving.

    python -m rcatune.deploy.router --port 8300 --target-file STATE/deployments/local/NAME/active.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from rcatune.abtest import routing
from rcatune.abtest.assignment import ARM_HEADER, REQUEST_ID_HEADER

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate",
              "proxy-authorization", "host", "content-length"}
OWN = {"date", "server"}  # the router's own server sets these
VERSION_HEADER = "x-rcatune-version"
STORE_CHECK_S = 5.0  # how often a running experiment's state is read from the store


class Target:
    """The active instance, re-read from its file when the file changes, with the kill switches this router
    threw where it could not write the file (a ConfigMap mounted read-only on Kubernetes)."""

    def __init__(self, path: Path) -> None:
        self.path, self._stamp, self.value = path, None, None
        self.killed: dict[str, dict] = {}  # experiment id -> {killed, killed_reason, killed_at}

    def current(self) -> Optional[dict]:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            self._stamp, self.value = None, None
            return None
        if stamp != self._stamp:
            self.value, self._stamp = json.loads(self.path.read_text(encoding="utf-8")), stamp
        experiment = (self.value or {}).get("experiment")
        if experiment and not experiment.get("killed") and experiment.get("id") in self.killed:
            return {**self.value, "experiment": {**experiment, **self.killed[experiment["id"]]}}
        return self.value


def write_target(path: Path, target: Optional[dict]) -> None:
    """Point the router at `target` ({url, version, model, standby}), atomically; None: nothing is served."""
    if target is None:
        path.unlink(missing_ok=True)
        return
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(target), encoding="utf-8")
    os.replace(staged, path)


def create_router(target_file: Path, check_interval: float = 1.0, misses_to_fail_over: int = 2):
    import asyncio
    from contextlib import asynccontextmanager

    import httpx
    from starlette.background import BackgroundTask

    target = Target(target_file)
    client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))
    stores = Stores()

    async def answers(url: str) -> bool:
        try:
            return (await client.get(f"{url}/ready", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def watch() -> None:
        """Fail over to the standby when the active instance stops answering; switch a treatment off when it
        stops answering, or when the store says it was switched off (by another router, or the analysis)."""
        misses, since, treatment_misses, store_checked = 0, None, 0, 0.0
        while True:
            await asyncio.sleep(check_interval)
            active = target.current()
            experiment = (active or {}).get("experiment")
            if experiment and not experiment.get("killed"):
                if time.monotonic() - store_checked >= STORE_CHECK_S:
                    store_checked = time.monotonic()
                    thrown = await asyncio.to_thread(_thrown_elsewhere, stores, experiment)
                    if thrown:
                        _switch_off(target, active, thrown, stores=None)
                        continue
                treatment_misses = 0 if await answers(experiment["treatment"]["url"]) else treatment_misses + 1
                if treatment_misses >= misses_to_fail_over:
                    await asyncio.to_thread(
                        _switch_off, target, active, f"treatment v{experiment['treatment']['version']} stopped "
                                                     f"answering its /ready ({treatment_misses} checks)", stores)
                    treatment_misses = 0
                    continue
            if not active or await answers(active["url"]):
                misses, since = 0, None
                continue
            misses, since = misses + 1, since or time.monotonic()
            standby = active.get("standby")
            if misses >= misses_to_fail_over and standby and await answers(standby["url"]):
                write_target(target_file, {**standby, "standby": None, "failed_over_from": {
                    "version": active["version"], "url": active["url"], "seconds": round(time.monotonic() - since, 2),
                    "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}})
                misses, since = 0, None
                _reconcile_later(target_file.parent)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        watcher = asyncio.create_task(watch())
        yield
        watcher.cancel()

    app = FastAPI(title="rcatune router", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    def error(status: int, message: str, code: str, kind: str = "service_unavailable") -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": code}},
                            status_code=status)

    @app.get("/router/status")
    async def status():
        return {"target": target.current()}

    @app.post("/v1/feedback")
    async def feedback(request: Request):
        """Feedback on one answer by its request id (idempotent): 200 stored or duplicate, 409 when it differs
        from the feedback already stored, 404 for an unknown request id, 400 for a body it cannot take. Auth is
        the serving instances' own: the router asks control whether the token is good."""
        active = target.current()
        spec = (active or {}).get("experiment")
        if not spec:
            return error(404, "no A/B test runs here (deployment.action=ab_start starts one)", "no_experiment")
        check = await client.get(f"{active['url']}/v1/models", headers={
            k: v for k, v in request.headers.items() if k.lower() == "authorization"}, timeout=5.0)
        if check.status_code == 401:
            return JSONResponse(check.json(), status_code=401)
        try:
            request_id, values = routing.feedback_values(json.loads(await request.body() or b"null"))
        except ValueError as failure:
            return error(400, str(failure), "invalid_feedback", "invalid_request_error")
        store = stores.get(spec)
        known = await asyncio.to_thread(store.outcome, request_id)
        if known is None:
            return error(404, f"no answer with request id {request_id!r} was recorded here", "unknown_request",
                         "invalid_request_error")
        written = await asyncio.to_thread(store.give_feedback, request_id, known["experiment"], **values)
        if written.status == "conflict":
            stored = {k: written.existing.get(k) for k in routing.FEEDBACK_FIELDS}
            return error(409, f"feedback for {request_id} is already stored and differs: {stored}",
                         "feedback_conflict", "invalid_request_error")
        return {"request_id": request_id, "status": written.status, "experiment": known["experiment"]}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    async def forward(request: Request, path: str):
        active = target.current()
        if active is None:
            return error(503, "no version is deployed here (python run.py pipeline=deployment deploys one)",
                         "not_deployed")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        body = await request.body()
        choice = routing.choose(active, request.method, path, dict(request.headers), body)
        serving = choice.upstream if choice else active
        upstream = client.build_request(request.method, f"{serving['url']}/{path}", params=request.query_params,
                                        headers=headers, content=body)
        try:
            reply = await client.send(upstream, stream=True)
        except httpx.TransportError as failure:
            if choice:
                await _record(choice, active, None, "")
            status = 503 if path in ("health", "ready") else 502  # the probes tell the truth: nothing answers
            return error(status, f"the instance serving v{serving['version']} does not answer "
                                 f"({type(failure).__name__})", "upstream_unavailable")
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP | OWN}
        kept[VERSION_HEADER] = str(serving["version"])
        if choice is None:
            return StreamingResponse(reply.aiter_raw(), status_code=reply.status_code, headers=kept,
                                     background=BackgroundTask(reply.aclose))
        kept.update({ARM_HEADER: choice.arm, REQUEST_ID_HEADER: choice.request_id,
                     routing.EXPERIMENT_HEADER: choice.experiment})
        if not choice.stream:
            content = await reply.aread()
            await reply.aclose()
            await _record(choice, active, reply.status_code, content.decode("utf-8", "replace"))
            return Response(content, status_code=reply.status_code, headers=kept)
        return StreamingResponse(_relay(reply, choice, active), status_code=reply.status_code, headers=kept)

    async def _relay(reply, choice, active):
        """Stream the answer through as it comes; record it once it is whole (or the client left)."""
        seen = []
        try:
            async for chunk in reply.aiter_raw():
                seen.append(chunk)
                yield chunk
        finally:
            await reply.aclose()
            await _record(choice, active, reply.status_code, b"".join(seen).decode("utf-8", "replace"))

    async def _record(choice, active: dict, status, text: str) -> None:
        try:
            row = routing.outcome(choice, status, text)
            await asyncio.to_thread(stores.get(active["experiment"]).record, row)
        except Exception as failure:  # the answer still goes out; the loss is said where it can be seen
            print(f"rcatune router: could not record {choice.request_id}: {failure}", flush=True)


    return app


class Stores:
    """One open outcome store per experiment (opened on its first request)."""

    def __init__(self) -> None:
        self._open: dict[str, object] = {}

    def get(self, spec: dict):
        from rcatune.abtest.store import OutcomeStore

        key = f"{spec.get('id')}|{routing.store_url(spec)}"
        if key not in self._open:
            self._open[key] = OutcomeStore(routing.store_url(spec))
        return self._open[key]


def _switch_off(target: Target, active: dict, reason: str, stores: Optional[Stores]) -> None:
    """The kill switch: every unit to control from the next request on, with why and when; in the target file
    where it can be written (the local deployers), else in this router's memory, and in the store (`stores`),
    where every other router and the next analysis find it."""
    thrown = {"killed": True, "killed_reason": reason,
              "killed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    experiment = {**active["experiment"], **thrown}
    target.killed[experiment["id"]] = thrown
    try:
        write_target(target.path, {**active, "experiment": experiment})
    except OSError:
        pass  # read-only (a ConfigMap): this router's memory and the store carry it
    if stores is not None:
        try:
            stores.get(experiment).finish(experiment["id"], "switched_off", "keep_control", reason)
        except Exception as failure:
            print(f"rcatune router: could not record the switch-off in the store: {failure}", flush=True)
    print(f"rcatune router: A/B test {experiment['id']} switched off: {reason}", flush=True)


def _thrown_elsewhere(stores: Stores, experiment: dict) -> Optional[str]:
    """Why the store says this experiment was switched off (by another router or the analysis), or None."""
    try:
        found = stores.get(experiment).experiment(experiment["id"])
    except Exception:  # the store is away: the answers still go out; the next check tries again
        return None
    if found and found.get("state") == "switched_off":
        return found.get("reason") or "switched off"
    return None


def _reconcile_later(folder: Path) -> None:
    """Record what the router did, in a process of its own (it needs the registry, which the router does not)."""
    import subprocess
    import sys

    with open(folder / "reconcile.log", "ab") as log:
        subprocess.Popen([sys.executable, "-m", "rcatune.deploy", "reconcile", str(folder)], stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                         env=dict(os.environ))


def main(argv: list[str] | None = None) -> None:
    from rcatune.serving.http import serve

    parser = argparse.ArgumentParser(prog="python -m rcatune.deploy.router", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target-file", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(create_router(args.target_file), args.host, args.port)


if __name__ == "__main__":
    main()
