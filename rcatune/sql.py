"""Whether a diagnostic query is ClickHouse SQL (the server's answers and evaluation's scores both ask)."""

from __future__ import annotations


def query_parses(sql: str) -> bool:
    """A ClickHouse query statement (SELECT, UNION, WITH ...), not just any expression."""
    import sqlglot

    if not sql.strip():
        return False
    try:
        return isinstance(sqlglot.parse_one(sql, read="clickhouse"), sqlglot.exp.Query)
    except Exception:  # sqlglot raises several error types for bad SQL
        return False
