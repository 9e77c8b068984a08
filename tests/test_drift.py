"""Drift (issue 30, section 2): a profile of the training sessions, and new sessions compared with it. A generated
shift (fault families the training data never had) must score past the threshold; new sessions of the trained
families must not."""

from __future__ import annotations

import json

import pytest

from rcatune.demo.generator import generate_sessions
from rcatune.drift import DriftProfile, compare, signature_key, write_report
from rcatune.schema import TrainingExample

HELD_OUT = {"emailMemoryLeak", "kafkaQueueProblems", "imageSlowLoad"}  # fault families training never sees


def _sessions(size: int, seed: int) -> list[TrainingExample]:
    return [TrainingExample.model_validate(r) for r in generate_sessions(size, seed=seed)]


@pytest.fixture(scope="module")
def profile():
    trained = [e for e in _sessions(240, seed=3) if e.scenario not in HELD_OUT]
    return DriftProfile.of(trained)


def test_signatures_match_across_incidents_once_what_varies_is_masked():
    assert signature_key('failed to get product #"OLJCESPC7Z"') == signature_key('failed to get product #"66VCHSJNUP"')
    assert signature_key("timeout after 5000 ms") == signature_key("Timeout after 300 ms")
    assert signature_key("cart: connection refused") != signature_key("payment: connection refused")


def test_a_fault_family_training_never_had_scores_past_the_threshold_and_the_trained_ones_do_not(profile, tmp_path):
    new = _sessions(160, seed=99)
    shifted = [e for e in new if e.scenario in HELD_OUT]
    familiar = [e for e in new if e.scenario not in HELD_OUT]
    assert len(shifted) >= 10 and len(familiar) >= 60
    drifted, steady = compare(profile, shifted), compare(profile, familiar)
    assert drifted.triggered and drifted.score > 0.5, drifted.lines()
    assert not steady.triggered and steady.score < 0.2, steady.lines()
    assert drifted.centroid_shift > steady.centroid_shift
    assert set(drifted.drifted_ids()) <= {e.id for e in shifted}
    assert drifted.shares["unseen_service"] > 0.5 and steady.shares["unseen_service"] == 0  # kafka, accounting, ...
    paths = write_report(drifted, profile, tmp_path)
    assert json.loads(open(paths["drift.json"]).read())["drifted"] == drifted.drifted
    assert "differ from the training data" in open(paths["drift.md"]).read()
    assert open(paths["drift.png"], "rb").read(4) == b"\x89PNG"


def test_the_profile_keeps_no_session_and_reloads_the_same(profile):
    again = DriftProfile.model_validate_json(profile.model_dump_json())
    assert again == profile and profile.distances["p50"] <= profile.distances["p99"] <= profile.distances["max"]
    text = profile.model_dump_json()
    assert "symptoms" not in text and len(profile.centroid) == 384
