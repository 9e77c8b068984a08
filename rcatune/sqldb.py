"""One SQLAlchemy engine per database URL per process, shared by every store object on it (the A/B outcome
store, the control API's tables), so a long-lived process (a router, the control API) holds a bounded number of
connections however often it opens a store. SQLite gets WAL, full sync and a busy timeout: many writers at once."""

from __future__ import annotations

from typing import Any

_ENGINES: dict[str, Any] = {}  # one engine (and connection pool) per URL per process


def engine_for(url: str):
    """The process's engine for `url`."""
    from sqlalchemy import create_engine, event

    if url not in _ENGINES:
        sqlite = url.startswith("sqlite")
        engine = create_engine(url, future=True, pool_pre_ping=True, connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            @event.listens_for(engine, "connect")
            def _pragmas(connection, _record):  # many writers on one file
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
        _ENGINES[url] = engine
    return _ENGINES[url]
