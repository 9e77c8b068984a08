"""CSV and ClickHouse (real, embedded chdb) sources, and the sample generator as a source."""

from __future__ import annotations

import csv
import io
import json

import pytest

from rcatune.errors import DataError
from rcatune.schema import TrainingExample
from rcatune.sources import ClickHouseSource, CsvSource, SampleSource
from rcatune.sources.flat import ALL_FIELDS, encode_flat
from rcatune.validation import validate_records


def _write_csv(path, records, header=ALL_FIELDS):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record in records:
            cells = encode_flat(record)
            writer.writerow([cells.get(column, "") for column in header])
    return path


def _validate(source, tmp_path):
    quarantine = tmp_path / "q.jsonl"
    examples, report = validate_records(source.records(), "t", quarantine, progress=False)
    entries = [json.loads(line) for line in quarantine.read_text().splitlines()] if quarantine.exists() else []
    return examples, report, entries


def test_csv_round_trips_every_field(sample_records, tmp_path):
    path = _write_csv(tmp_path / "s.csv", sample_records[:30])
    examples, report, _ = _validate(CsvSource(str(path)), tmp_path)
    assert report.accepted == 30
    assert [e.to_json_dict() for e in examples] == [
        TrainingExample.model_validate(r).to_json_dict() for r in sample_records[:30]]


def test_csv_bad_cells_are_quarantined_by_column(sample_records, tmp_path):
    path = _write_csv(tmp_path / "s.csv", sample_records[:3])
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    rows = list(csv.reader(lines[1:]))
    rows[0][ALL_FIELDS.index("confidence_score")] = "high"
    rows[1][ALL_FIELDS.index("symptoms")] = "[not json"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ALL_FIELDS)
        writer.writerows(rows)
    _, report, entries = _validate(CsvSource(str(path)), tmp_path)
    assert (report.read, report.accepted, report.rejected) == (3, 1, 2)
    # a record's line is where it starts in the file: quoted cells (the SQL) span several lines
    first_row = io.StringIO()
    csv.writer(first_row).writerow(rows[0])
    row2_line = 2 + first_row.getvalue().count("\n")
    assert [(e["location"], e["field"], e["category"]) for e in entries] == [
        ("row 1 (line 2)", "confidence_score", "bad_cell"), (f"row 2 (line {row2_line})", "symptoms", "bad_cell")]


def test_csv_wrong_header_fails_naming_the_columns(sample_records, tmp_path):
    header = [c if c != "root_cause" else "rootcause" for c in ALL_FIELDS]
    path = _write_csv(tmp_path / "s.csv", sample_records[:2], header=header)
    with pytest.raises(DataError, match=r"missing required columns \['root_cause'\]; unknown columns \['rootcause'\]"):
        list(CsvSource(str(path)).records())


def test_csv_non_utf8_and_huge_cells(sample_records, tmp_path):
    path = _write_csv(tmp_path / "s.csv", sample_records[:2])
    data = path.read_bytes()
    data += b'broken-\xff,' + b",".join([b"x"] * (len(ALL_FIELDS) - 1)) + b"\n"
    data += b'"' + b"y" * 300_000 + b'"' + b"," * (len(ALL_FIELDS) - 1) + b"\n"
    good_row = _write_csv(tmp_path / "tail.csv", sample_records[2:3]).read_bytes().split(b"\n", 1)[1]
    path.write_bytes(data + good_row)
    examples, report, entries = _validate(CsvSource(str(path), max_record_bytes=100_000), tmp_path)
    assert report.read == 5 and report.accepted == 3
    assert [e["category"] for e in entries] == ["invalid_utf8", "record_too_large"]


