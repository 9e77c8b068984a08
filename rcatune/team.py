"""A team's servers on this machine: a ZenML server and an MLflow tracking server (`stack=team`).

    python -m rcatune.team start [--zenml-port 8237] [--mlflow-port 8238]   (make team-start)
    python -m rcatune.team status | stop | env

Both run from their own venv, `.venv-team` (`make team`): `zenml[server]` pins fastapi < 0.139 and ours is
0.141.1, and MLflow's basic-auth app needs Flask-WTF; in a venv of their own both resolve unchanged
(constraints-team.txt). They listen on 127.0.0.1 only and keep everything under `<state>/team/`:

- `zenml/`: the ZenML server's SQLite database (runs, artifacts' metadata, model versions, secrets) and config;
  the server is started the way ZenML's own image starts it (uvicorn over `zen_server_api:app`), so it counts as
  a deployed server: stacks with remote components may be registered on it.
- `mlflow/`: MLflow's backend store, its proxied artifact store (`mlflow-artifacts:/`) and its users database
  (basic auth: every request needs a user).
- `credentials.json` (mode 600): the users both servers were created with, and their signing keys. It is
  written once, never printed, and read by `stack=team` only when the environment names no credentials
  (ZENML_STORE_USERNAME/ZENML_STORE_PASSWORD or ZENML_STORE_API_KEY; MLFLOW_TRACKING_USERNAME/
  MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN), which is how a team's own servers are reached.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from rcatune.errors import RcatuneError
from rcatune.processes import alive, port_free, spawn, stop_group, tail
from rcatune.state import state_dir

HOST = "127.0.0.1"
ZENML_PORT = 8237
MLFLOW_PORT = 8238
USERNAME = "rcatune"
VENV_ENV = "RCATUNE_TEAM_VENV"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = "install them with `make team` (their own venv, .venv-team)"


@dataclass(frozen=True)
class TeamPaths:
    root: Path

    @classmethod
    def under(cls, state: Path | None = None) -> "TeamPaths":
        return cls((state or state_dir()) / "team")

    @property
    def zenml(self) -> Path:
        return self.root / "zenml"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def info(self) -> Path:
        return self.root / "servers.json"  # pids, ports and URLs of the running servers

    def log(self, server: str) -> Path:
        return self.root / f"{server}.log"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _venv_bin(name: str) -> str:
    """`<venv>/bin/<name>` of the team venv ($RCATUNE_TEAM_VENV, else .venv-team)."""
    venv = Path(os.environ.get(VENV_ENV) or PROJECT_ROOT / ".venv-team")
    if os.access(venv / "bin" / name, os.X_OK):
        return str(venv / "bin" / name)
    raise RcatuneError(f"the team servers are not installed in {venv}: {INSTALL_HINT}, or point {VENV_ENV} at a "
                       "venv holding zenml[server] and mlflow[auth]")


def credentials(paths: TeamPaths | None = None) -> dict[str, str]:
    """The servers' users and keys, made on first use (mode 600)."""
    paths = paths or TeamPaths.under()
    made = json.loads(paths.credentials.read_text(encoding="utf-8")) if paths.credentials.exists() else {}
    wanted = {"zenml_username": USERNAME, "zenml_password": secrets.token_urlsafe(18),
              "zenml_jwt_secret": secrets.token_hex(32), "zenml_secrets_key": secrets.token_hex(32),
              "mlflow_username": USERNAME, "mlflow_password": secrets.token_urlsafe(18),
              "mlflow_flask_secret": secrets.token_hex(32)}
    if set(wanted) - set(made):
        made = {**wanted, **made}
        _write_private(paths.credentials, json.dumps(made))
    return made


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def running(paths: TeamPaths | None = None) -> dict[str, Any] | None:
    """{'zenml': {pid, port, url}, 'mlflow': {...}} when both servers this state folder started answer."""
    paths = paths or TeamPaths.under()
    if not paths.info.exists():
        return None
    info = json.loads(paths.info.read_text(encoding="utf-8"))
    if all(alive(server["pid"]) and _answers(server["url"]) for server in info.values()):
        return info
    return None


