"""A PostgreSQL server for the A/B outcome store, started from Debian's packages on 127.0.0.1 (what a team
would point `RCATUNE_AB_STORE_URL` at; the tests use it to prove the store on a real server).

    python -m rcatune.abtest.postgres start|stop|url      (make postgres-start / postgres-stop)

Its data lives in the state folder (`<state>/postgres/`), or, when run as root (PostgreSQL refuses to run as
root), in a folder of the `postgres` user's own under the temporary directory. The password is generated once
and kept in a 0600 file; it never appears in a config, a log or MLflow.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from rcatune.errors import RcatuneError

DATABASE, USER = "rcatune_ab", "rcatune"
DEFAULT_PORT = 8432


def binaries() -> Optional[Path]:
    """The newest PostgreSQL server binaries Debian installed, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _as_root() -> bool:
    return os.geteuid() == 0


def folder(state: Optional[Path] = None) -> Path:
    from rcatune.state import state_dir

    state = Path(state or state_dir())
    if _as_root():  # the server runs as `postgres`, which cannot read a root-owned state folder
        key = hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"rcatune-postgres-{key}"
    return state / "postgres"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    if _as_root():
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def start(state: Optional[Path] = None, port: int = DEFAULT_PORT) -> str:
    """Start (or find running) the server; its SQLAlchemy URL."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RcatuneError("PostgreSQL is not installed: make postgres installs Debian's package (needs root)")
    home = folder(state)
    home.mkdir(parents=True, exist_ok=True)
    password_file, data = home / "password", home / "data"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
    password_file.chmod(0o600)
    if _as_root():
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(password_file, "postgres", "postgres")
        home.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        made = _run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
                     f"--pwfile={password_file}", "-E", "UTF8"])
        if made.returncode != 0:
            raise RcatuneError(f"initdb failed: {made.stderr.strip()[-400:]}")
    port_file = home / "port"
    running = _run([str(bin_dir / "pg_ctl"), "-D", str(data), "status"]).returncode == 0
    if running and port_file.exists():
        port = int(port_file.read_text())
    else:
        started = _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1", "start"])
        if started.returncode != 0:
            log = (home / "server.log").read_text()[-600:] if (home / "server.log").exists() else ""
            raise RcatuneError(f"PostgreSQL did not start on 127.0.0.1:{port}: {started.stderr.strip()[-300:]}"
                               f"\n{log}")
        port_file.write_text(str(port))
    url = f"postgresql+psycopg://{USER}:{password_file.read_text().strip()}@127.0.0.1:{port}/postgres"
    _ensure_database(url)
    return url.rsplit("/", 1)[0] + f"/{DATABASE}"


def _ensure_database(admin_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + 30
    while True:
        try:
            with engine.connect() as connection:
                known = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DATABASE})
                if not known.first():
                    connection.execute(text(f"CREATE DATABASE {DATABASE}"))
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    engine.dispose()


def stop(state: Optional[Path] = None) -> bool:
    bin_dir, data = binaries(), folder(state) / "data"
    if bin_dir is None or not data.exists():
        return False
    return _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]).returncode == 0


def main(argv: list[str] | None = None) -> int:
    command = (argv or sys.argv[1:] or ["url"])[0]
    try:
        if command == "start":
            url = start()
            print(f"PostgreSQL for A/B outcomes on {url.split('@')[1]}; point the store at it with\n"
                  f"  export RCATUNE_AB_STORE_URL=\"$(python -m rcatune.abtest.postgres url)\"")
        elif command == "stop":
            print("stopped" if stop() else "was not running")
        elif command == "url":
            print(start())
        else:
            print("usage: python -m rcatune.abtest.postgres start|stop|url", file=sys.stderr)
            return 2
    except RcatuneError as error:
        print(f"rcatune: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