def test_empty_csv_has_no_records(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert list(CsvSource(str(path)).records()) == []


def test_sample_source_is_deterministic_and_valid(tmp_path):
    a, report, _ = _validate(SampleSource(size=50, seed=3), tmp_path)
    b, _, _ = _validate(SampleSource(size=50, seed=3), tmp_path)
    c, _, _ = _validate(SampleSource(size=50, seed=4), tmp_path)
    assert report.accepted == 50 and a == b and a != c


@pytest.fixture
def chdb_sessions(sample_records, tmp_path):
    """A chdb database with the OTel exporter tables (synthetic spans) and a sessions table."""
    from chdb import session as chdb_session

    from rcatune.telemetry import create_otel_tables, insert_spans, synthetic_spans

    folder = tmp_path / "chdb"
    sess = chdb_session.Session(str(folder))
    create_otel_tables(sess)
    examples = [TrainingExample.model_validate(r) for r in sample_records[:20]]
    for example in examples:
        insert_spans(sess, synthetic_spans(example, count=30))
    sess.query("""
        CREATE TABLE otel.diagnostic_sessions (
            id String, timestamp DateTime64(3, 'UTC'), telemetry_context String, service_topology String,
            time_range Array(DateTime64(3, 'UTC')), symptoms Array(String), affected_services Array(String),
            error_signatures Array(String), root_cause String, diagnostic_query String, critical_paths String,
            remediation_steps Array(String), human_validated Bool, confidence_score Float64,
            corrections Nullable(String), expert_notes Nullable(String), time_to_identification Float64,
            human_prompts_required UInt64, false_hypotheses Array(String), scenario String, incident_id String
        ) ENGINE = MergeTree ORDER BY id""")
    rows = []
    for record in sample_records[:20]:
        row = dict(record)
        for key in ("telemetry_context", "service_topology", "critical_paths"):
            row[key] = json.dumps(record[key])
        row["corrections"] = json.dumps(record["corrections"]) if record["corrections"] else None
        row["timestamp"] = record["timestamp"][:19].replace("T", " ")
        row["time_range"] = [t[:19].replace("T", " ") for t in record["time_range"]]
        rows.append(json.dumps(row))
    sess.query("INSERT INTO otel.diagnostic_sessions FORMAT JSONEachRow " + "\n".join(rows))
    sess.close()
    return folder, examples


def test_clickhouse_chdb_reads_sessions_joined_with_otel_traces(chdb_sessions, tmp_path):
    folder, expected = chdb_sessions
    query = """
        SELECT s.* EXCEPT (telemetry_context),
               toJSONString(map('error_spans', toString(t.errors), 'spans', toString(t.spans))) AS telemetry_context
        FROM otel.diagnostic_sessions AS s
        LEFT JOIN (
            SELECT ServiceName, countIf(StatusCode = 'Error') AS errors, count() AS spans
            FROM otel.otel_traces GROUP BY ServiceName
        ) AS t ON t.ServiceName = s.affected_services[1]
        ORDER BY s.id"""
    examples, report, entries = _validate(ClickHouseSource(query, database_path=str(folder)), tmp_path)
    assert (report.read, report.accepted) == (20, 20), entries
    by_id = {e.id: e for e in expected}
    for example in examples:
        original = by_id[example.id]
        assert example.root_cause == original.root_cause and example.time_range == original.time_range
        assert example.critical_paths == original.critical_paths and example.corrections == original.corrections
        assert int(example.telemetry_context["spans"]) > 0


def test_clickhouse_bad_rows_are_quarantined_and_bad_sql_is_clear(chdb_sessions, tmp_path):
    folder, _ = chdb_sessions
    query = ("SELECT * REPLACE (if(id = (SELECT min(id) FROM otel.diagnostic_sessions), 1.7, confidence_score) "
             "AS confidence_score) FROM otel.diagnostic_sessions")
    _, report, [entry] = _validate(ClickHouseSource(query, database_path=str(folder)), tmp_path)
    assert (report.read, report.rejected) == (20, 1) and entry["field"] == "confidence_score"
    with pytest.raises(DataError, match="ClickHouse query failed"):
        list(ClickHouseSource("SELECT * FROM no_such_table", database_path=str(folder)).records())


def test_clickhouse_server_unreachable_is_a_clear_error():
    with pytest.raises(DataError, match="ClickHouse query failed on http://127.0.0.1:9"):
        list(ClickHouseSource("SELECT 1", url="http://127.0.0.1:9").records())
