"""The sample generator: grounded in the demo, told in phrasing banks, partially observed, deterministic,
with queries that run for real."""

from __future__ import annotations

import re
from collections import Counter

import sqlglot

from rcatune.demo.faults import BANKS, FAULTS, NOISE, NONE, OUTSIDE, SHIFT_BANK, UNKNOWN_LEAD
from rcatune.demo.generator import call_graph, demo_facts, generate_sessions
from rcatune.schema import TrainingExample

INPUT_FIELDS = ("symptoms", "affected_services", "telemetry_context", "service_topology")


def _shape(text: str) -> str:
    """A symptom with its figures (or a template with its placeholders) blanked out."""
    return re.sub(r"\d+(\.\d+)?", "#", re.sub(r"\{\w+\}", "#", text))


def test_deterministic_by_seed_and_prefix_stable():
    assert list(generate_sessions(40, seed=5)) == list(generate_sessions(40, seed=5))
    assert list(generate_sessions(40, seed=5))[:10] == list(generate_sessions(10, seed=5))
    assert list(generate_sessions(10, seed=5)) != list(generate_sessions(10, seed=6))


def test_every_fault_is_a_flag_of_the_demo_and_appears_with_some_outside_the_catalog():
    flags = {flag["name"] for flag in demo_facts()["feature_flags"]}
    services = set(call_graph())
    for fault in FAULTS:
        assert fault.id in flags
        for path in fault.paths:
            assert all(hop in services or hop in {"kafka", "valkey-cart", "astronomy-db", "frontend-web"}
                       for hop in path), path
        assert set(fault.root_causes) == set(fault.remediation) == set(BANKS)
        assert all(set(signal.says) == set(BANKS) for signal in fault.signals)
    records = list(generate_sessions(400, seed=1))
    seen = Counter(r["scenario"] for r in records)
    assert set(seen) == {f.id for f in FAULTS} | {NONE}
    outside = [r for r in records if r["scenario"] == NONE]
    assert outside and all(UNKNOWN_LEAD in r["root_cause"] for r in outside)
    assert all(not f.in_catalog for f in OUTSIDE)


def test_each_bank_is_used_and_a_fault_is_told_differently_in_each():
    records = list(generate_sessions(600, seed=2))
    assert set(Counter(r["phrasing"] for r in records)) == set(BANKS)
    payment = [r for r in records if r["scenario"] == "paymentFailure"]
    by_bank = {bank: {s for r in payment if r["phrasing"] == bank for s in r["symptoms"]} for bank in BANKS}
    for bank in BANKS:
        others = set().union(*(by_bank[b] for b in BANKS if b != bank))
        assert by_bank[bank] - others, f"bank {bank} has wording of its own"
    layouts = {bank: {tuple(sorted(r["telemetry_context"])) for r in records if r["phrasing"] == bank}
               for bank in BANKS}
    keys = {bank: set().union(*map(set, layouts[bank])) for bank in BANKS}
    trained = set().union(*(keys[b] for b in BANKS if b != SHIFT_BANK))
    assert len(keys[SHIFT_BANK] & trained) <= 1, "the held-out bank's layout is its own"
    assert all(len(layouts[b]) >= 6 for b in BANKS if b != SHIFT_BANK), "training layouts vary within a bank"
    d_wording = {s for r in records if r["phrasing"] == SHIFT_BANK for s in r["symptoms"]}
    mixed = [r for r in records if r["phrasing"] != SHIFT_BANK and set(r["symptoms"]) & d_wording]
    assert not mixed, "training sessions never borrow the held-out bank's wording"


