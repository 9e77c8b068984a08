"""Scrubbing: a seeded corpus of planted secrets and personal data in every field, and near-misses that
must survive (trace and span ids, service names, SQL literals, the demo's public identifiers)."""

from __future__ import annotations

import json
import random

import pytest

from rcatune.config.scrub import ScrubConfig
from rcatune.demo.generator import generate_sessions
from rcatune.schema import TrainingExample
from rcatune.scrub import Scrubber, scrub_examples

# kind -> values (each planted once, in a different place); every value is unique in the corpus.
PLANTED = {
    "email": ["jane.doe@example.com", "ops-oncall+pager@corp.example.org", "m.rossi@contoso.it"],
    "ipv4": ["203.0.113.42", "198.51.100.7", "10.12.4.211"],
    "ipv6": ["2001:0db8:85a3:0000:0000:8a2e:0370:7334"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "phone": ["+1 415-555-0132", "(415) 555-0199", "+442071838750"],
    "ssn": ["078-05-1120"],
    "jwt": ["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"],
    "aws_key": ["AKIAIOSFODNN7EXAMPLE"],
    "aws_secret": ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
    "github_token": ["ghp_R2d2C3poBb8Lu4keSkyw4lkerHanSolo1977"],
    "slack_token": ["xoxb-2048-4096-aBcDeFgHiJkLmNoPqRsTuVwX"],
    "stripe_key": ["sk_live_51HqLyjWDarjtT1zdp7dcXyZ"],
    "bearer": ["mF_9.B5f-4.1JqM2x7Lr0Z8"],
    "db_password": ["Pa55w0rd!Q9x"],
    "password": ["Tr0ub4dor&3horse"],
    "url_token": ["9c1f0a7b3e5d4c2a8b6f"],
    "api_key_attr": ["k-77a1c2e9f04b4d6e"],
    "cookie": ["sessionid=5f2c9a1e7b3d"],
    "user_id": ["u-8293410", "cust_5521907"],
    "private_key": ["-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq3Xh2P9l0\n-----END RSA PRIVATE KEY-----"],
}

NEAR_MISSES = ["4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "checkout", "product-catalog",
               "oteldemo.CheckoutService/PlaceOrder", "OLJCESPC7Z", "paymentFailure", "2026-03-02 01:36:00",
               "p95 0.1s", "HTTP 503", "v1.12.0", "0f8fad5b-d9cb-469f-a165-70867728950e", "1709343360000000000",
               "'Error'", "port 8080", "retry 3 of 5", "4.5 ms", "127.0.0.1"]


def _plant(seed: int = 0) -> tuple[list[TrainingExample], list[str], list[str]]:
    """20 generated sessions with every planted value somewhere (logs, attributes, events, metric labels,
    symptoms, signatures, query, remediation, corrections, notes) and every near-miss beside them."""
    rng = random.Random(seed)
    records = list(generate_sessions(20, seed=11))
    v = {kind: list(values) for kind, values in PLANTED.items()}
    t = records[0]["telemetry_context"]
    t["recent_logs"] = [f"ERROR checkout: login failed for {v['email'][0]} from {v['ipv4'][0]}",
                        f"WARN payment: charge declined for card {v['card'][0]} (trace_id={NEAR_MISSES[0]})",
                        f"INFO frontend: connecting to postgres://app:{v['db_password'][0]}@db:5432/orders"]
    t["resource"] = {"service.name": "checkout", "host.ip": v["ipv4"][1], "k8s.pod.uid": NEAR_MISSES[11]}
    records[1]["telemetry_context"]["spans"] = [{
        "ServiceName": "frontend", "SpanName": "GET /api/cart", "TraceId": NEAR_MISSES[0], "SpanId": NEAR_MISSES[1],
        "SpanAttributes": {"http.url": f"https://shop.example.com/api/cart?access_token={v['url_token'][0]}&page=2",
                           "http.request.header.authorization": f"Bearer {v['bearer'][0]}",
                           "http.request.header.cookie": v["cookie"][0], "enduser.id": v["user_id"][0],
                           "net.peer.ip": v["ipv6"][0], "http.status_code": 503},
        "Events": [{"Name": "exception", "Attributes": {
            "exception.message": f"auth failed: token {v['jwt'][0]}"}}]}]
    records[2]["telemetry_context"]["metrics"] = [{"MetricName": "app.login.failures", "Value": 12,
                                                   "Attributes": {"user.email": v["email"][1], "region": "eu-west-1",
                                                                  "api_key": v["api_key_attr"][0]}}]
    records[3]["symptoms"].append(f"Customer {v['phone'][0]} reports a double charge; SSN {v['ssn'][0]} on file.")
    records[4]["error_signatures"].append(f"InvalidClientTokenId: {v['aws_key'][0]} (HTTP 503, {NEAR_MISSES[8]})")
    records[5]["diagnostic_query"] = ("SELECT count() AS failures FROM otel_logs\n"
                                      f"WHERE LogAttributes['user.email'] = '{v['email'][2]}'\n"
                                      f"  AND LogAttributes['client.address'] = '{v['ipv4'][2]}'\n"
                                      "  AND SeverityText = 'Error'")
    records[6]["remediation_steps"].append(
        f"Rotate the leaked key aws_secret_access_key={v['aws_secret'][0]} and the GitHub token {v['github_token'][0]}")
    records[7]["corrections"] = {"root_cause": f"The Slack webhook token {v['slack_token'][0]} expired",
                                 "expert_notes": f"call {v['phone'][1]} (the owner) before retrying"}
    records[8]["expert_notes"] = (f"Stripe key {v['stripe_key'][0]} was in the config; password: {v['password'][0]}; "
                                  f"card {v['card'][1]}, user_id={v['user_id'][1]}")
    records[9]["false_hypotheses"] = [f"Thought {v['card'][2]} was a test card", f"call {v['phone'][2]}"]
    records[10]["telemetry_context"]["recent_logs"] = [f"ERROR ad: loaded key {v['private_key'][0]}"]
    records[11]["telemetry_context"]["notes"] = " ".join(
        ["trace", NEAR_MISSES[0], "span", NEAR_MISSES[1], "product", NEAR_MISSES[5], "flag", NEAR_MISSES[6],
         NEAR_MISSES[7], NEAR_MISSES[9], NEAR_MISSES[10], "order", NEAR_MISSES[11], "ts", NEAR_MISSES[12],
         NEAR_MISSES[14], NEAR_MISSES[15], NEAR_MISSES[16], "collector at", NEAR_MISSES[17]])
    rng.shuffle(records)
    planted = [value for values in PLANTED.values() for value in values]
    return [TrainingExample.model_validate(r) for r in records], planted, NEAR_MISSES


def _dump(examples: list[TrainingExample]) -> str:
    """The records as text, with each string unescaped, so a planted value with a newline is found."""
    return "\n".join(json.dumps(e.model_dump(mode="json")).encode().decode("unicode_escape") for e in examples)


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("RCATUNE_SCRUB_KEY", "a-test-key")


def test_planted_corpus_nothing_left_near_misses_survive(key):
    examples, planted, near = _plant()
    before = _dump(examples)
    assert all(value in before for value in planted + near)  # the corpus holds what it claims
    scrubbed, report = scrub_examples(examples, ScrubConfig())
    after = _dump(scrubbed)
    left = [value for value in planted if value in after]
    # A planted value may leave a fragment of itself (the user part of a URL): check the secret part too.
    fragments = [part for value in planted for part in value.split()
                 if len(part) > 6 and any(c.isdigit() for c in part) and part in after]
    false_positives = [value for value in near if value not in after]
    print(f"\nscrub corpus: planted {len(planted)} values of {len(PLANTED)} kinds, found "
          f"{len(planted) - len(left)}, left {len(left)}, false positives {len(false_positives)} of {len(near)} "
          f"near-misses; by type {report.by_type}; by detector {report.by_detector}")
    assert not left, left
    assert not fragments, fragments
    assert not false_positives, false_positives
    assert report.records_changed == 11 and report.replaced >= len(planted)  # record 11 holds near-misses only


def test_same_value_same_placeholder_across_the_dataset_and_keyed(key, monkeypatch):
    scrubber = Scrubber(key=b"k1")
    first = scrubber.text("login failed for jane.doe@example.com", "symptoms")
    second = scrubber.text("jane.doe@example.com retried", "expert_notes")
    placeholder = scrubber.placeholder("EMAIL", "jane.doe@example.com")
    assert placeholder in first and placeholder in second
    assert Scrubber(key=b"k2").placeholder("EMAIL", "jane.doe@example.com") != placeholder  # keyed, not a bare hash
    assert scrubber.text(first, "symptoms") == first  # scrubbing twice changes nothing


def test_placeholders_keep_sql_parseable_and_running(key, tmp_path):
    from rcatune.evaluation.scoring import QueryChecker

    examples, _, _ = _plant()
    scrubbed, _ = scrub_examples(examples, ScrubConfig())
    checker = QueryChecker(str(tmp_path / "chdb"))
    try:
        before = [checker.runs(e.diagnostic_query) for e in examples]
        after = [checker.runs(e.diagnostic_query) for e in scrubbed]
    finally:
        checker.close()
    assert after == before and sum(after) >= 18  # query validity does not drop because of scrubbing
    planted = next(e for e in scrubbed if "otel_logs\nWHERE LogAttributes['user.email']" in e.diagnostic_query)
    assert "@" not in planted.diagnostic_query and "EMAIL_" in planted.diagnostic_query


def test_allow_and_deny_lists(key):
    scrubber = Scrubber(key=b"k", allow=frozenset({"10.0.0.5"}), deny=("acme-corp",))
    out = scrubber.text("acme-corp saw 10.0.0.5 and 10.0.0.6 fail", "symptoms")
    assert "acme-corp" not in out and "10.0.0.5" in out and "10.0.0.6" not in out
    assert scrubber.by_type == {"DENIED": 1, "IPV4": 1}


def test_a_key_named_email_is_an_address_only_when_it_holds_one(key):
    """The demo's `email` service names telemetry keys too: its figures stay, an address under it does not,
    and a key that names a person (`customer_email`) is scrubbed whatever it holds."""
    scrubber = Scrubber(key=b"k")
    telemetry = {"saturation": {"email": "71%", "cart": "12%"}, "error_rate": {"email": 0.4},
                 "email": "jane.doe@example.com", "user.email": "ops@corp.example.org", "user.id": 4711,
                 "customer_email": "jdoe"}  # a person's key holds a person, address or not
    scrubbed = scrubber.value(telemetry, "telemetry_context", frozenset())
    assert scrubbed["saturation"] == {"email": "71%", "cart": "12%"} and scrubbed["error_rate"] == {"email": 0.4}
    people = ("email", "user.email", "user.id", "customer_email")
    assert [scrubbed[k].split("_")[0] for k in people] == ["USER"] * 4
    assert "example" not in str(scrubbed) and "4711" not in str(scrubbed) and "jdoe" not in str(scrubbed)


def test_report_counts_never_values_and_none_says_so(key):
    examples, planted, _ = _plant()
    _, report = scrub_examples(examples, ScrubConfig())
    text = report.model_dump_json()
    assert not [value for value in planted if value in text]
    assert report.by_field.get("telemetry_context.spans[].SpanAttributes.enduser.id") == 1
    assert report.key_source == "env"
    same, off = scrub_examples(examples, ScrubConfig(enabled=False))
    assert same == examples and not off.enabled and "OFF" in off.lines()[0]


def test_generated_sessions_lose_nothing(key):
    """The built-in generator writes no personal data: any replacement in it is a false positive."""
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(300, seed=5)]
    scrubbed, report = scrub_examples(examples, ScrubConfig())
    assert report.replaced == 0, report.by_field
    assert scrubbed == examples


