"""Splits: deterministic, incident-grouped, stratified, with a clear minimum."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from rcatune.demo.generator import generate_sessions
from rcatune.errors import DataError
from rcatune.schema import TrainingExample
from rcatune.split import SPLITS, SplitSpec, incident_groups, split_examples


@pytest.fixture(scope="module")
def examples():
    return [TrainingExample.model_validate(r) for r in generate_sessions(400, seed=21)]


def test_split_is_deterministic_and_near_the_fractions(examples):
    a = split_examples(examples, SplitSpec())
    b = split_examples(examples, SplitSpec())
    assert a == b
    counts = a.counts()
    assert sum(counts.values()) == len(examples)
    kept = len(examples) - counts["shift"]
    assert abs(counts["train"] / kept - 0.7) < 0.05
    assert abs(counts["test"] / kept - 0.15) < 0.05
    assert split_examples(examples, SplitSpec(seed=99)) != a


def test_no_incident_straddles_splits(examples):
    splits = split_examples(examples, SplitSpec())
    seen = {}
    for name, members in splits.items():
        for example in members:
            assert seen.setdefault(example.incident_id, name) == name


def test_overlapping_sessions_on_a_shared_service_group_without_ids(examples):
    base = examples[0]
    twin = base.model_copy(update={"id": "twin", "incident_id": None,
                                   "time_range": (base.time_range[0] + timedelta(minutes=5),
                                                  base.time_range[1] + timedelta(minutes=5))})
    far = base.model_copy(update={"id": "far", "incident_id": None,
                                  "time_range": (base.time_range[0] + timedelta(days=30),
                                                 base.time_range[1] + timedelta(days=30))})
    groups = incident_groups([base, twin, far])
    assert sorted(map(sorted, groups)) == [[0, 1], [2]]


def test_every_scenario_reaches_every_split(examples):
    splits = split_examples(examples, SplitSpec())
    scenarios = Counter(e.scenario for e in examples)
    for name in SPLITS:
        assert {e.scenario for e in getattr(splits, name)} == set(scenarios), name


def test_the_held_out_phrasing_forms_the_shift_split_and_never_trains(examples):
    splits = split_examples(examples, SplitSpec())
    assert splits.shift and {e.phrasing for e in splits.shift} == {"d"}
    assert all(e.phrasing != "d" for name in SPLITS for e in getattr(splits, name))
    assert len(splits.shift) == sum(e.phrasing == "d" for e in examples)
    assert splits.groups["shift"] >= 1 and [name for name, _ in splits.items()] == [*SPLITS, "shift"]
    none = split_examples(examples, SplitSpec(shift_phrasing=None))
    assert not none.shift and [name for name, _ in none.items()] == list(SPLITS)
    unlabelled = [e.model_copy(update={"phrasing": None}) for e in examples]
    assert not split_examples(unlabelled, SplitSpec()).shift  # real exports have no phrasing labels


def test_an_incident_told_in_two_phrasings_is_refused(examples):
    shifted = next(e for e in examples if e.phrasing == "d")
    twin = shifted.model_copy(update={"id": "twin", "phrasing": "a"})
    with pytest.raises(DataError, match="would leak into training"):
        split_examples([*examples, twin], SplitSpec())


def test_min_examples_and_empty_split_are_clear_errors(examples):
    with pytest.raises(DataError, match="fewer than data.split.min_examples=20"):
        split_examples(examples[:5], SplitSpec())
    with pytest.raises(DataError, match="split is empty"):
        split_examples(examples[:2], SplitSpec(min_examples=1))


def test_small_data_still_fills_every_split_in_proportion():
    small = [TrainingExample.model_validate(r) for r in generate_sessions(50, seed=7)]
    counts = split_examples(small, SplitSpec(min_examples=10, shift_phrasing=None)).counts()
    assert counts["train"] in range(33, 38) and counts["val"] in range(5, 10) and counts["test"] in range(5, 10), counts