def test_sessions_show_part_of_a_fault_with_noise_and_red_herrings():
    records = list(generate_sessions(400, seed=3))
    payment = [r for r in records if r["scenario"] == "paymentFailure"]
    assert len({tuple(r["symptoms"]) for r in payment}) == len(payment)
    assert any(not r["error_signatures"] for r in payment) and any(r["error_signatures"] for r in payment)
    telling = {_shape(t) for f in FAULTS for s in f.signals if s.telling for ts in s.says.values() for t in ts}
    untold = [r for r in records if r["scenario"] != NONE and not {_shape(s) for s in r["symptoms"]} & telling]
    assert untold, "some sessions lack every telling signal of their fault"
    herring_words = ("favicon", "normal daily range", "unchanged", "routine", "cache hit ratio")
    assert any(any(w in s for w in herring_words for s in r["symptoms"]) for r in records)
    assert 0.4 < sum(r["human_validated"] for r in records) / len(records) < 0.8
    incidents = Counter(r["incident_id"] for r in records)
    assert any(count > 1 for count in incidents.values()), "some incidents are diagnosed twice"
    by_incident = {}
    for r in records:
        by_incident.setdefault(r["incident_id"], set()).add(r["phrasing"])
    assert all(len(banks) == 1 for banks in by_incident.values()), "a repeated incident keeps its bank"


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


def test_some_sessions_show_a_sliver_and_training_lines_are_sometimes_clipped():
    records = list(generate_sessions(600, seed=8))
    faults = [r for r in records if r["scenario"] != NONE]
    sliver = [r for r in faults if len(r["symptoms"]) <= 3 and len(r["error_signatures"]) <= 1]
    assert 0.45 < len(sliver) / len(faults) < 0.8, "a good share are as short as a quick ticket"
    dummy = dict.fromkeys(("v", "pct", "ratio", "secs", "ms", "n"), "1")
    whole = {_shape(body.format(**dummy)) for f in FAULTS + OUTSIDE for _s, _sev, body in f.logs}
    wording = {_shape(t) for f in FAULTS + OUTSIDE for s in f.signals for ts in s.says.values() for t in ts}
    wording |= {_shape(t) for bank in NOISE.values() for _s, t in bank}
    for held_out in (True, False):
        sessions = [r for r in records if (r["phrasing"] == SHIFT_BANK) == held_out]
        clipped = [s for r in sessions for s in r["error_signatures"] if _shape(s) not in whole]
        clipped += [s for r in sessions for s in r["symptoms"] if _shape(s) not in wording]
        if held_out:
            assert not clipped, "the held-out bank is told whole"
        else:
            assert len(clipped) > 50, "training sessions sometimes carry part of a line"
    for r in records:  # a pasted signature, clipped or not, is part of a log line the telemetry carries whole
        lines = "\n".join(_strings(r["telemetry_context"]))
        assert all(signature in lines for signature in r["error_signatures"]), r["id"]


def test_some_sessions_are_bare_tickets_and_some_paste_what_people_saw_into_the_telemetry():
    from rcatune.demo.generator import PASTED_KEYS

    records = list(generate_sessions(600, seed=8))
    training = [r for r in records if r["phrasing"] != SHIFT_BANK]
    bare = {"environment", "window", "source", *PASTED_KEYS}
    tickets = [r for r in training if set(r["telemetry_context"]) <= bare and not r["error_signatures"]]
    assert 0.1 < len(tickets) / len(training) < 0.3, "a share tell the fault by their symptoms alone"
    pasted = [r for r in training if set(r["telemetry_context"]) & set(PASTED_KEYS)]
    assert 0.25 < len(pasted) / len(training) < 0.45
    wording = {_shape(t) for f in FAULTS + OUTSIDE for sig in f.signals for ts in sig.says.values() for t in ts}
    wording |= {_shape(t) for bank in NOISE.values() for _s, t in bank}
    for r in pasted:
        [key] = set(r["telemetry_context"]) & set(PASTED_KEYS)
        value = r["telemetry_context"][key]
        lines = value if isinstance(value, list) else value.split("; ")
        assert r["symptoms"] and all(line.strip() for line in lines)
        if r["symptoms"] != lines:  # what was pasted left the symptoms (the only one stays in both)
            assert not set(lines) & set(r["symptoms"]), r["id"]
        assert any(_shape(line) in wording for line in lines) or all(len(line.split()) < 12 for line in lines)
    held_out = [r for r in records if r["phrasing"] == SHIFT_BANK]
    assert held_out and not any(set(r["telemetry_context"]) & set(PASTED_KEYS) for r in held_out)
    assert all(r["telemetry_context"].get("per_service") for r in held_out), "the held-out bank keeps its layout"