def test_the_run_summary_says_what_scrubbing_did(key):
    from rcatune.report import summary_lines
    from rcatune.runinfo import RunSummary

    examples, _, _ = _plant()
    for config, expected in ((ScrubConfig(), "values replaced in 11 of 20 records"),
                             (ScrubConfig(enabled=False), "OFF")):
        _, report = scrub_examples(examples, config)
        summary = RunSummary(pipeline="prepare", run_dir="r", scrub=report.model_dump())
        assert any(line.startswith("  scrub") and expected in line for line in summary_lines(summary))


# Credentials that stand alone in prose (issue 24): after an ordinary word, in a symptom, a log body, a note; no
# key word or `=` before them. Written apart from PLANTED, with shapes of real vendors' keys and of generic ones.
STANDALONE = {
    "aws secret after 'connection'": "connection wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE2KEY refused by the proxy",
    "generic 32-char key": "retried the upload with 7fG2kLq9ZxW4pR8sT1vB6nM3cD5hJ0yA and it worked",
    "base64 blob": "the sidecar logged dGhpc2lzYTJzZWNyZXR2YWx1ZWZvcnRlc3RpbmcxMg== before exiting",
    "azure-like key": "storage answered 403 for Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"
                      "/K1SZFPTOtr/KBHBeksoGMGw== at 14:02",
    "mixed 24 chars": "rotated to Xk9pL2mQ8rT5vW3zY7bN4cJ6 after the incident",
    "lower and digits 28": "webhook signed with k3j9x2m8q7w4z1p6r5t0y8u2i4o9 was rejected",
    "upper and digits 26": "license 7K3J9X2M8Q7W4Z1P6R5T0Y8U2I was revoked overnight",
    "password in prose": "the on-call said the password is Hunter2!xyz for the staging box",
    "secret in prose": "client secret 9f8E7d6C5b4A39281706f5e4 leaked in a screenshot",
    "token in prose": "used token Zq7-Lm2.Rt9_Xw4 from the vault",
    "openai-style key": "calls fail with sk-proj-Ab3Cd4Ef5Gh6Ij7Kl8Mn9Op0Qr1St2Uv in the header",
    "url-safe token": "cache key V2hhdC1pcy10aGlzLTEyMy1hYmMtWFla_q1 was evicted",
}


