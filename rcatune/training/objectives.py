"""What training optimises (`objective=`): each objective turns a `TrainingJob` into the rows a backend trains
on and the Trainer that computes its loss. `sft` is the one today; a preference objective (DPO, KTO) is one
more class here, built by the same `setup`, trained by the same `fit`, saved by the same `save`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TrainingData:
    """The rows an objective trains and evaluates on, and what they hold."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    examples: int
    tokens: int  # real (non-padding) training tokens per epoch
    truncated: int
    without_answer: int
    weighted: bool = False  # rows carry per-token loss weights


class Sft:
    """Supervised fine-tuning: the loss is on the answer's tokens only (weighted where the trainer says so); the
    validation loss is the plain answer loss."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def stage(self) -> str:
        return self.config.stage

    def data(self, job, tokenizer, cfg) -> TrainingData:
        from rcatune.training.data import tokenize
        from rcatune.training.packing import pack

        train = tokenize(job.train_set, tokenizer, job.system_prompt, cfg.max_length, cfg.root_cause_weight,
                         cfg.lead_weight)
        val = tokenize(job.val_set, tokenizer, job.system_prompt, cfg.max_length)  # eval loss: unweighted
        rows = pack(train.features, cfg.max_length) if cfg.packing else train.features
        return TrainingData(rows, val.features, len(job.train_set), train.tokens, train.truncated,
                            train.without_answer, weighted="loss_weights" in train.features[0])

    def trainer_class(self, data: TrainingData, cfg, tokenizer):
        from rcatune.training.hf import trainer_class

        return trainer_class(data.weighted, cfg.prompt_dropout, tokenizer.pad_token_id, tokenizer.all_special_ids)
