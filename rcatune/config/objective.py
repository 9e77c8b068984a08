"""`objective=`: what training optimises, apart from which weights train (`method=`) and with what backend
(`trainer=`). `sft`: supervised fine-tuning on the answer tokens (the default). `dpo`: direct preference
optimisation on pairs from the experts' corrections and the sessions' ruled-out hypotheses
(`rcatune.preferences`); `kto`: the same answers labelled good or bad one by one. Both start from a registered
SFT version: that version is the run's base model, so the evaluation's base-vs-tuned comparison is SFT alone
against SFT + preferences on the same incidents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from rcatune.config._require import require


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


@dataclass
class PreferenceObjectiveConfig(ObjectiveConfig):
    """What DPO and KTO share: where they start, how far they may move, which rejected answers they learn from."""

    # the registered SFT version to start from (a number, or production, staging, latest), of model_registry_name
    start_from: str = "production"
    # set by the run from start_from: that version's merged export (full weights, adapter folded in)
    start_dir: Optional[str] = None
    beta: float = 0.1  # how far from the SFT model the preferences may pull it (TRL's beta, LLaMA-Factory's pref_beta)
    sources: List[str] = field(default_factory=lambda: ["review", "false_hypothesis"])  # which rejected answers

    def __post_init__(self) -> None:
        require(self.beta > 0, "objective.beta", "must be positive")
        unknown = sorted(set(self.sources) - {"review", "false_hypothesis"})
        require(bool(self.sources) and not unknown, "objective.sources",
                f"name review and/or false_hypothesis, got {list(self.sources)}")


@dataclass
class DpoObjectiveConfig(PreferenceObjectiveConfig):
    _target_: str = "rcatune.training.objectives.Dpo"
    name: str = "dpo"
    stage: str = "dpo"
    loss_type: str = "sigmoid"  # TRL's DPO loss (LLaMA-Factory's pref_loss): sigmoid (the paper's), ipo, hinge, ...


@dataclass
class KtoObjectiveConfig(PreferenceObjectiveConfig):
    """KTO: each answer labelled good or bad on its own (a reviewer's correct / incorrect), no pairing needed."""

    _target_: str = "rcatune.training.objectives.Kto"
    name: str = "kto"
    stage: str = "kto"
    desirable_weight: float = 1.0  # TRL's weights (LLaMA-Factory's kto_chosen_weight / kto_rejected_weight)
    undesirable_weight: float = 1.0


SCHEMAS = {"sft": SftObjectiveConfig, "dpo": DpoObjectiveConfig, "kto": KtoObjectiveConfig}