def test_a_flag_name_appears_in_the_input_only_where_the_real_system_writes_it():
    written = {body for f in FAULTS for _s, _sev, body in f.logs}
    for record in generate_sessions(300, seed=4):
        if record["scenario"] == NONE:
            continue
        visible = " ".join(str(record[field]) for field in INPUT_FIELDS)
        for name in (f.id for f in FAULTS):
            if name in visible:
                assert any(name in body for body in written), (name, record["id"])
                bodies = [b for b in written if name in b]
                remainder = visible
                for body in bodies:
                    remainder = remainder.replace(body.format(v="25"), "").replace(body.format(v="50"), "")
                    remainder = remainder.replace(body, "")
                assert name not in remainder, (name, record["id"])


def test_the_root_cause_names_the_fault_and_its_component():
    for record in generate_sessions(200, seed=3):
        if record["scenario"] == NONE:
            continue
        fault = next(f for f in FAULTS if f.id == record["scenario"])
        assert fault.id in record["root_cause"]


def test_the_shift_bank_is_held_out_by_default():
    assert SHIFT_BANK not in ("a", "b", "c") and SHIFT_BANK in BANKS


def test_diagnostic_queries_parse_and_run_on_the_otel_exporter_tables(tmp_path):
    from chdb import session as chdb_session

    from rcatune.telemetry import create_otel_tables, insert_spans, synthetic_spans

    sess = chdb_session.Session(str(tmp_path / "db"))
    create_otel_tables(sess)
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(60, seed=4)]
    for example in examples:
        insert_spans(sess, synthetic_spans(example))
    kinds = Counter()
    for example in examples:
        sqlglot.parse_one(example.diagnostic_query, read="clickhouse")
        sess.query(example.diagnostic_query, "JSONEachRow")  # raises on invalid SQL or unknown columns
        kinds[example.diagnostic_query.split("FROM ")[1].split()[0]] += 1
    errors = sess.query("SELECT countIf(StatusCode = 'Error') FROM otel.otel_traces", "CSV").bytes().strip()
    sess.close()
    assert int(errors) > 0
    assert {"otel_traces", "otel_logs"} <= set(kinds)


def _lookup_accuracy(records: list[dict], field: str) -> float:
    """How often the fault most often seen with a field's value (learned on the first half) is the fault of a
    session in the second half: what a model gets by reading the fault off that field alone."""
    def key(record: dict) -> str:
        value = record[field]
        return repr(sorted(value) if isinstance(value, list) else sorted(value.items()))

    half = len(records) // 2
    seen: dict[str, Counter] = {}
    for record in records[:half]:
        seen.setdefault(key(record), Counter())[record["scenario"]] += 1
    hits = [key(r) in seen and seen[key(r)].most_common(1)[0][0] == r["scenario"] for r in records[half:]]
    return sum(hits) / len(hits)


def test_no_field_outside_the_evidence_is_a_lookup_key_for_the_fault():
    """A fixed topology or service list per fault let the model read the fault off them rather than off the
    errors (shift accuracy fell from 24 to 7 of 28 when the topology was swapped for the whole graph)."""
    records = list(generate_sessions(1400, seed=7))
    assert _lookup_accuracy(records, "service_topology") < 0.2
    # the services do narrow it (each fault has its own): 0.49-0.53 over seeds 7-10, 0.76 when they were fixed
    assert _lookup_accuracy(records, "affected_services") < 0.56
    payment = [r for r in records if r["scenario"] == "paymentFailure"]
    assert len({repr(sorted(r["service_topology"].items())) for r in payment}) >= 10
    assert any(r["service_topology"] == {} for r in payment)
    assert any(set(r["affected_services"]) - {"payment", "checkout", "frontend", "frontend-proxy"} for r in payment)
