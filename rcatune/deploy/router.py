"""The stable endpoint of a local deployment: a reverse proxy to whichever instance is active.

The deployer writes the active instance to a small JSON file (atomically); the router re-reads it when it
changes, so switching traffic (a deploy after its smoke test, or a rollback to the warm previous
instance) takes effect on the next request, without a restart. Responses stream through unchanged
(server-sent events included), with `x-rcatune-version` naming the version that answered.

    python -m rcatune.deploy.router --port 8300 --target-file STATE/deployments/local/NAME/active.json
"""

from __future__ import annotations

import argparse
import json
import os
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
    """Point the router at `target` ({url, version, model}), atomically; None: nothing is served."""
    if target is None:
        path.unlink(missing_ok=True)
        return
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(target), encoding="utf-8")
    os.replace(staged, path)


def create_router(target_file: Path):
    import httpx
    from starlette.background import BackgroundTask

    target = Target(target_file)
    client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0))
    app = FastAPI(title="rcatune router", docs_url=None, redoc_url=None, openapi_url=None)

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
            return error(502, f"the instance serving v{active['version']} does not answer ({type(failure).__name__})",
                         "upstream_unavailable")
        kept = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP | OWN}
        kept[VERSION_HEADER] = str(active["version"])
        return StreamingResponse(reply.aiter_raw(), status_code=reply.status_code, headers=kept,
                                 background=BackgroundTask(reply.aclose))

    return app


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
