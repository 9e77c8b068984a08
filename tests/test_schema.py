"""The record schema: JSON form, and the published JSON Schema stays in step with the code."""

from __future__ import annotations

import json
from pathlib import Path

from rcatune.demo.generator import generate_sessions
from rcatune.schema import TrainingDataset, TrainingExample, json_schema

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_json_form_round_trips_and_uses_the_documented_shapes():
    record = next(generate_sessions(1, seed=1))
    example = TrainingExample.model_validate(record)
    data = example.to_json_dict()
    assert TrainingExample.model_validate(data) == example
    assert isinstance(data["timestamp"], str) and data["timestamp"].endswith("+00:00")
    assert isinstance(data["time_range"], list) and len(data["time_range"]) == 2
    assert all(isinstance(path, list) for path in data["critical_paths"])
    original_design_fields = [
        "id", "timestamp", "telemetry_context", "service_topology", "time_range", "symptoms", "affected_services",
        "error_signatures", "root_cause", "diagnostic_query", "critical_paths", "remediation_steps",
        "human_validated", "confidence_score", "corrections", "expert_notes", "time_to_identification",
        "human_prompts_required", "false_hypotheses"]
    assert list(TrainingExample.model_fields)[: len(original_design_fields)] == original_design_fields


def test_naive_timestamps_are_utc():
    record = dict(next(generate_sessions(1, seed=1)), timestamp="2026-01-02T03:04:05")
    assert TrainingExample.model_validate(record).timestamp.tzinfo is not None


def test_dataset_jsonl_and_hash():
    examples = [TrainingExample.model_validate(r) for r in generate_sessions(5, seed=1)]
    dataset = TrainingDataset(examples=examples)
    lines = dataset.to_jsonl().splitlines()
    assert [TrainingExample.model_validate(json.loads(line)) for line in lines] == examples
    assert dataset.content_hash() == TrainingDataset(examples=list(examples)).content_hash()
    assert dataset.content_hash() != TrainingDataset(examples=examples[:4]).content_hash()


def test_published_json_schema_matches_the_code():
    published = json.loads((DOCS / "training_example.schema.json").read_text())
    assert published == json_schema(), "run: python -m rcatune.schema > docs/training_example.schema.json"
