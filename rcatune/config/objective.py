"""`objective=`: what training optimises, apart from which weights train (`method=`) and with what backend
(`trainer=`). `sft` (supervised fine-tuning on the answer tokens) is the one objective today; a preference
objective (DPO, KTO from the experts' verdicts) is one more schema here and one more class in
`rcatune.training.objectives`, not a rewrite."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class ObjectiveConfig:
    _target_: str = MISSING
    name: str = MISSING
    stage: str = MISSING  # LLaMA-Factory's name for it (its `stage:`)


@dataclass
class SftObjectiveConfig(ObjectiveConfig):
    _target_: str = "rcatune.training.objectives.Sft"
    name: str = "sft"
    stage: str = "sft"


SCHEMAS = {"sft": SftObjectiveConfig}
