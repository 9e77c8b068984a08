"""Every record is accepted or quarantined with where and why; read = accepted + rejected."""

from __future__ import annotations

import json

import pytest

from rcatune.errors import DataError
from rcatune.sources import JsonlSource
from rcatune.validation import check_report, load_examples, validate_records


def _run(path, tmp_path, **kwargs):
    quarantine = tmp_path / "quarantine.jsonl"
    examples, report = validate_records(JsonlSource(str(path), **kwargs).records(), "test", quarantine, progress=False)
    entries = [json.loads(line) for line in quarantine.read_text().splitlines()] if quarantine.exists() else []
    return examples, report, entries


def _variant(record, **changes):
    copy = dict(record)
    for key, value in changes.items():
        if value is ...:
            copy.pop(key)
        else:
            copy[key] = value
    return copy


BAD_CASES = [
    ("malformed_json", lambda r: '{"id": "x", ', "", "malformed JSON"),
    # the error is at the line's end: column 13 of that line, not column 1 of the next (the newline was read)
    ("malformed_json", lambda r: '{"id": "x", ', "", "at column 13"),
    ("not_an_object", lambda r: "[1, 2, 3]", "", "expected a JSON object, got list"),
    ("not_an_object", lambda r: '"just text"', "", "got str"),
    ("wrong_type", lambda r: _variant(r, symptoms="one symptom"), "symptoms", "valid list"),
    ("wrong_type", lambda r: _variant(r, confidence_score="0.9"), "confidence_score", "valid number"),
    ("wrong_type", lambda r: _variant(r, human_prompts_required=2.5), "human_prompts_required", "integer"),
    ("wrong_type", lambda r: _variant(r, critical_paths=[["a", 3]]), "critical_paths[0][1]", "valid string"),
    ("missing_field", lambda r: _variant(r, root_cause=...), "root_cause", "Field required"),
    ("blank_field", lambda r: _variant(r, diagnostic_query="   "), "diagnostic_query", "at least 1 character"),
    ("empty_list", lambda r: _variant(r, symptoms=[]), "symptoms", "at least 1 item"),
    ("out_of_range", lambda r: _variant(r, confidence_score=1.2), "confidence_score", "less than or equal to 1"),
    ("out_of_range", lambda r: _variant(r, confidence_score=-0.1), "confidence_score", "greater than or equal"),
    ("invalid_time_range", lambda r: _variant(r, time_range=list(reversed(r["time_range"]))), "time_range",
     "not after its start"),
    ("invalid_time_range", lambda r: _variant(r, time_range=r["time_range"][:1]), "time_range", "exactly 2"),
    ("invalid_timestamp", lambda r: _variant(r, timestamp="last tuesday"), "timestamp", "ISO-8601"),
    ("invalid_timestamp", lambda r: _variant(r, time_range=["2026-01-01T00:00:00Z", "soon"]), "time_range[1]",
     "ISO-8601"),
    ("unknown_field", lambda r: _variant(r, root_cuase="typo"), "root_cuase", "Extra inputs"),
]


@pytest.mark.parametrize("category,make,field,reason", BAD_CASES, ids=[f"{c[0]}-{c[2] or 'record'}" for c in BAD_CASES])
def test_each_bad_record_is_quarantined_with_field_and_reason(category, make, field, reason, sample_records,
                                                              write_jsonl, tmp_path):
    good = sample_records[0]
    bad = make(dict(sample_records[1], id="bad-one"))
    path = write_jsonl([good, bad, sample_records[2]])
    examples, report, entries = _run(path, tmp_path)
    assert (report.read, report.accepted, report.rejected) == (3, 2, 1)
    assert report.by_reason == {category: 1}
    [entry] = entries
    assert entry["location"] == "line 2" and entry["category"] == category and entry["field"] == field
    assert reason in entry["reason"]
    assert entry["raw"] and entry["source"] == str(path)


def test_duplicate_id_points_at_first_occurrence(sample_records, write_jsonl, tmp_path):
    path = write_jsonl([sample_records[0], sample_records[1], sample_records[0]])
    _, report, [entry] = _run(path, tmp_path)
    assert report.by_reason == {"duplicate_id": 1}
    assert entry["location"] == "line 3" and "first seen at line 1" in entry["reason"]


def test_non_utf8_bytes(sample_records, write_jsonl, tmp_path):
    line = json.dumps(dict(sample_records[3], id="latin")).replace("latin", "lat\\u00edn").encode()
    bad = line.replace(b"lat\\u00edn", b"lat\xedn")
    path = write_jsonl([sample_records[0], bad])
    _, report, [entry] = _run(path, tmp_path)
    assert entry["category"] == "invalid_utf8" and "byte" in entry["reason"] and "\\xed" in entry["raw"]
    assert report.read == 2


def test_single_huge_line_is_rejected_without_loading_it(sample_records, write_jsonl, tmp_path):
    huge = '{"id": "' + "x" * 5_000_000 + '"}'
    path = write_jsonl([sample_records[0], huge, sample_records[1]])
    examples, report, [entry] = _run(path, tmp_path, max_record_bytes=100_000)
    assert [e.id for e in examples] == [sample_records[0]["id"], sample_records[1]["id"]]
    assert entry["category"] == "record_too_large" and entry["location"] == "line 2"
    assert "5000010 bytes" in entry["reason"] and len(entry["raw"]) < 100


def test_blank_lines_are_not_records(sample_records, write_jsonl, tmp_path):
    path = write_jsonl([sample_records[0], "", "   ", sample_records[1]])
    _, report, _ = _run(path, tmp_path)
    assert (report.read, report.accepted) == (2, 2)


def test_empty_file_fails_with_a_clear_message(write_jsonl, tmp_path):
    path = write_jsonl([])
    with pytest.raises(DataError, match="holds no records"):
        load_examples(JsonlSource(str(path)), tmp_path / "q.jsonl", 0.5, progress=False)


def test_rejected_fraction_over_limit_fails_after_writing_everything(sample_records, write_jsonl, tmp_path):
    path = write_jsonl([sample_records[0], "{", "[]", sample_records[1]])
    examples, report, entries = _run(path, tmp_path)
    assert report.rejected_fraction == 0.5 and len(entries) == 2
    check_report(report, 0.5)
    with pytest.raises(DataError, match=r"2 of 4 records \(50%\) were rejected.*quarantine"):
        check_report(report, 0.4)


def test_mixed_file_counts_always_add_up(sample_records, write_jsonl, tmp_path):
    lines = []
    for index, record in enumerate(sample_records[:40]):
        lines.append(record if index % 3 else BAD_CASES[index % len(BAD_CASES)][1](dict(record)))
    path = write_jsonl(lines)
    examples, report, entries = _run(path, tmp_path)
    assert report.read == 40 == report.accepted + report.rejected
    assert report.rejected == len(entries) == sum(report.by_reason.values())
    assert len(examples) == report.accepted
