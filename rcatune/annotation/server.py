"""Start, stop and inspect the project's own Label Studio server; invite annotators.

    python -m rcatune.annotation.server start [--port 8200]   (make labelstudio-start)
    python -m rcatune.annotation.server status | stop | url
    python -m rcatune.annotation.server add-annotator expert@example.com

The server runs from its own venv (`make labelstudio`: its Django pins clash with ours), listens on
127.0.0.1 only, and keeps everything under `<state>/labelstudio/`: its database and media (`data/`),
its HOME, its log, its pid, the admin's credentials (`admin.json`) and API token (`token`), and one
file per invited annotator (`annotators/`). Secret files are created mode 600 and never printed.
The first start of a fresh database takes about a minute (migrations); later starts a few seconds.
To run it on PostgreSQL instead of SQLite, export Label Studio's own variables before starting
(DJANGO_DB=default, POSTGRE_NAME, POSTGRE_USER, POSTGRE_PASSWORD, POSTGRE_HOST, POSTGRE_PORT):
see docs/annotation.md.
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

import requests

from rcatune.errors import RcatuneError
from rcatune.processes import alive, port_free, spawn, stop_group, tail
from rcatune.state import state_dir
from rcatune.venvs import find_executable

DEFAULT_PORT = 8200
HOST = "127.0.0.1"
BIN_ENV = "RCATUNE_LABEL_STUDIO_BIN"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "install it with `make labelstudio` (its own venv, .venv-labelstudio)"


@dataclass(frozen=True)
class ServerPaths:
    root: Path

    @classmethod
    def under(cls, state: Path | None = None) -> "ServerPaths":
        return cls((state or state_dir()) / "labelstudio")

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def info(self) -> Path:
        return self.root / "server.json"  # pid, port, url of the running server

    @property
    def admin(self) -> Path:
        return self.root / "admin.json"

    @property
    def token(self) -> Path:
        return self.root / "token"

    @property
    def annotators(self) -> Path:
        return self.root / "annotators"


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def find_binary() -> str:
    """The `label-studio` command: $RCATUNE_LABEL_STUDIO_BIN, the project's venv, or PATH."""
    found = find_executable("label-studio", BIN_ENV, PROJECT_ROOT / ".venv-labelstudio")
    if found:
        return found
    raise RcatuneError(f"Label Studio is not installed: {INSTALL_HINT}, or point {BIN_ENV} at a label-studio binary")


def _healthy(url: str) -> bool:
    try:
        response = requests.get(f"{url}/health", timeout=3)
        return response.status_code == 200 and response.json().get("status") == "UP"
    except (requests.RequestException, ValueError):
        return False


def running(paths: ServerPaths | None = None) -> dict | None:
    """The running server started from this state folder ({pid, port, url}), or None."""
    paths = paths or ServerPaths.under()
    if not paths.info.exists():
        return None
    info = json.loads(paths.info.read_text(encoding="utf-8"))
    if alive(info["pid"]) and _healthy(info["url"]):
        return info
    return None


def default_url(state: Path | None = None) -> str:
    """The URL of this state folder's server when it runs, else the default port on 127.0.0.1."""
    info = running(ServerPaths.under(state))
    return info["url"] if info else f"http://{HOST}:{DEFAULT_PORT}"


def start(port: int = DEFAULT_PORT, timeout_s: float = 240.0, paths: ServerPaths | None = None,
          quiet: bool = False) -> dict:
    """Start the server (or find it running) and wait for /health. Returns {pid, port, url, seconds}."""
    paths = paths or ServerPaths.under()
    info = running(paths)
    if info:
        return {**info, "seconds": 0.0, "already_running": True}
    binary = find_binary()
    if not port_free(port, HOST):
        raise RcatuneError(f"port {port} on {HOST} is taken (Label Studio would quietly move to another one): "
                           f"stop what listens there, or pass --port / LABEL_STUDIO_PORT")
    for folder in (paths.data, paths.home):
        folder.mkdir(parents=True, exist_ok=True)
    if not paths.admin.exists():  # first start: credentials the server creates its admin from
        admin = {"username": "admin@rcatune.local", "password": secrets.token_urlsafe(18)}
        _write_secret(paths.admin, json.dumps(admin))
        _write_secret(paths.token, secrets.token_hex(20))
    admin = json.loads(paths.admin.read_text(encoding="utf-8"))
    env = {**os.environ, "HOME": str(paths.home),
           "LABEL_STUDIO_USERNAME": admin["username"], "LABEL_STUDIO_PASSWORD": admin["password"],
           "LABEL_STUDIO_USER_TOKEN": paths.token.read_text(encoding="utf-8").strip(),
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "LABEL_STUDIO_LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    command = [binary, "start", "--no-browser", "--internal-host", HOST, "--port", str(port),
               "--data-dir", str(paths.data)]
    started = time.perf_counter()
    process = spawn(command, paths.log, env, paths.root)
    url = f"http://{HOST}:{port}"
    info = {"pid": process.pid, "port": port, "url": url}
    _write_secret(paths.info, json.dumps(info))
    last_note = 0.0
    while not _healthy(url):
        elapsed = time.perf_counter() - started
        if process.poll() is not None:
            paths.info.unlink(missing_ok=True)
            raise RcatuneError(f"Label Studio exited with code {process.returncode} while starting; "
                               f"last lines of {paths.log}:\n{tail(paths.log)}")
        if elapsed > timeout_s:
            stop(paths)
            raise RcatuneError(f"Label Studio did not answer {url}/health within {timeout_s:.0f} s; see {paths.log}")
        if not quiet and elapsed - last_note >= 15:
            print(f"waiting for Label Studio at {url} ({elapsed:.0f} s; a fresh database migrates first)", flush=True)
            last_note = elapsed
        time.sleep(1.0)
    return {**info, "seconds": round(time.perf_counter() - started, 1), "already_running": False}