def _zenml_command(port: int) -> list[str]:
    # how ZenML's server image starts it; one worker: the SQLite store takes one writer at a time
    return [_venv_bin("uvicorn"), "zenml.zen_server.zen_server_api:app", "--host", HOST, "--port", str(port),
            "--no-server-header", "--log-level", "warning"]


def _zenml_env(paths: TeamPaths, creds: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    return {**env, "ZENML_CONFIG_PATH": str(paths.zenml / "config"),
            "ZENML_STORE_URL": f"sqlite:///{paths.zenml / 'zenml.db'}",
            "ZENML_SERVER_DEPLOYMENT_TYPE": "other", "ZENML_SERVER_AUTO_ACTIVATE": "true",
            "ZENML_DEFAULT_USER_NAME": creds["zenml_username"], "ZENML_DEFAULT_USER_PASSWORD": creds["zenml_password"],
            "ZENML_SERVER_JWT_SECRET_KEY": creds["zenml_jwt_secret"], "ZENML_ANALYTICS_OPT_IN": "false",
            # secrets (the MLflow login the stack's tracker uses) are stored encrypted
            "ZENML_SECRETS_STORE_TYPE": "sql", "ZENML_SECRETS_STORE_ENCRYPTION_KEY": creds["zenml_secrets_key"],
            "ZENML_LOGGING_VERBOSITY": "WARN", "ZENML_ENABLE_RICH_TRACEBACK": "false", "DO_NOT_TRACK": "true"}


def _mlflow_command(port: int, paths: TeamPaths) -> list[str]:
    return [_venv_bin("mlflow"), "server", "--app-name", "basic-auth", "--host", HOST, "--port", str(port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{paths.mlflow / 'mlflow.db'}",
            "--artifacts-destination", str(paths.mlflow / "artifacts")]


def _mlflow_env(paths: TeamPaths, creds: dict[str, str]) -> dict[str, str]:
    # basic auth: the admin user is made from this file on first start; every request needs a user
    auth = paths.mlflow / "basic_auth.ini"
    _write_private(auth, "[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{paths.mlflow / 'auth.db'}\n"
                   f"admin_username = {creds['mlflow_username']}\nadmin_password = {creds['mlflow_password']}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    return {**env, "MLFLOW_AUTH_CONFIG_PATH": str(auth), "MLFLOW_FLASK_SERVER_SECRET_KEY": creds["mlflow_flask_secret"],
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def start(zenml_port: int = ZENML_PORT, mlflow_port: int = MLFLOW_PORT, timeout_s: float = 180.0,
          paths: TeamPaths | None = None, quiet: bool = False) -> dict[str, Any]:
    """Start both servers (or find them running) and wait until both answer /health."""
    paths = paths or TeamPaths.under()
    info = running(paths)
    if info:
        return {**info, "already_running": True}
    stop(paths)  # one of the two may have died: start the pair afresh
    for name, port in (("ZenML", zenml_port), ("MLflow", mlflow_port)):
        if not port_free(port, HOST):
            raise RcatuneError(f"port {port} on {HOST} is taken ({name} server): stop what listens there, or pass "
                               f"--{name.lower()}-port")
    for folder in (paths.zenml, paths.mlflow / "artifacts"):
        folder.mkdir(parents=True, exist_ok=True)
    creds = credentials(paths)
    started = time.perf_counter()
    processes = {
        "zenml": (spawn(_zenml_command(zenml_port), paths.log("zenml"), _zenml_env(paths, creds), paths.zenml),
                  zenml_port),
        "mlflow": (spawn(_mlflow_command(mlflow_port, paths), paths.log("mlflow"), _mlflow_env(paths, creds),
                         paths.mlflow), mlflow_port)}
    info = {name: {"pid": process.pid, "port": port, "url": f"http://{HOST}:{port}"}
            for name, (process, port) in processes.items()}
    _write_private(paths.info, json.dumps(info))
    last_note = 0.0
    waiting = set(info)
    while waiting:
        for name in sorted(waiting):
            process = processes[name][0]
            if _answers(info[name]["url"]):
                waiting.discard(name)
            elif process.poll() is not None:
                stop(paths)
                raise RcatuneError(f"the {name} server exited with code {process.returncode} while starting; last "
                                   f"lines of {paths.log(name)}:\n{tail(paths.log(name))}")
        elapsed = time.perf_counter() - started
        if waiting and elapsed > timeout_s:
            stop(paths)
            raise RcatuneError(f"{', '.join(sorted(waiting))} did not answer /health within {timeout_s:.0f} s; "
                               f"see {paths.root}/*.log")
        if waiting and not quiet and elapsed - last_note >= 15:
            print(f"waiting for {', '.join(sorted(waiting))} ({elapsed:.0f} s; a fresh store migrates first)",
                  flush=True)
            last_note = elapsed
        if waiting:
            time.sleep(0.5)
    return {**info, "seconds": round(time.perf_counter() - started, 1), "already_running": False}


def stop(paths: TeamPaths | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the servers this state folder started. True if one was running."""
    paths = paths or TeamPaths.under()
    if not paths.info.exists():
        return False
    info = json.loads(paths.info.read_text(encoding="utf-8"))
    was_running = [stop_group(server["pid"], timeout_s) for server in info.values()]
    paths.info.unlink(missing_ok=True)
    return any(was_running)


def _report(info: dict[str, Any], paths: TeamPaths) -> str:
    return "\n".join([
        f"ZenML server  {info['zenml']['url']}   (dashboard: the same address; user {USERNAME})",
        f"MLflow server {info['mlflow']['url']}   (UI: the same address; user {USERNAME})",
        f"state and logs: {paths.root}   credentials (mode 600): {paths.credentials}",
        f"run on it:  python run.py stack=team stack.zenml_url={info['zenml']['url']} "
        f"stack.mlflow_url={info['mlflow']['url']}",
        "stop:       make team-stop"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcatune.team", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start", help="start both servers (data under <state>/team)")
    start_parser.add_argument("--zenml-port", type=int, default=ZENML_PORT)
    start_parser.add_argument("--mlflow-port", type=int, default=MLFLOW_PORT)
    sub.add_parser("stop", help="stop them")
    sub.add_parser("status", help="are they running, and where")
    sub.add_parser("env", help="print shell exports that point ZenML and MLflow clients at them (with the "
                               "credentials: for `eval`, never for logs)")
    args = parser.parse_args(argv)
    paths = TeamPaths.under()
    try:
        if args.command == "start":
            info = start(args.zenml_port, args.mlflow_port, paths=paths)
            print(("already running\n" if info.pop("already_running") else f"started in {info.pop('seconds')} s\n")
                  + _report(info, paths))
        elif args.command == "stop":
            print("stopped" if stop(paths) else "not running")
        elif args.command == "status":
            info = running(paths)
            print(_report(info, paths) if info else "not running (start: make team-start)")
            return 0 if info else 1
        else:
            info = running(paths)
            if not info:
                raise RcatuneError("the team servers are not running: make team-start")
            creds = credentials(paths)
            for key, value in (("ZENML_STORE_URL", info["zenml"]["url"]),
                               ("ZENML_STORE_USERNAME", creds["zenml_username"]),
                               ("ZENML_STORE_PASSWORD", creds["zenml_password"]),
                               ("MLFLOW_TRACKING_URI", info["mlflow"]["url"]),
                               ("MLFLOW_TRACKING_USERNAME", creds["mlflow_username"]),
                               ("MLFLOW_TRACKING_PASSWORD", creds["mlflow_password"])):
                print(f"export {key}='{value}'")
    except RcatuneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