def test_a_credential_standing_alone_in_free_text_is_replaced_wherever_it_stands(key):
    records = list(generate_sessions(len(STANDALONE), seed=21))
    for record, text in zip(records, STANDALONE.values(), strict=True):
        record["symptoms"].append(text)
    records[0]["telemetry_context"]["recent_logs"] = [f"WARN proxy: {STANDALONE['mixed 24 chars']}"]
    records[1]["expert_notes"] = STANDALONE["generic 32-char key"]
    examples = [TrainingExample.model_validate(r) for r in records]
    scrubbed, report = scrub_examples(examples, ScrubConfig())
    after = _dump(scrubbed)
    secrets = {name: max(text.split(" "), key=len) for name, text in STANDALONE.items()}
    assert not [name for name, value in secrets.items() if value in after]
    assert "refused by the proxy" in after and "was revoked overnight" in after  # only the value goes
    assert report.by_type.get("SECRET", 0) >= len(STANDALONE)


def test_shape_detection_keeps_what_telemetry_is_full_of(key):
    """Trace and span ids, hashes, UUIDs, pod names, identifiers, paths, product ids and prose about tokens
    survive; on 8,000 generated sessions (4 seeds) and the 124 hand-written ones nothing at all is replaced."""
    keep = ["trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
            "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "request 0f8fad5b-d9cb-469f-a165-70867728950e", "pod checkoutservice-5d8f7b9c6d-x2v4p restarted",
            "handler getCartItemsByUserId2024Handler threw", "path /var/lib/otelcol/file_storage/receiver_otlp",
            "products OLJCESPC7Z 66VCHSJNUP 1YMWWN1N4O", "invalid token error.", "token expired after 3600 s",
            "the secret rotation job ran", "oteldemo.CheckoutService/PlaceOrder returned UNAVAILABLE",
            "span kind SPAN_KIND_SERVER", "image ghcr.io/open-telemetry/demo:2.0.2-checkoutservice",
            "flag paymentServiceFailure on", "ts 1709343360000000000"]
    record = next(iter(generate_sessions(1, seed=3)))
    record["symptoms"] = keep
    [scrubbed], report = scrub_examples([TrainingExample.model_validate(record)], ScrubConfig())
    assert scrubbed.symptoms == keep, report.by_detector
    for seed in (1, 2, 3, 11):
        _, report = scrub_examples([TrainingExample.model_validate(r) for r in generate_sessions(2000, seed=seed)],
                                   ScrubConfig())
        assert report.replaced == 0, (seed, report.by_detector)
    from tests.conftest import ROOT

    written = [TrainingExample.model_validate(json.loads(line)) for path in (ROOT / "tests" / "data").glob(
        "*_sessions.jsonl") for line in path.read_text().splitlines() if line.strip()]
    _, report = scrub_examples(written, ScrubConfig())
    assert set(report.by_type) <= {"IPV4"}, report.by_detector  # one real resolver address in set 4


