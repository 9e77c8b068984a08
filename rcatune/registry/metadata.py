"""What a registered version records about itself: metrics, gate, lineage, base, method, data, commit, config."""

from __future__ import annotations

from typing import Any

from rcatune.artifacts import Evaluation, GateDecision, TrainedModel
from rcatune.lineage import TrainingData
from rcatune.schema import TrainingDataset
from rcatune.tracking import redact


def version_metadata(dataset: TrainingDataset, trained: TrainedModel, evaluation: Evaluation, decision: GateDecision,
                     facts: dict[str, Any]) -> dict[str, Any]:
    lineage = TrainingData.read(trained.model_dir)
    return {**evaluation.tuned.metrics, "evaluation_set": evaluation.headline.name,
            "training": trained.metrics, "gate_passed": decision.passed,
            "training_data": {"data_hash": lineage.data_hash, "examples": len(lineage.ids),
                              "file": str(trained.model_dir) + "/rcatune_training_data.json"} if lineage else {},
            "gate_checks": [c.model_dump(exclude_none=True) for c in decision.checks],
            "base_model": trained.base_model, "method": trained.method, "backend": trained.backend,
            "model_spec": trained.model_spec.model_dump(),
            "data_hash": dataset.metadata.get("data_hash", "unknown"),
            "git_commit": facts.get("git_commit") or "unknown", "config": redact(facts["config"])}
