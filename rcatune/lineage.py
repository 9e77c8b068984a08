"""What a model was trained on, kept beside it, so no one scores a model on its own training data by accident.

`rcatune_training_data.json` in every trained folder and export: the training data's hash, and the id
and prompt fingerprint of every training and validation example (a fingerprint catches the same
session under another id).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from pydantic import BaseModel

from rcatune.errors import RcatuneError
from rcatune.prompts import fingerprint
from rcatune.schema import TrainingExample, hash_examples

TRAINING_DATA_FILE = "rcatune_training_data.json"


class TrainingData(BaseModel):
    data_hash: str
    ids: list[str]
    fingerprints: list[str]

    @classmethod
    def of(cls, examples: list[TrainingExample]) -> "TrainingData":
        return cls(data_hash=hash_examples(examples), ids=[e.id for e in examples],
                   fingerprints=[fingerprint(e) for e in examples])

    def save(self, folder: Path | str) -> Path:
        path = Path(folder) / TRAINING_DATA_FILE
        path.write_text(self.model_dump_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, folder: Path | str) -> Optional["TrainingData"]:
        path = Path(folder) / TRAINING_DATA_FILE
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else None

    def overlap(self, examples: list[TrainingExample]) -> list[str]:
        """Ids of `examples` the model trained on (same id, or the same session under another id)."""
        ids, prints = set(self.ids), set(self.fingerprints)
        return [e.id for e in examples if e.id in ids or fingerprint(e) in prints]


class OverlapError(RcatuneError):
    """The evaluation data holds sessions the candidate trained on."""


def refuse_overlap(training: Optional[TrainingData], examples: list[TrainingExample], label: str,
                   allowed: bool) -> list[str]:
    """The overlapping ids; raise unless `allowed` (pipeline.allow_overlap=true)."""
    if training is None:
        return []
    shared = training.overlap(examples)
    if shared and not allowed:
        raise OverlapError(
            f"{len(shared)} of the {len(examples)} evaluation sessions were in {label}'s training data (e.g. "
            f"{', '.join(shared[:3])}): a score on them says nothing about new incidents. Evaluate on other data, "
            "or force it with pipeline.allow_overlap=true (the summary records the overlap)")
    return shared