@pytest.mark.slow
def test_standalone_credentials_reach_no_exported_format(tmp_path):
    """Through `pipeline=prepare` from a JSONL file: none of the values reaches the HF dataset, the CSV, the
    OpenAI JSONL or any other file of the run."""
    from tests.conftest import run_py

    records = list(generate_sessions(40, seed=22))
    for record, text in zip(records, STANDALONE.values(), strict=False):
        record["symptoms"].append(text)
    data = tmp_path / "in" / "sessions.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    run_dir = tmp_path / "run"
    run_py("pipeline=prepare", "data=jsonl", f"data.path={data}", "data.split.min_examples=5", "progress=false",
           f"hydra.run.dir={run_dir}")
    values = [max(text.split(" "), key=len) for text in STANDALONE.values()]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files) and any(p.name == "train.jsonl" for p in files)
    assert any(p.suffix == ".arrow" for p in files)
    leaked = [(value, str(p)) for p in files for value in values if value.encode() in p.read_bytes()]
    assert not leaked


def test_a_source_is_scrubbed_as_it_is_validated(key, tmp_path):
    """`load_source` scrubs each session as validation accepts it (never holding the unscrubbed dataset): the
    same sessions and report as scrubbing the validated list, with the rejected record quarantined."""
    from rcatune.config.data import JsonlDataConfig
    from rcatune.validation import load_source

    examples, planted, _ = _plant()
    path = tmp_path / "sessions.jsonl"
    path.write_text("".join(json.dumps(e.to_json_dict()) + "\n" for e in examples) + '{"id": "broken"}\n')
    dataset, report = load_source(JsonlDataConfig(path=str(path), max_rejected_fraction=0.5), tmp_path / "out",
                                  progress=False, scrub=ScrubConfig())
    expected, scrubbed = scrub_examples(examples, ScrubConfig())
    assert dataset.examples == expected and not [value for value in planted if value in _dump(dataset.examples)]
    assert (report.read, report.accepted, report.rejected) == (21, 20, 1)
    assert report.scrub == scrubbed and report.scrub.records == 20
    assert json.loads((tmp_path / "out" / "validation_report.json").read_text())["scrub"]["records_changed"] == 11
