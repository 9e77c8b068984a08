"""The OpenTelemetry Collector ClickHouse exporter's tables, for embedded (chdb) databases.

Diagnostic queries are written against these tables, so a query that runs here runs unchanged on a
real deployment of the exporter. `create_otel_tables` builds them in a chdb session.
"""

from __future__ import annotations

OTEL_TABLES_DDL: dict[str, str] = {
    "otel_traces": """
CREATE TABLE IF NOT EXISTS {db}.otel_traces (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
""",
    "otel_logs": """
CREATE TABLE IF NOT EXISTS {db}.otel_logs (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
""",
}

_METRIC_COMMON = """
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""
_METRIC_TAIL = """
) ENGINE = MergeTree
PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))
"""
OTEL_TABLES_DDL["otel_metrics_gauge"] = (
    "CREATE TABLE IF NOT EXISTS {db}.otel_metrics_gauge (" + _METRIC_COMMON
    + "\n    Value Float64 CODEC(ZSTD(1)),\n    Flags UInt32 CODEC(ZSTD(1))" + _METRIC_TAIL
)
OTEL_TABLES_DDL["otel_metrics_sum"] = (
    "CREATE TABLE IF NOT EXISTS {db}.otel_metrics_sum (" + _METRIC_COMMON
    + "\n    Value Float64 CODEC(ZSTD(1)),\n    Flags UInt32 CODEC(ZSTD(1)),"
    + "\n    AggregationTemporality Int32 CODEC(ZSTD(1)),\n    IsMonotonic Boolean CODEC(Delta, ZSTD(1))" + _METRIC_TAIL
)
OTEL_TABLES_DDL["otel_metrics_histogram"] = (
    "CREATE TABLE IF NOT EXISTS {db}.otel_metrics_histogram (" + _METRIC_COMMON
    + "\n    Count UInt64 CODEC(Delta, ZSTD(1)),\n    Sum Float64 CODEC(ZSTD(1)),"
    + "\n    BucketCounts Array(UInt64) CODEC(ZSTD(1)),\n    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),"
    + "\n    Flags UInt32 CODEC(ZSTD(1)),\n    Min Float64 CODEC(ZSTD(1)),\n    Max Float64 CODEC(ZSTD(1)),"
    + "\n    AggregationTemporality Int32 CODEC(ZSTD(1))" + _METRIC_TAIL
)


def create_otel_tables(session, database: str = "otel") -> None:
    """Create the exporter's database and tables in a chdb `Session` (idempotent)."""
    session.query(f"CREATE DATABASE IF NOT EXISTS {database} ENGINE = Atomic")
    for ddl in OTEL_TABLES_DDL.values():
        session.query(ddl.format(db=database))
    session.query(f"USE {database}")


def synthetic_spans(example, count: int = 40, seed: int = 0) -> list[dict]:
    """Spans in the `otel_traces` shape for one session's window, shaped by its telemetry summary.

    Error ratios and p95 latencies follow `telemetry_context["trace_summary"]` when present, so
    diagnostic queries over them return the incident's signal.
    """
    import random

    rng = random.Random(f"{example.id}-{seed}")
    start, end = example.time_range
    window = (end - start).total_seconds()
    summary = example.telemetry_context.get("trace_summary", {})
    rows = []
    for index in range(count):
        service = example.affected_services[index % len(example.affected_services)]
        stats = summary.get(service, {})
        failed = rng.random() < float(stats.get("error_ratio", 0.0))
        p95_ms = float(stats.get("p95_ms", 50))
        rows.append({
            "Timestamp": (start + (end - start) * rng.random()).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "TraceId": f"{rng.getrandbits(128):032x}",
            "SpanId": f"{rng.getrandbits(64):016x}",
            "SpanName": f"{service} request",
            "SpanKind": "Server",
            "ServiceName": service,
            "SpanAttributes": {"demo.scenario_window": str(int(window))},
            "Duration": int(p95_ms * rng.uniform(0.3, 1.0) * 1e6),
            "StatusCode": "Error" if failed else "Ok",
            "StatusMessage": example.error_signatures[0] if failed and example.error_signatures else "",
        })
    return rows


def insert_spans(session, rows: list[dict], database: str = "otel") -> None:
    """Insert `synthetic_spans` rows into a chdb session's otel_traces table."""
    import json

    if rows:
        payload = "\n".join(json.dumps(row) for row in rows)
        session.query(f"INSERT INTO {database}.otel_traces FORMAT JSONEachRow {payload}")
