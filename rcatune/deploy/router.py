"""The stable endpoint of a local deployment: a reverse proxy to whichever instance is active.

The deployer writes the active instance to a small JSON file (atomically); the router re-reads it when it
changes, so switching traffic (a deploy after its smoke test, or a rollback to the warm previous
instance) takes effect on the next request, without a restart. Responses stream through unchanged
(server-sent events included), with `x-rcatune-version` naming the version that answered.

The router checks the active instance's `/ready` every `--check-interval` seconds. When it fails twice in a
row and the warm previous (the target's `standby`) answers, the router fails over to it at once and starts
`python -m rcatune.deploy reconcile` to record that as an automatic rollback (records, registry, state).
While nothing answers, the endpoint's `/health` and `/ready` say 503, like every other path.

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
from fastapi.responses import JSONResponse, StreamingResponse

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate",
              "proxy-authorization", "host", "content-length"}
OWN = {"date", "server"}  # the router's own server sets these
VERSION_HEADER = "x-rcatune-version"


class Target:
    """The active instance, re-read from its file when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path, self._stamp, self.value = path, None, None

    def current(self) -> Optional[dict]:
        try:
            stamp = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            self._stamp, self.value = None, None
            return None
        if stamp != self._stamp:
            self.value, self._stamp = json.loads(self.path.read_text(encoding="utf-8")), stamp
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

    async def answers(url: str) -> bool:
        try:
            return (await client.get(f"{url}/ready", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def watch() -> None:
        """Fail over to the standby when the active instance stops answering."""
        misses, since = 0, None
        while True:
            await asyncio.sleep(check_interval)
            active = target.current()
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

    def error(status: int, message: str, code: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "service_unavailable", "param": None,
                                       "code": code}}, status_code=status)

    @app.get("/router/status")
    async def status():
        return {"target": target.current()}

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    async def forward(request: Request, path: str):
        active = target.current()
        if active is None:
            return error(503, "no version is deployed here (python run.py pipeline=deployment deploys one)",
                         "not_deployed")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        upstream = client.build_request(request.method, f"{active['url']}/{path}", params=request.query_params,
                                        headers=headers, content=await request.body())
        try:
            reply = await client.send(upstream, stream=True)
        except httpx.TransportError as failure:
            status = 503 if path in ("health", "ready") else 502  # the probes tell the truth: nothing answers
            return error(status, f"the instance serving v{active['version']} does not answer "
                                 f"({type(failure).__name__})", "upstream_unavailable")
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP | OWN}
        kept[VERSION_HEADER] = str(active["version"])
        return StreamingResponse(reply.aiter_raw(), status_code=reply.status_code, headers=kept,
                                 background=BackgroundTask(reply.aclose))

    return app


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
