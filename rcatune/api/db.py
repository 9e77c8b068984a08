"""The control API's tables (jobs and tokens), through SQLAlchemy: SQLite under the state folder by default, a
team's PostgreSQL through the URL in `$RCATUNE_API_DB_URL` (`api.db_url_env`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def api_dir(state: Optional[Path] = None) -> Path:
    from rcatune.state import state_dir

    folder = (state or state_dir()) / "api"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def database_url(variable: str = "RCATUNE_API_DB_URL") -> str:
    return os.environ.get(variable) or f"sqlite:///{api_dir() / 'api.db'}"


def tables():
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text

    meta = MetaData()
    jobs = Table("api_jobs", meta, Column("id", String(40), primary_key=True),
                 Column("pipeline", String(32), nullable=False), Column("overrides", Text, nullable=False),
                 Column("state", String(16), nullable=False, index=True), Column("run_dir", Text, nullable=False),
                 Column("submitted_by", String(64), nullable=False), Column("created_at", Float, nullable=False),
                 Column("started_at", Float), Column("ended_at", Float), Column("pid", Integer),
                 Column("pid_started", String(32)), Column("exit_code", Integer), Column("error", Text),
                 Column("cancel_requested", Boolean, nullable=False, default=False),
                 Column("cancelled_by", String(64)))
    tokens = Table("api_tokens", meta, Column("id", String(16), primary_key=True),
                   Column("name", String(64), nullable=False), Column("scopes", String(64), nullable=False),
                   Column("hash", String(128), nullable=False), Column("created_at", Float, nullable=False),
                   Column("revoked_at", Float))
    return meta, jobs, tokens


class Database:
    """The engine for one URL (shared by every object on it in this process) and the tables, created once."""

    def __init__(self, url: Optional[str] = None) -> None:
        from rcatune.errors import RcatuneError
        from rcatune.sqldb import engine_for

        self.url = url or database_url()
        self.engine = engine_for(self.url)
        self.meta, self.jobs, self.tokens = tables()
        try:
            self.meta.create_all(self.engine)
        except Exception as error:
            raise RcatuneError(f"the control API's database {self.safe_url} cannot be opened: "
                               f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None

    @property
    def safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def answers(self) -> bool:
        from sqlalchemy import text

        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False
