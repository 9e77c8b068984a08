"""Property-based fuzzing (schemathesis) of the control API against its own OpenAPI schema: no 500s, no answer
outside its documented statuses and shapes. Run on a registry name with no versions, so a generated deploy
can never ship anything; jobs queue and nothing starts them. (Schemathesis's pytest plugin does not run under
the pinned pytest, so its strategies are driven by hypothesis directly.)"""

from __future__ import annotations

import json

import pytest

schemathesis = pytest.importorskip("schemathesis")

pytestmark = pytest.mark.slow
EXAMPLES = 12  # per operation


def fuzz(schema, headers: dict[str, str], examples: int = EXAMPLES) -> dict[str, int]:
    """Every operation of `schema`, `examples` generated requests each, checked by schemathesis's checks
    (no 5xx, documented status, response schema, content type); the case count per operation."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None, print_blob=True)
        @given(case=operation.as_strategy())
        def check(case):
            # a schema-valid request may still be refused for what only composition knows (an unknown key, a
            # version the registry lacks): a 4xx in the documented shape, which the other checks hold it to
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
            counts[case.operation.label] = counts.get(case.operation.label, 0) + 1

        check()
    return counts


def test_the_control_api_holds_to_its_schema(state_home, tmp_path):
    from rcatune.api.app import create_app
    from rcatune.config.api import ApiConfig
    from rcatune.processes import free_port

    app = create_app(ApiConfig(registry_name="rcatune-fuzz-empty", deployers={"local": [
        f"deployer.port={free_port()}"]}), run_jobs=False)
    token = app.state.tokens.create("fuzz", ("admin",))[1]
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    counts = fuzz(schema, {"Authorization": f"Bearer {token}"})
    assert len(counts) >= 18 and sum(counts.values()) >= 18 * 5
    (tmp_path / "cases.json").write_text(json.dumps(counts))
    print(f"control API fuzz: {sum(counts.values())} cases over {len(counts)} operations")


def test_the_model_server_holds_to_its_schema(state_home, tmp_path):
    from tests.test_serving import _serve

    base, stop = _serve()
    try:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        counts = fuzz(schema, {}, examples=40)
        # a streamed answer every time, not only when generation happens on one: each event against the schema
        stream = schema["/v1/chat/completions"]["POST"].Case(
            body={"messages": [{"role": "user", "content": "why is checkout slow?"}], "stream": True},
            media_type="application/json")
        assert stream.call_and_validate().headers["content-type"][0].startswith("text/event-stream")
    finally:
        stop()
    assert len(counts) >= 5
    (tmp_path / "cases.json").write_text(json.dumps(counts))
    print(f"model server fuzz: {sum(counts.values())} cases over {len(counts)} operations")
