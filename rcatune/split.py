"""Deterministic train/val/test split that keeps each incident in one split, plus the phrasing-shift split.

Two sessions belong to the same incident when they share an `incident_id`, or when their time
ranges overlap and they name a common affected service (the same outage diagnosed twice). Groups
are stratified by `scenario` where the data has one, so every split sees every kind of fault.

Sessions told in the held-out phrasing bank (`phrasing == shift_phrasing`, the generator's bank `d`)
never reach train, val or test: they form the `shift` split, so a model is also scored on wording it
never saw. Data without phrasing labels (real exports) has no shift split.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from pydantic import BaseModel, Field

from rcatune.errors import DataError
from rcatune.schema import TrainingExample

SPLITS = ("train", "val", "test")
SHIFT = "shift"


@dataclass(frozen=True)
class SplitSpec:
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 13
    min_examples: int = 20
    shift_phrasing: Optional[str] = "d"


class DatasetSplits(BaseModel):
    """The three splits, the phrasing-shift split, and how many incident groups each holds."""

    train: list[TrainingExample]
    val: list[TrainingExample]
    test: list[TrainingExample]
    shift: list[TrainingExample] = Field(default_factory=list)
    groups: dict[str, int]

    def items(self) -> list[tuple[str, list[TrainingExample]]]:
        """Every split that holds examples (the shift split only when there is one)."""
        names = SPLITS + ((SHIFT,) if self.shift else ())
        return [(name, getattr(self, name)) for name in names]

    def counts(self) -> dict[str, int]:
        return {name: len(examples) for name, examples in self.items()}


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def incident_groups(examples: list[TrainingExample]) -> list[list[int]]:
    """Indices of examples grouped by incident, in order of first appearance."""
    uf = _UnionFind(len(examples))
    by_incident: dict[str, int] = {}
    by_service: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        if example.incident_id:
            uf.union(index, by_incident.setdefault(example.incident_id, index))
        for service in set(example.affected_services):
            by_service[service].append(index)
    for members in by_service.values():  # sweep: overlapping windows on a shared service
        members.sort(key=lambda i: examples[i].time_range[0])
        reach_end, reach_index = None, None
        for index in members:
            start, end = examples[index].time_range
            if reach_end is not None and start < reach_end:
                uf.union(index, reach_index)
            if reach_end is None or end > reach_end:
                reach_end, reach_index = end, index
    groups: dict[int, list[int]] = defaultdict(list)
    for index in range(len(examples)):
        groups[uf.find(index)].append(index)
    return list(groups.values())


def split_examples(examples: list[TrainingExample], spec: SplitSpec) -> DatasetSplits:
    """Hold out the shift phrasing, then split the rest by incident group, stratified by scenario,
    deterministic for a seed."""
    shift = [e for e in examples if spec.shift_phrasing and e.phrasing == spec.shift_phrasing]
    if shift:
        held_incidents = {e.incident_id for e in shift if e.incident_id}
        examples = [e for e in examples if e.phrasing != spec.shift_phrasing]
        leaked = [e.id for e in examples if e.incident_id in held_incidents]
        if leaked:
            raise DataError(f"incidents told in the held-out phrasing {spec.shift_phrasing!r} also appear in "
                            f"other phrasings ({leaked[:3]}): the shift split would leak into training")
    if len(examples) < spec.min_examples:
        raise DataError(f"only {len(examples)} valid examples, fewer than data.split.min_examples="
                        f"{spec.min_examples}. Add data (data.size=... for the sample source) or lower the minimum.")
    groups = incident_groups(examples)
    strata: dict[str, list[list[int]]] = defaultdict(list)
    for group in groups:
        strata[examples[group[0]].scenario or ""].append(group)
    rng = random.Random(spec.seed)
    assigned: dict[str, list[int]] = {name: [] for name in SPLITS}
    # Systematic stratified allocation: strata (each shuffled) follow one another, and each group goes
    # to the split furthest below its global target so far. Totals match the fractions; every
    # stratum is spread over the splits in proportion, even when it holds only a few incidents.
    ordered: list[list[int]] = []
    for key in sorted(strata):
        rng.shuffle(strata[key])
        ordered.extend(strata[key])
    have, seen = [0, 0, 0], 0
    for group in ordered:
        seen += len(group)
        deficits = [spec.fractions[i] * seen - have[i] if spec.fractions[i] > 0 else float("-inf") for i in range(3)]
        choice = max(range(3), key=lambda i: (deficits[i], -i))
        have[choice] += len(group)
        assigned[SPLITS[choice]].extend(group)
    splits = {name: [examples[i] for i in sorted(idx)] for name, idx in assigned.items()}
    for name, fraction in zip(SPLITS, spec.fractions, strict=True):
        if fraction > 0 and not splits[name]:
            raise DataError(f"the {name} split is empty ({len(examples)} examples in {len(groups)} incidents, "
                            f"fractions {spec.fractions}). Add data or change data.split.")
    owner = {index: group[0] for group in groups for index in group}
    group_counts = {name: len({owner[i] for i in assigned[name]}) for name in SPLITS}
    if shift:
        group_counts[SHIFT] = len(incident_groups(shift))
    return DatasetSplits(**splits, shift=shift, groups=group_counts)

