"""Render diagnostic query shapes to ClickHouse SQL over the OTel exporter tables."""

from __future__ import annotations

from datetime import datetime

from rcatune.demo.faults import Query


def _window(start: datetime, end: datetime, column: str = "Timestamp") -> str:
    fmt = "%Y-%m-%d %H:%M:%S"
    return (
        f"{column} >= toDateTime64('{start.strftime(fmt)}', 9, 'UTC')\n"
        f"  AND {column} < toDateTime64('{end.strftime(fmt)}', 9, 'UTC')"
    )


def _services(services: tuple[str, ...]) -> str:
    return ", ".join(f"'{s}'" for s in services)


def render_query(query: Query, start: datetime, end: datetime) -> str:
    """One self-contained SELECT for the incident window."""
    where = f"{_window(start, end)}\n  AND ServiceName IN ({_services(query.services)})"
    if query.span:
        where += f"\n  AND SpanName = '{query.span}'"
    if query.kind == "error_rate":
        return (
            "SELECT ServiceName, SpanName, count() AS spans,\n"
            "       countIf(StatusCode = 'Error') AS errors,\n"
            "       round(errors / spans, 3) AS error_ratio\n"
            f"FROM otel_traces\nWHERE {where}\n"
            "GROUP BY ServiceName, SpanName\nORDER BY error_ratio DESC, spans DESC\nLIMIT 20"
        )
    if query.kind == "latency":
        return (
            "SELECT ServiceName, SpanName, count() AS spans,\n"
            "       round(quantile(0.5)(Duration) / 1e6, 1) AS p50_ms,\n"
            "       round(quantile(0.95)(Duration) / 1e6, 1) AS p95_ms,\n"
            "       round(quantile(0.99)(Duration) / 1e6, 1) AS p99_ms\n"
            f"FROM otel_traces\nWHERE {where}\n"
            "GROUP BY ServiceName, SpanName\nORDER BY p95_ms DESC\nLIMIT 20"
        )
    if query.kind == "attribute":
        return (
            f"SELECT SpanAttributes['{query.attribute}'] AS value, count() AS spans,\n"
            "       countIf(StatusCode = 'Error') AS errors\n"
            f"FROM otel_traces\nWHERE {where}\n"
            "GROUP BY value\nORDER BY errors DESC, spans DESC\nLIMIT 20"
        )
    if query.kind == "traffic":
        return (
            "SELECT toStartOfMinute(Timestamp) AS minute, ServiceName, count() AS spans,\n"
            "       countIf(StatusCode = 'Error') AS errors\n"
            f"FROM otel_traces\nWHERE {where}\n"
            "GROUP BY minute, ServiceName\nORDER BY minute, ServiceName"
        )
    if query.kind == "logs":
        return (
            "SELECT Timestamp, ServiceName, SeverityText, Body\n"
            f"FROM otel_logs\nWHERE {_window(start, end)}\n"
            f"  AND ServiceName IN ({_services(query.services)})\n"
            f"  AND Body ILIKE '%{query.text}%'\n"
            "ORDER BY Timestamp DESC\nLIMIT 50"
        )
    if query.kind == "metric":
        return (
            "SELECT toStartOfFiveMinutes(TimeUnix) AS bucket, ServiceName,\n"
            "       max(Value) AS max_value, avg(Value) AS avg_value\n"
            f"FROM otel_metrics_gauge\nWHERE {_window(start, end, 'TimeUnix')}\n"
            f"  AND ServiceName IN ({_services(query.services)})\n"
            f"  AND MetricName = '{query.metric}'\n"
            "GROUP BY bucket, ServiceName\nORDER BY bucket"
        )
    raise ValueError(f"unknown query kind {query.kind!r}")