def stop(paths: ServerPaths | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the server this state folder started (its own process group only). True if one was running."""
    paths = paths or ServerPaths.under()
    if not paths.info.exists():
        return False
    was_running = stop_group(json.loads(paths.info.read_text(encoding="utf-8"))["pid"], timeout_s)
    paths.info.unlink(missing_ok=True)
    return was_running


def admin_token(paths: ServerPaths | None = None) -> str:
    paths = paths or ServerPaths.under()
    if not paths.token.exists():
        raise RcatuneError(f"no Label Studio token at {paths.token}: start the server once with "
                           "`make labelstudio-start`, or set LABEL_STUDIO_API_KEY")
    return paths.token.read_text(encoding="utf-8").strip()


def add_annotator(email: str, paths: ServerPaths | None = None, url: str | None = None) -> dict:
    """Invite an annotator the way a team would (the organisation's invite link), keep their token.

    Returns {email, id, token_file}; the password and token are stored mode 600 in annotators/<email>.json.
    """
    paths = paths or ServerPaths.under()
    record_file = paths.annotators / f"{email}.json"
    if record_file.exists():
        record = json.loads(record_file.read_text(encoding="utf-8"))
        return {"email": email, "id": record["id"], "token_file": str(record_file), "token": record["token"]}
    url = url or (running(paths) or {}).get("url")
    if not url:
        raise RcatuneError("Label Studio is not running: start it with `make labelstudio-start`")
    admin = requests.Session()
    admin.headers["Authorization"] = f"Token {admin_token(paths)}"
    invite = admin.get(f"{url}/api/invite", timeout=30)
    invite.raise_for_status()
    signup_path = invite.json()["invite_url"]
    password = secrets.token_urlsafe(18)
    browser = requests.Session()
    browser.get(f"{url}{signup_path}", timeout=30).raise_for_status()
    response = browser.post(f"{url}{signup_path}", timeout=30, allow_redirects=False,
                            headers={"Referer": f"{url}{signup_path}"},
                            data={"email": email, "password": password, "allow_newsletters": "false",
                                  "csrfmiddlewaretoken": browser.cookies.get("csrftoken", "")})
    if response.status_code != 302:
        raise RcatuneError(f"Label Studio did not sign up {email} (HTTP {response.status_code}); "
                           "is the address already taken?")
    token = browser.get(f"{url}/api/current-user/token", timeout=30).json()["token"]
    user = browser.get(f"{url}/api/current-user/whoami", timeout=30).json()
    _write_secret(record_file, json.dumps({"email": email, "id": user["id"], "password": password, "token": token}))
    return {"email": email, "id": user["id"], "token_file": str(record_file), "token": token}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rcatune.annotation.server",
                                     description="The project's Label Studio server (data under the state folder).")
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start", help="start on 127.0.0.1 and wait for /health")
    start_cmd.add_argument("--port", type=int, default=int(os.environ.get("LABEL_STUDIO_PORT", DEFAULT_PORT)))
    start_cmd.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for /health")
    sub.add_parser("stop", help="stop the server this state folder started")
    sub.add_parser("status", help="say whether it runs, where, and where its token is kept")
    sub.add_parser("url", help="print the URL of the running server")
    invite = sub.add_parser("add-annotator", help="sign an annotator up through the invite link; keep their token")
    invite.add_argument("email")
    args = parser.parse_args(argv)
    paths = ServerPaths.under()
    try:
        if args.command == "start":
            info = start(args.port, args.timeout, paths)
            verb = "already running" if info["already_running"] else f"started in {info['seconds']} s"
            print(f"Label Studio {verb}: {info['url']} (pid {info['pid']})")
            print(f"  API token: {paths.token} (admin login in {paths.admin}); log: {paths.log}")
            print("  stop: make labelstudio-stop")
        elif args.command == "stop":
            print("Label Studio stopped" if stop(paths) else "Label Studio was not running")
        elif args.command in ("status", "url"):
            info = running(paths)
            if args.command == "url":
                if not info:
                    print("not running", file=sys.stderr)
                    return 1
                print(info["url"])
            elif info:
                print(f"Label Studio running: {info['url']} (pid {info['pid']}); token: {paths.token}")
            else:
                print(f"Label Studio not running (state: {paths.root}); start: make labelstudio-start")
        else:
            record = add_annotator(args.email, paths)
            print(f"annotator {record['email']} (user {record['id']}): login and token in {record['token_file']}")
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
